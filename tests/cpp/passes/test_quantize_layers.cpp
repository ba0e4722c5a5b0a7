// quantize_layers: which layers take Q/DQ pairs and quantized weights, and which stay in float.
#include <gtest/gtest.h>

#include <cmath>

#include "onnx/importer.h"
#include "passes/quantize_layers.h"
#include "passes/shape_inference.h"
#include "../test_graphs.h"

using namespace unirt;
using namespace unirt::testing;

namespace {

// x -> depthwise conv (dw) -> conv (pw, weight shared with pw2) -> conv (pw2) -> flatten ->
// MatMul(a, a^T) (act x act) -> Gemm head (graph output).
onnx::ModelProto model() {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "x", {"1", "4", "3", "3"});
  add_init(g, "wd", {4, 1, 3, 3}, std::vector<float>(36, 0.1f));
  std::vector<float> wp(16);
  for (int i = 0; i < 16; ++i) wp[i] = 0.01f * static_cast<float>(i * i) - 0.7f;
  add_init(g, "wp", {4, 4, 1, 1}, wp);
  auto* dw = add_node(g, "Conv", {"x", "wd"}, {"d"}, "dw");
  add_int(dw, "group", 4);
  add_ints(dw, "pads", {1, 1, 1, 1});
  add_node(g, "Conv", {"d", "wp"}, {"p"}, "pw");
  add_node(g, "Conv", {"p", "wp"}, {"p2"}, "pw2");
  add_init_i64(g, "shape", {4, 9});
  add_node(g, "Reshape", {"p2", "shape"}, {"a"}, "flat");
  add_ints(add_node(g, "Transpose", {"a"}, {"at"}, "t"), "perm", {1, 0});
  add_node(g, "MatMul", {"a", "at"}, {"gram"}, "mm");
  add_init(g, "wh", {4, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  add_node(g, "Gemm", {"gram", "wh"}, {"y"}, "head");
  g->add_output()->set_name("y");
  return m;
}

Graph imported() {
  onnx::ModelProto m = model();
  Graph g = import_onnx_bytes(model_bytes(m), "q");
  infer_shapes(g);
  return g;
}

const Node& node(const Graph& g, const std::string& name) {
  for (const auto& n : g.nodes)
    if (n.name == name) return n;
  throw Error("no node " + name);
}

QuantizationOptions options() {
  QuantizationOptions q;
  q.mode = QuantMode::Int8;
  q.amax = {{"x", 1.f}, {"d", 2.f}, {"p", 3.f}, {"a", 4.f}, {"at", 4.f}, {"gram", 9.f}};
  return q;
}

}  // namespace

TEST(QuantizeLayers, QuantizesPointwiseConvsAndMatMulsNotDepthwiseOrHead) {
  Graph g = imported();
  EXPECT_EQ(quantize_layers(g, options()), 3);  // pw, pw2, mm
  EXPECT_EQ(count_ops(g, "QuantizeLinear"), 4);     // d, p, a, at (x only feeds the depthwise conv)
  EXPECT_EQ(count_ops(g, "DequantizeLinear"), 4);
  EXPECT_EQ(g.value(node(g, "dw").inputs[0]).name, "x");
  EXPECT_EQ(g.value(node(g, "head").inputs[0]).name, "gram");
  for (const char* n : {"pw", "pw2", "mm"}) {
    const Node& l = node(g, n);
    EXPECT_EQ(g.value(l.inputs[0]).producer >= 0 ? g.nodes[g.value(l.inputs[0]).producer].op_type : "", "DequantizeLinear") << n;
  }
  infer_shapes(g);  // still a valid graph, every node after the producers of its inputs
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (int v : g.nodes[i].inputs)
      if (v >= 0) EXPECT_LT(g.value(v).producer, static_cast<int>(i)) << g.nodes[i].name;
}

TEST(QuantizeLayers, WeightsLieOnTheirChannelGridAndSharedConstantsStay) {
  Graph g = imported();
  const std::vector<float> original(g.value(g.find_value("wp")).data->as<float>(), g.value(g.find_value("wp")).data->as<float>() + 16);
  quantize_layers(g, options());
  const float* shared = g.value(g.find_value("wp")).data->as<float>();
  for (int i = 0; i < 16; ++i) EXPECT_EQ(shared[i], original[i]);  // the imported constant is untouched
  const TensorData& w = *g.value(node(g, "pw").inputs[1]).data;
  for (int c = 0; c < 4; ++c) {
    float amax = 0;
    for (int k = 0; k < 4; ++k) amax = std::max(amax, std::fabs(original[c * 4 + k]));
    const float s = amax / 127.f;
    for (int k = 0; k < 4; ++k) {
      const float q = w.as<float>()[c * 4 + k] / s;
      EXPECT_NEAR(q, std::round(q), 1e-3) << "channel " << c;
      EXPECT_NEAR(w.as<float>()[c * 4 + k], original[c * 4 + k], s / 2 + 1e-7);
    }
  }
}

TEST(QuantizeLayers, OverridesAndMissingRanges) {
  {
    Graph g = imported();
    QuantizationOptions q = options();
    q.layer_precision = {{"pw2", "fp16"}, {"head", "int8"}};  // one out, the head in
    EXPECT_EQ(quantize_layers(g, q), 3);                      // pw, mm, head
    EXPECT_EQ(g.value(node(g, "pw2").inputs[0]).name, "p");
    EXPECT_NE(g.value(node(g, "head").inputs[0]).name, "gram");
  }
  {
    Graph g = imported();
    QuantizationOptions q = options();
    q.amax.erase("at");  // the MatMul lacks one operand's range: it stays in float
    EXPECT_EQ(quantize_layers(g, q), 2);
    EXPECT_EQ(g.value(node(g, "mm").inputs[1]).name, "at");
  }
  for (auto bad : std::vector<std::map<std::string, std::string>>{{{"nope", "fp16"}}, {{"pw", "int4"}}}) {
    Graph g = imported();
    QuantizationOptions q = options();
    q.layer_precision = bad;
    EXPECT_THROW(quantize_layers(g, q), Error);
  }
}

TEST(QuantizeLayers, Fp8ScalesBy448) {
  Graph g = imported();
  QuantizationOptions q = options();
  q.mode = QuantMode::Fp8;
  quantize_layers(g, q);
  for (const auto& n : g.nodes) {
    if (n.op_type != "QuantizeLinear") continue;
    EXPECT_EQ(g.value(n.outputs[0]).dtype, DType::Float8E4M3FN);
    const float amax = q.amax.at(g.value(n.inputs[0]).name);
    EXPECT_FLOAT_EQ(g.value(n.inputs[1]).data->as<float>()[0], amax / 448.f);
  }
}

// With kernel_layers_only (CUDA FP16 engines) a 1x1 conv is taken only where the 8-bit GEMM runs
// it: K and N multiples of 16. The detector's RPN convs (3 and 12 outputs per level) stay float
// instead of running as Q/DQ pairs in float.
TEST(QuantizeLayers, KernelLayersOnlyTakesWhatTheEightBitGemmRuns) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "x", {"1", "16", "4", "4"});
  add_init(g, "w16", {16, 16, 1, 1}, std::vector<float>(256, 0.05f));
  add_init(g, "w3", {3, 16, 1, 1}, std::vector<float>(48, 0.05f));
  add_node(g, "Conv", {"x", "w16"}, {"a"}, "wide");
  add_node(g, "Conv", {"a", "w3"}, {"b"}, "narrow");
  add_node(g, "Relu", {"b"}, {"y"}, "relu");
  g->add_output()->set_name("y");
  Graph gr = import_onnx_bytes(model_bytes(m), "q");
  infer_shapes(gr);
  QuantizationOptions q;
  q.mode = QuantMode::Int8;
  q.kernel_layers_only = true;
  q.amax = {{"x", 1.f}, {"a", 2.f}};
  EXPECT_EQ(quantize_layers(gr, q), 1);
  EXPECT_EQ(gr.value(node(gr, "narrow").inputs[0]).name, "a");
  EXPECT_NE(gr.value(node(gr, "wide").inputs[0]).name, "x");
}
