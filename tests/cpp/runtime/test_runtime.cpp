#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>

#include "onnx/importer.h"
#include "runtime/planner.h"
#include "runtime/session.h"
#include "test_graphs.h"

using namespace unirt;
using namespace unirt::testing;

namespace {

Engine chain_engine(ShapeProfile prof = {}) {
  // x -> Neg -> Abs -> ... (8 nodes) -> y = |x|: buffers can ping-pong between two slots.
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
  return build_engine(import_onnx_bytes(model_bytes(m), "chain"), o);
}

}  // namespace

TEST(Planner, ReusesBuffersAndNeverOverlapsLiveOnes) {
  Engine e = chain_engine();
  Plan p = make_plan(e, {{"x", {4, 16}}});
  EXPECT_EQ(p.bindings.at("batch"), 4);
  EXPECT_LT(p.arena_bytes, p.naive_bytes);
  // Exhaustive check: two values live at the same step never share bytes.
  const Graph& g = e.graph;
  std::vector<int> first(g.values.size(), -1), last(g.values.size(), -1);
  for (size_t s = 0; s < p.steps.size(); ++s) {
    const Node& n = g.nodes[p.steps[s]];
    for (int o : n.outputs) first[o] = last[o] = static_cast<int>(s);
    for (int i : n.inputs)
      if (first[i] >= 0 || i == g.inputs[0]) last[i] = static_cast<int>(s);
  }
  for (size_t a = 0; a < g.values.size(); ++a)
    for (size_t b = a + 1; b < g.values.size(); ++b) {
      if (p.offsets[a] == Plan::kNoBuffer || p.offsets[b] == Plan::kNoBuffer) continue;
      if (first[a] < 0 || first[b] < 0 || last[a] < first[b] || last[b] < first[a]) continue;
      const size_t ea = p.offsets[a] + 64 * 4, eb = p.offsets[b] + 64 * 4;
      EXPECT_TRUE(ea <= p.offsets[b] || eb <= p.offsets[a]) << g.values[a].name << " overlaps " << g.values[b].name;
    }
}

TEST(Planner, ProfileViolationNamesTensorAndProfile) {
  ShapeProfile prof;
  prof.min["x"] = {1, 16};
  prof.max["x"] = {8, 16};
  Engine e = chain_engine(prof);
  try {
    make_plan(e, {{"x", {9, 16}}});
    FAIL();
  } catch (const Error& err) {
    const std::string msg = err.what();
    EXPECT_NE(msg.find("'x'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("max 8x16"), std::string::npos) << msg;
  }
  EXPECT_THROW(make_plan(e, {{"x", {2, 15}}}), Error);  // fixed dim must match
}

TEST(Session, RunsWithDynamicBatchAndChecksInputs) {
  auto e = std::make_shared<Engine>(chain_engine());
  Session s(e, make_cpu_backend(1));
  for (int64_t b : {1, 3}) {
    HostTensor x;
    x.name = "x";
    x.shape = {b, 16};
    x.bytes.resize(b * 16 * 4);
    for (int i = 0; i < b * 16; ++i) x.as<float>()[i] = static_cast<float>(i % 5) - 2.f;
    auto out = s.run({x});
    ASSERT_EQ(out[0].shape, x.shape);
    for (int i = 0; i < b * 16; ++i) EXPECT_FLOAT_EQ(out[0].as<float>()[i], std::fabs(x.as<float>()[i]));
  }
  HostTensor wrong;
  wrong.name = "x";
  wrong.dtype = DType::Int64;
  wrong.shape = {1, 16};
  wrong.bytes.resize(16 * 8);
  EXPECT_THROW(s.run({wrong}), Error);
  HostTensor unknown = wrong;
  unknown.name = "nope";
  EXPECT_THROW(s.run({unknown}), Error);
}

TEST(EngineFile, RoundTripKeepsSymbolicShapes) {
  auto m = window_pad_model();
  Engine e = build_engine(import_onnx_bytes(model_bytes(m), "w"), BuildOptions{});
  const std::string path = ::testing::TempDir() + "/w.engine";
  save_engine(e, path);
  Engine l = load_engine(path);
  ASSERT_EQ(l.graph.nodes.size(), e.graph.nodes.size());
  ASSERT_EQ(l.graph.values.size(), e.graph.values.size());
  for (size_t i = 0; i < e.graph.values.size(); ++i) EXPECT_EQ(shape_str(l.graph.values[i].shape), shape_str(e.graph.values[i].shape));
  const Value& y = l.graph.value(l.graph.outputs[0]);
  EXPECT_EQ(y.shape[2].eval({{"height", 50}, {"width", 9}, {"batch", 1}}), 56);
}

TEST(EngineFile, CorruptTruncatedAndWrongVersionAreRejected) {
  auto m = window_pad_model();
  Engine e = build_engine(import_onnx_bytes(model_bytes(m), "w"), BuildOptions{});
  const std::string path = ::testing::TempDir() + "/c.engine";
  save_engine(e, path);
  std::ifstream f(path, std::ios::binary);
  std::string b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto expect_error = [](const std::string& bytes, const char* needle) {
    try {
      load_engine_bytes(bytes, "e");
      FAIL() << "accepted a bad engine (" << needle << ")";
    } catch (const Error& err) {
      EXPECT_NE(std::string(err.what()).find(needle), std::string::npos) << err.what();
    }
  };
  std::string flipped = b;
  flipped[b.size() / 2] ^= 0x40;
  expect_error(flipped, "checksum");
  expect_error(b.substr(0, b.size() - 100), "truncated");
  std::string version = b;
  version[8] = 99;
  expect_error(version, "version");
  expect_error("garbage that is not an engine", "not a unirt engine");
}
