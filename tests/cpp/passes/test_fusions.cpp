#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

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

TEST(FoldBnAfterConv, FoldsAndMatches) {
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


namespace {
// The graph after shape inference, as the pass under test sees it inside the pipeline.
Graph imported(const std::string& bytes) {
  Graph g = import_onnx_bytes(bytes, "m");
  infer_shapes(g);
  return g;
}
std::vector<float> wave(size_t n, float f) {
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = std::sin(f * static_cast<float>(i));
  return x;
}
void expect_close(const std::vector<float>& a, const std::vector<float>& b, double tol) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], tol) << i;
}
}  // namespace

// BatchNormalization -> unpadded 1x1 Conv (the CBlock's norm -> conv1) folds into the conv; the
// same BN before a padded conv stays (a padded border would see BN(0) instead of 0).
TEST(FoldBnBeforeConv, UnpaddedConvFoldsAndPaddedConvStays) {
  for (int64_t pad : {0, 1}) {
    onnx::ModelProto m;
    auto* g = m.mutable_graph();
    add_input(g, "x", {"1", "3", "5", "5"});
    add_init(g, "gamma", {3}, {1.5f, 0.5f, 2.f});
    add_init(g, "beta", {3}, {0.f, 1.f, -1.f});
    add_init(g, "mean", {3}, {0.2f, -0.1f, 0.f});
    add_init(g, "var", {3}, {1.f, 4.f, 0.25f});
    add_node(g, "BatchNormalization", {"x", "gamma", "beta", "mean", "var"}, {"n"});
    const int64_t k = pad ? 3 : 1;
    add_init(g, "w", {4, 3, k, k}, randn(4 * 3 * k * k, 0.4f, 3));
    add_init(g, "b", {4}, {0.1f, -0.2f, 0.3f, 0.f});
    add_ints(add_node(g, "Conv", {"n", "w", "b"}, {"y"}), "pads", {pad, pad, pad, pad});
    g->add_output()->set_name("y");
    const std::string bytes = model_bytes(m);
    Graph gr = imported(bytes);
    EXPECT_EQ(fold_bn_before_conv(gr), pad ? 0 : 1);
    gr.compact();
    EXPECT_EQ(count_ops(gr, "BatchNormalization"), pad ? 1 : 0);
    const auto x = wave(75, 0.31f);
    expect_close(run_cpu(std::move(gr), false, x, {1, 3, 5, 5}), run_cpu(import_onnx_bytes(bytes, "m"), false, x, {1, 3, 5, 5}), 1e-5);
  }
}

// MatMul by a constant [K, N] and its bias Add become one unirt.Linear over all leading dims; a
// MatMul by a tensor that is not constant stays.
TEST(FuseLinear, ConstantWeightAndBiasBecomeOneLinear) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "x", {"b", "3", "8"});
  add_input(g, "other", {"b", "8", "2"});
  add_init(g, "w", {8, 5}, randn(40, 0.3f, 7));
  add_init(g, "bias", {5}, {0.1f, -0.2f, 0.3f, 0.4f, -0.5f});
  add_node(g, "MatMul", {"x", "w"}, {"mm"});
  add_node(g, "Add", {"mm", "bias"}, {"y"});
  add_node(g, "MatMul", {"x", "other"}, {"z"});
  g->add_output()->set_name("y");
  g->add_output()->set_name("z");
  Graph gr = imported(model_bytes(m));
  EXPECT_EQ(fuse_linear(gr), 1);
  gr.compact();
  ASSERT_EQ(count_ops(gr, "unirt.Linear"), 1);
  EXPECT_EQ(count_ops(gr, "MatMul"), 1) << "the MatMul by a graph input stays";
  EXPECT_EQ(count_ops(gr, "Add"), 0) << "the bias rides in the Linear";
  for (const auto& n : gr.nodes)
    if (n.op_type == "unirt.Linear") EXPECT_EQ(n.inputs.size(), 3u);
  // Numbers: the fused engine against the same graph built without fusions.
  onnx::ModelProto m1;
  auto* g1 = m1.mutable_graph();
  add_input(g1, "x", {"b", "3", "8"});
  add_init(g1, "w", {8, 5}, randn(40, 0.3f, 7));
  add_init(g1, "bias", {5}, {0.1f, -0.2f, 0.3f, 0.4f, -0.5f});
  add_node(g1, "MatMul", {"x", "w"}, {"mm"});
  add_node(g1, "Add", {"mm", "bias"}, {"y"});
  g1->add_output()->set_name("y");
  const std::string bytes = model_bytes(m1);
  Graph fused = imported(bytes);
  ASSERT_EQ(fuse_linear(fused), 1);
  const auto x = wave(2 * 3 * 8, 0.23f);
  expect_close(run_cpu(std::move(fused), false, x, {2, 3, 8}), run_cpu(import_onnx_bytes(bytes, "m"), false, x, {2, 3, 8}), 1e-5);
}

