#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "onnx/importer.h"
#include "passes/fusions.h"
#include "passes/pipeline.h"
#include "passes/shape_inference.h"
#include "runtime/session.h"
#include "test_graphs.h"

using namespace unirt;
using namespace unirt::testing;

namespace {
std::vector<float> run_cpu(Graph g, bool fuse, const std::vector<float>& x, std::vector<int64_t> shape, Engine* keep = nullptr) {
  BuildOptions o;
  o.fuse = fuse;
  auto e = std::make_shared<Engine>(build_engine(std::move(g), o));
  if (keep) *keep = *e;
  Session s(e, make_cpu_backend(1));
  HostTensor t;
  t.name = "x";
  t.shape = shape;
  t.bytes.resize(x.size() * 4);
  std::memcpy(t.bytes.data(), x.data(), t.bytes.size());
  auto out = s.run({t});
  return std::vector<float>(out[0].as<float>(), out[0].as<float>() + out[0].numel());
}
}  // namespace

TEST(FuseGelu, ErfPatternBecomesGeluAndMatches) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "x", {"n", "5"});
  add_init(g, "sqrt2", {}, {1.4142135f});
  add_init(g, "one", {}, {1.f});
  add_init(g, "half", {}, {0.5f});
  add_node(g, "Div", {"x", "sqrt2"}, {"d"});
  add_node(g, "Erf", {"d"}, {"e"});
  add_node(g, "Add", {"e", "one"}, {"a"});
  add_node(g, "Mul", {"x", "a"}, {"m"});
  add_node(g, "Mul", {"m", "half"}, {"y"});
  g->add_output()->set_name("y");
  const std::string bytes = model_bytes(m);
  std::vector<float> x = {-3, -1, -0.5f, 0, 0.25f, 0.5f, 1, 2, 3, 4};
  Engine fused;
  auto a = run_cpu(import_onnx_bytes(bytes, "m"), true, x, {2, 5}, &fused);
  auto b = run_cpu(import_onnx_bytes(bytes, "m"), false, x, {2, 5});
  int gelus = 0;
  for (const auto& n : fused.graph.nodes) gelus += n.op_type == "Gelu";
  EXPECT_EQ(gelus, 1);
  EXPECT_EQ(fused.graph.nodes.size(), 1u);
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_NEAR(a[i], b[i], 1e-6);
    EXPECT_NEAR(a[i], 0.5 * x[i] * (1 + std::erf(x[i] / std::sqrt(2.0))), 1e-6);
  }
}

TEST(FoldConvBatchNorm, FoldsAndMatches) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "x", {"1", "2", "4", "4"});
  add_init(g, "w", {3, 2, 3, 3}, std::vector<float>(54, 0.f));
  for (int i = 0; i < 54; ++i) g->mutable_initializer(0)->set_float_data(i, 0.01f * (i % 7) - 0.02f);
  add_init(g, "b", {3}, {0.1f, -0.2f, 0.3f});
  add_init(g, "gamma", {3}, {1.5f, 0.5f, 2.f});
  add_init(g, "beta", {3}, {0.f, 1.f, -1.f});
  add_init(g, "mean", {3}, {0.2f, -0.1f, 0.f});
  add_init(g, "var", {3}, {1.f, 4.f, 0.25f});
  add_ints(add_node(g, "Conv", {"x", "w", "b"}, {"c"}), "pads", {1, 1, 1, 1});
  add_node(g, "BatchNormalization", {"c", "gamma", "beta", "mean", "var"}, {"y"});
  g->add_output()->set_name("y");
  const std::string bytes = model_bytes(m);
  std::vector<float> x(32);
  for (int i = 0; i < 32; ++i) x[i] = std::sin(0.3f * i);
  Engine fused;
  auto a = run_cpu(import_onnx_bytes(bytes, "m"), true, x, {1, 2, 4, 4}, &fused);
  auto b = run_cpu(import_onnx_bytes(bytes, "m"), false, x, {1, 2, 4, 4});
  EXPECT_EQ(fused.graph.nodes.size(), 1u);
  EXPECT_EQ(fused.graph.nodes[0].op_type, "Conv");
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5);
}


