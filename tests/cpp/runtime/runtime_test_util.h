// Small engines shared by the runtime tests.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "onnx/importer.h"
#include "runtime/engine.h"
#include "test_graphs.h"

namespace unirt::testing {

// The model built as imported (no fusions), for tests that name its nodes.
inline Engine build_unfused(onnx::ModelProto m, ShapeProfile prof = {}) {
  BuildOptions o;
  o.profile = std::move(prof);
  o.fuse = false;
  return build_engine(import_onnx_bytes(model_bytes(m), "test"), o);
}

// The message of the unirt::Error f throws, "" if it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// x[batch,16] -> Neg -> Abs -> Neg -> ... (8 nodes) -> y = |x|: buffers can ping-pong between two slots.
inline Engine chain_engine(ShapeProfile prof = {}) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "x", {"batch", "16"});
  std::string prev = "x";
  for (int i = 0; i < 8; ++i) {
    std::string out = i == 7 ? "y" : "t" + std::to_string(i);
    add_node(g, i % 2 ? "Abs" : "Neg", {prev}, {out});
    prev = out;
  }
  g->add_output()->set_name("y");
  BuildOptions o;
  o.profile = prof;
  o.fuse = false;
  return build_engine(import_onnx_bytes(model_bytes(m), "chain"), o);
}

// A diamond with a long-lived branch: a = Relu(x) is read again at the end.
//   a = Relu(x); b = Neg(x); c = Abs(a); d = Sigmoid(b); e = Add(c, d); f = Tanh(e); y = Mul(f, a)
inline Engine diamond_engine() {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "x", {"batch", "32"});
  add_node(g, "Relu", {"x"}, {"a"});
  add_node(g, "Neg", {"x"}, {"b"});
  add_node(g, "Abs", {"a"}, {"c"});
  add_node(g, "Sigmoid", {"b"}, {"d"});
  add_node(g, "Add", {"c", "d"}, {"e"});
  add_node(g, "Tanh", {"e"}, {"f"});
  add_node(g, "Mul", {"f", "a"}, {"y"});
  g->add_output()->set_name("y");
  BuildOptions o;
  o.fuse = false;
  return build_engine(import_onnx_bytes(model_bytes(m), "diamond"), o);
}

inline float mlp_w(int i, int j) { return static_cast<float>(i - j) / 16.f; }
inline float mlp_b(int j) { return j / 8.f - 0.5f; }

// y = Relu(x[batch,16] @ W[16,8] + B[8]), weights from mlp_w / mlp_b.
inline Engine mlp_engine() {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "x", {"batch", "16"});
  std::vector<float> w(16 * 8), b(8);
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 8; ++j) w[i * 8 + j] = mlp_w(i, j);
  for (int j = 0; j < 8; ++j) b[j] = mlp_b(j);
  add_init(g, "W", {16, 8}, w);
  add_init(g, "B", {8}, b);
  add_node(g, "MatMul", {"x", "W"}, {"xw"});
  add_node(g, "Add", {"xw", "B"}, {"pre"});
  add_node(g, "Relu", {"pre"}, {"y"});
  g->add_output()->set_name("y");
  return build_engine(import_onnx_bytes(model_bytes(m), "mlp"), BuildOptions{});
}

}  // namespace unirt::testing