// Add(Linear(x), r) with r of the output's exact shape becomes the Linear's 4th input; an r that
// broadcasts, or a Linear that already applies Gelu, keeps its Add.
TEST(FuseResidual, SameShapeAddJoinsTheLinearAndBroadcastAddStays) {
  for (const char* kind : {"residual", "broadcast", "gelu"}) {
    const std::string k = kind;
    onnx::ModelProto m;
    auto* g = m.mutable_graph();
    add_input(g, "x", {"b", "4", "6"});
    add_init(g, "w", {6, 6}, randn(36, 0.3f, 11));
    add_init(g, "bias", {6}, randn(6, 0.1f, 12));
    add_init(g, "row", {6}, randn(6, 0.5f, 13));
    add_node(g, "MatMul", {"x", "w"}, {"mm"});
    add_node(g, "Add", {"mm", "bias"}, {"lin"});
    std::string branch = "lin";
    if (k == "gelu") add_node(g, "Gelu", {"lin"}, {"act"}), branch = "act";
    add_node(g, "Add", {k == "broadcast" ? "row" : "x", branch}, {"y"});
    g->add_output()->set_name("y");
    const std::string bytes = model_bytes(m);
    Graph gr = imported(bytes);
    ASSERT_EQ(fuse_linear(gr), 1);
    if (k == "gelu") ASSERT_EQ(fuse_linear_gelu(gr), 1);
    infer_shapes(gr);
    EXPECT_EQ(fuse_residual(gr), k == "residual" ? 1 : 0) << kind;
    gr.compact();
    EXPECT_EQ(count_ops(gr, "Add"), k == "residual" ? 0 : 1) << kind;
    const auto x = wave(2 * 4 * 6, 0.41f);
    expect_close(run_cpu(std::move(gr), false, x, {2, 4, 6}), run_cpu(import_onnx_bytes(bytes, "m"), false, x, {2, 4, 6}), 1e-5);
  }
}