TEST(FuseAttention, PackedQkvBecomesOneNodeAndMatches) {
  auto m = attention_model(2, 3, "n");
  const std::string bytes = model_bytes(m);
  std::vector<float> x(2 * 5 * 18);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i)) * 2.f;
  Engine fused;
  auto a = run_cpu(import_onnx_bytes(bytes, "m"), true, x, {2, 5, 18}, &fused);
  auto b = run_cpu(import_onnx_bytes(bytes, "m"), false, x, {2, 5, 18});
  ASSERT_EQ(fused.graph.nodes.size(), 1u);
  const Node& n = fused.graph.nodes[0];
  EXPECT_EQ(n.op_type, "unirt.Attention");
  EXPECT_EQ(n.attr_i("num_heads"), 2);
  EXPECT_EQ(n.attr_i("head_dim"), 3);
  EXPECT_NEAR(n.attr_f("scale", 0.f), 1 / std::sqrt(3.f), 1e-6);
  ASSERT_EQ(a.size(), 2u * 5 * 6);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5) << i;
}

TEST(FuseAttention, LeavesOtherSoftmaxAlone) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "x", {"2", "3", "4", "4"});
  add_int(add_node(g, "Softmax", {"x"}, {"y"}), "axis", -1);
  g->add_output()->set_name("y");
  auto gr = import_onnx_bytes(model_bytes(m), "m");
  infer_shapes(gr);
  EXPECT_EQ(fuse_attention(gr), 0);
}

// fuse_mlp fires on float16 graphs only (the pipeline runs it after assign_precision); here it is
// applied to a float32 CPU engine directly so the fused node's CPU kernel is checked against the
// unfused Linear -> Linear graph.
TEST(FuseMlp, LinearGeluLinearBecomesOneNodeAndMatchesOnCpu) {
  for (int64_t c : {32, 64}) {
    auto m = mlp_model(c, 4 * c);
    const std::string bytes = model_bytes(m);
    BuildOptions o;
    auto plain = std::make_shared<Engine>(build_engine(import_onnx_bytes(bytes, "m"), o));
    auto fused = std::make_shared<Engine>(*plain);
    EXPECT_EQ(fuse_mlp(fused->graph), 0) << "float32 layers stay two GEMMs";
    for (auto& v : fused->graph.values)  // what assign_precision would have made of the activations
      if (!v.is_const() && v.dtype == DType::Float32) v.dtype = DType::Float16;
    ASSERT_EQ(fuse_mlp(fused->graph), 1);
    for (auto& v : fused->graph.values)
      if (!v.is_const() && v.dtype == DType::Float16) v.dtype = DType::Float32;
    fused->graph.compact();
    int mlps = 0, linears = 0;
    for (const auto& n : fused->graph.nodes) mlps += n.op_type == "unirt.Mlp", linears += n.op_type == "unirt.Linear";
    EXPECT_EQ(mlps, 1);
    EXPECT_EQ(linears, 0);
    HostTensor x;
    x.name = "x";
    x.shape = {2, 7, c};
    x.bytes.resize(2 * 7 * c * 4);
    for (int64_t i = 0; i < x.numel(); ++i) x.as<float>()[i] = std::sin(0.37f * static_cast<float>(i));
    Session a(plain, make_cpu_backend(1)), b(fused, make_cpu_backend(1));
    auto ya = a.run({x}), yb = b.run({x});
    ASSERT_EQ(ya[0].shape, yb[0].shape);
    for (int64_t i = 0; i < ya[0].numel(); ++i) EXPECT_NEAR(ya[0].as<float>()[i], yb[0].as<float>()[i], 1e-4) << i;
  }
}

TEST(FuseMlp, WideOrMismatchedMlpsStayTwoLayers) {
  for (auto [c, hidden] : {std::pair<int64_t, int64_t>{320, 1280}, {64, 96}}) {
    auto m = mlp_model(c, hidden);
    BuildOptions o;
    Engine e = build_engine(import_onnx_bytes(model_bytes(m), "m"), o);
    for (auto& v : e.graph.values)
      if (!v.is_const() && v.dtype == DType::Float32) v.dtype = DType::Float16;
    EXPECT_EQ(fuse_mlp(e.graph), 0) << c << " -> " << hidden;
  }
}