// unirt.Linear -> exact Gelu becomes the Linear's activation; the tanh approximation stays.
TEST(FuseLinearGelu, ExactGeluJoinsAndTanhApproximationStays) {
  for (const char* approx : {"none", "tanh"}) {
    onnx::ModelProto m;
    auto* g = m.mutable_graph();
    add_input(g, "x", {"b", "6"});
    add_init(g, "w", {6, 9}, randn(54, 0.3f, 17));
    add_node(g, "MatMul", {"x", "w"}, {"mm"});
    auto* gelu = add_node(g, "Gelu", {"mm"}, {"y"});
    auto* a = gelu->add_attribute();
    a->set_name("approximate");
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(approx);
    g->add_output()->set_name("y");
    const std::string bytes = model_bytes(m, 20);
    Graph gr = imported(bytes);
    ASSERT_EQ(fuse_linear(gr), 1);
    EXPECT_EQ(fuse_linear_gelu(gr), std::string(approx) == "none" ? 1 : 0) << approx;
    const auto x = wave(3 * 6, 0.7f);
    expect_close(run_cpu(std::move(gr), false, x, {3, 6}), run_cpu(import_onnx_bytes(bytes, "m"), false, x, {3, 6}), 1e-5);
  }
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

namespace {

// Three pyramid levels of x [1, 4, 16, 16] and mmdetection's masked sum of RoiAligns over them;
// the RoIs' levels come from x (x * 0 + level) so constant folding leaves them to the fusion. The
// last RoI's level matches no map.
std::string masked_roi_align_model(bool shared_rois) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "x", {"1", "4", "16", "16"});
  add_ints(add_node(g, "MaxPool", {"x"}, {"f1"}), "kernel_shape", {2, 2});
  add_ints(g->mutable_node(0), "strides", {2, 2});
  add_ints(add_node(g, "MaxPool", {"f1"}, {"f2"}), "kernel_shape", {2, 2});
  add_ints(g->mutable_node(1), "strides", {2, 2});
  add_init(g, "rois", {5, 4}, {1, 2, 9, 12, 0, 0, 30, 24, 5.5f, 3, 20, 40, 8, 8, 8, 8, 2, 2, 50, 60});
  add_init(g, "rois_copy", {5, 4}, {1, 2, 9, 12, 0, 0, 30, 24, 5.5f, 3, 20, 40, 8, 8, 8, 8, 2, 2, 50, 60});
  add_init_i64(g, "bidx", {0, 0, 0, 0, 0});
  add_init_i64(g, "flat", {-1});
  add_init_i64(g, "s0", {0});
  add_init_i64(g, "s5", {5});
  add_init(g, "zero", {}, {0.f});
  add_init(g, "lv", {5}, {0, 2, 1, 0, 7});
  add_node(g, "Reshape", {"x", "flat"}, {"xf"});
  add_node(g, "Slice", {"xf", "s0", "s5"}, {"xs"});
  add_node(g, "Mul", {"xs", "zero"}, {"xz"});
  add_node(g, "Add", {"xz", "lv"}, {"level"});
  add_init_i64(g, "axes", {1, 2, 3});
  std::vector<std::string> terms;
  const char* feats[] = {"x", "f1", "f2"};
  for (int i = 0; i < 3; ++i) {
    const std::string s = std::to_string(i);
    add_init(g, "c" + s, {}, {static_cast<float>(i)});
    add_node(g, "Equal", {"level", "c" + s}, {"eq" + s});
    add_int(add_node(g, "Cast", {"eq" + s}, {"mf" + s}), "to", 1);
    add_node(g, "Unsqueeze", {"mf" + s, "axes"}, {"mask" + s});
    auto* ra = add_node(g, "RoiAlign", {feats[i], shared_rois || i == 0 ? "rois" : "rois_copy", "bidx"}, {"ra" + s});
    add_int(ra, "output_height", 3);
    add_int(ra, "output_width", 3);
    add_int(ra, "sampling_ratio", i == 1 ? 0 : 2);
    add_float(ra, "spatial_scale", 1.f / static_cast<float>(1 << i));
    add_node(g, "Mul", {"ra" + s, "mask" + s}, {"t" + s});
    terms.push_back("t" + s);
  }
  add_node(g, "Add", {"t0", "t1"}, {"s01"});
  add_node(g, "Add", {"s01", "t2"}, {"y"});
  g->add_output()->set_name("y");
  return model_bytes(m);
}

}  // namespace

// The masked sum becomes one unirt.MultiLevelRoiAlign with the same numbers; different sampling
// ratios per level keep the RoiAligns (one attribute set per fused op).
TEST(FuseMultiLevelRoiAlign, MaskedSumBecomesOneOpWithTheSameNumbers) {
  const std::string bytes = masked_roi_align_model(false);
  Engine fused;
  const auto x = wave(4 * 16 * 16, 0.37f);
  const auto a = run_cpu(import_onnx_bytes(bytes, "m"), true, x, {1, 4, 16, 16}, &fused);
  const auto b = run_cpu(import_onnx_bytes(bytes, "m"), false, x, {1, 4, 16, 16});
  EXPECT_EQ(count_ops(fused.graph, "RoiAlign"), 3);  // sampling ratios differ: left alone
  expect_close(a, b, 1e-6);
}

TEST(FuseMultiLevelRoiAlign, SharedSamplingFusesAndUnmatchedLevelIsZero) {
  std::string bytes = masked_roi_align_model(true);
  onnx::ModelProto m;
  ASSERT_TRUE(m.ParseFromString(bytes));
  for (auto& n : *m.mutable_graph()->mutable_node())
    if (n.op_type() == "RoiAlign")
      for (auto& at : *n.mutable_attribute())
        if (at.name() == "sampling_ratio") at.set_i(2);
  bytes = m.SerializeAsString();
  Engine fused;
  const auto x = wave(4 * 16 * 16, 0.37f);
  const auto a = run_cpu(import_onnx_bytes(bytes, "m"), true, x, {1, 4, 16, 16}, &fused);
  const auto b = run_cpu(import_onnx_bytes(bytes, "m"), false, x, {1, 4, 16, 16});
  EXPECT_EQ(count_ops(fused.graph, "RoiAlign"), 0);
  EXPECT_EQ(count_ops(fused.graph, "unirt.MultiLevelRoiAlign"), 1);
  expect_close(a, b, 1e-6);
  for (int k = 4 * 4 * 9; k < 5 * 4 * 9; ++k) EXPECT_EQ(a[k], 0.f) << k;  // RoI 4: level 7 matches no map
}

// Equal constants and equal nodes merge: the two RoI copies above become one input.
TEST(EliminateCommonSubexpressions, EqualConstantsAndNodesMerge) {
  Graph g = imported(masked_roi_align_model(false));
  const size_t before = g.nodes.size();
  EXPECT_GT(eliminate_common_subexpressions(g), 0);
  EXPECT_LE(g.nodes.size(), before);
  int rois = -1;
  for (const auto& n : g.nodes)
    if (n.op_type == "RoiAlign") {
      if (rois < 0) rois = n.inputs[1];
      EXPECT_EQ(n.inputs[1], rois) << "the RoI copies are one value";
    }
}

namespace {

// rois (x0 < x1, y0 < y1 mostly; some degenerate), deltas with large log-sizes (clipped) and a
// bound that cuts some boxes.
std::vector<HostTensor> box_decode_inputs(int64_t b, int64_t n, int64_t c, bool broadcast, bool bound, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> pos(0.f, 300.f), size(0.f, 80.f), delta(-3.f, 3.f);
  HostTensor r, d, bd;
  r.name = "rois";
  r.shape = {b, n, broadcast ? 1 : c, 4};
  r.bytes.resize(static_cast<size_t>(b * n * (broadcast ? 1 : c) * 4) * 4);
  for (int64_t i = 0; i < r.numel() / 4; ++i) {
    float* q = r.as<float>() + i * 4;
    q[0] = pos(rng), q[1] = pos(rng), q[2] = q[0] + size(rng), q[3] = q[1] + size(rng);
  }
  r.as<float>()[2] = INFINITY;  // one box without a right edge: inf and NaN go where the unfused graph sends them
  d.name = "deltas";
  d.shape = {b, n, c, 4};
  d.bytes.resize(static_cast<size_t>(b * n * c * 4) * 4);
  for (int64_t i = 0; i < d.numel(); ++i) d.as<float>()[i] = delta(rng) * (i % 7 == 0 ? 10.f : 1.f);
  std::vector<HostTensor> v{r, d};
  if (bound) {
    bd.name = "bound";
    bd.shape = {2};
    bd.bytes.resize(8);
    bd.as<float>()[0] = 320.f, bd.as<float>()[1] = 256.f;
    v.push_back(bd);
  }
  return v;
}

std::vector<HostTensor> run_all(onnx::ModelProto& m, bool fuse, const std::vector<HostTensor>& in, Engine* keep = nullptr) {
  BuildOptions o;
  o.fuse = fuse;
  auto e = std::make_shared<Engine>(build_engine(import_onnx_bytes(model_bytes(m), "m"), o));
  if (keep) *keep = *e;
  Session s(e, make_cpu_backend(1));
  return s.run(in);
}

std::vector<float> run_box_decode(onnx::ModelProto& m, bool fuse, const std::vector<HostTensor>& in, Engine* keep = nullptr) {
  const auto out = run_all(m, fuse, in, keep);
  return std::vector<float>(out[0].as<float>(), out[0].as<float>() + out[0].numel());
}

}  // namespace

// The decoding becomes one unirt.BoxDecode with bit-equal boxes: with and without the bound, with
// rois broadcast over the classes (the box head) or one per delta (the RPN).
TEST(FuseBoxDecode, DeltaDecodingBecomesOneOpWithTheSameBits) {
  for (bool bound : {true, false})
    for (bool broadcast : {true, false}) {
      auto m = box_decode_model(bound, broadcast);
      const auto in = box_decode_inputs(2, 7, 3, broadcast, bound, 5);
      Engine fused;
      const auto a = run_box_decode(m, true, in, &fused);
      const auto b = run_box_decode(m, false, in);
      EXPECT_EQ(count_ops(fused.graph, "unirt.BoxDecode"), 1) << bound << broadcast;
      EXPECT_EQ(count_ops(fused.graph, "Exp"), 0);
      ASSERT_EQ(a.size(), b.size());
      for (size_t i = 0; i < a.size(); ++i)
        ASSERT_EQ(std::memcmp(&a[i], &b[i], 4), 0) << i << ": " << a[i] << " vs " << b[i] << " bound " << bound << " broadcast " << broadcast;
    }
}

// A formula that is not the decoding (another centre constant) is left alone.
TEST(FuseBoxDecode, OtherFormulasStayUnfused) {
  auto m = box_decode_model(true, false, 0.4f);
  Engine fused;
  run_box_decode(m, true, box_decode_inputs(1, 3, 2, false, true, 6), &fused);
  EXPECT_EQ(count_ops(fused.graph, "unirt.BoxDecode"), 0);
  EXPECT_EQ(count_ops(fused.graph, "Exp"), 1);
}

namespace {

// Scores with ties (a few distinct values) so the lower-index-first order is exercised.
std::vector<HostTensor> multilevel_topk_inputs(int64_t batch, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<HostTensor> v;
  for (auto [name, n] : {std::pair<const char*, int64_t>{"a", 50}, {"b", 20}, {"c", 7}}) {
    HostTensor t;
    t.name = name;
    t.shape = {batch, n};
    t.bytes.resize(static_cast<size_t>(batch * n) * 4);
    for (int64_t i = 0; i < batch * n; ++i) t.as<float>()[i] = static_cast<float>(rng() % 13) * 0.25f - 1.f;
    v.push_back(t);
  }
  return v;
}

}  // namespace

// The per-level TopKs and their Concat become one unirt.MultiLevelTopK with the same values and
// indices (ties to the lower index); the Shape of a level's values still sees [batch, k].
TEST(FuseMultiLevelTopK, LevelsBecomeOneOpWithTheSameOutputs) {
  auto m = multilevel_topk_model();
  const auto in = multilevel_topk_inputs(3, 8);
  Engine fused;
  const auto a = run_all(m, true, in, &fused);
  const auto b = run_all(m, false, in);
  EXPECT_EQ(count_ops(fused.graph, "unirt.MultiLevelTopK"), 1);
  EXPECT_EQ(count_ops(fused.graph, "TopK"), 0);
  ASSERT_EQ(a.size(), b.size());
  for (size_t o = 0; o < a.size(); ++o) {
    EXPECT_EQ(a[o].shape, b[o].shape) << o;
    EXPECT_EQ(a[o].bytes, b[o].bytes) << "output " << o;
  }
  EXPECT_EQ(a[0].shape, (std::vector<int64_t>{3, 22}));
}

// A TopK of the smallest values is another selection: left alone.
TEST(FuseMultiLevelTopK, SmallestFirstStaysUnfused) {
  auto m = multilevel_topk_model();
  for (auto& n : *m.mutable_graph()->mutable_node())
    if (n.op_type() == "TopK" && n.output(0) == "v1") add_int(&n, "largest", 0);
  Engine fused;
  run_all(m, true, multilevel_topk_inputs(1, 9), &fused);
  EXPECT_EQ(count_ops(fused.graph, "unirt.MultiLevelTopK"), 0);
  EXPECT_EQ(count_ops(fused.graph, "TopK"), 3);
}
