#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "onnx/importer.h"
#include "passes/assign_precision.h"
#include "passes/shape_inference.h"
#include "runtime/engine.h"
#include "runtime/planner.h"
#include "test_graphs.h"
#include "ir/half.h"

using namespace unirt;
using namespace unirt::testing;

TEST(AssignPrecision, Fp16KeepsFloat32BoundaryWithCasts) {
  auto m = window_pad_model();
  BuildOptions o;
  o.backend = "cuda";  // building needs no GPU
  o.precision = Precision::FP16;
  Engine e = build_engine(import_onnx_bytes(model_bytes(m), "w"), o);
  const Graph& g = e.graph;
  EXPECT_EQ(g.value(g.inputs[0]).dtype, DType::Float32);
  EXPECT_EQ(g.value(g.outputs[0]).dtype, DType::Float32);
  int casts = 0;
  for (const auto& n : g.nodes) {
    if (n.op_type == "Cast") ++casts;
    if (n.op_type == "Conv") {
      EXPECT_EQ(g.value(n.inputs[0]).dtype, DType::Float16);
      EXPECT_EQ(g.value(n.inputs[1]).dtype, DType::Float16);  // weights converted once, at build time
      EXPECT_EQ(g.value(n.inputs[1]).data->bytes.size(), 4u * 9 * 2);
    }
  }
  EXPECT_EQ(casts, 2);
  bool reported = false;
  for (const auto& p : e.passes) reported |= p.pass == "assign_precision" && p.changes > 0;
  EXPECT_TRUE(reported);
}

TEST(AssignPrecision, CpuBackendRefusesFp16) {
  auto m = window_pad_model();
  BuildOptions o;
  o.precision = Precision::FP16;
  EXPECT_THROW(build_engine(import_onnx_bytes(model_bytes(m), "w"), o), Error);
}

TEST(AssignPrecision, RoundsToNearestEven) {
  EXPECT_EQ(float_to_half(1.0f), 0x3c00);
  EXPECT_EQ(float_to_half(-2.0f), 0xc000);
  EXPECT_EQ(float_to_half(65504.f), 0x7bff);
  EXPECT_EQ(float_to_half(65520.f), 0x7c00);                 // ties to even: overflows to inf
  EXPECT_EQ(float_to_half(1.0f + 1.0f / 2048), 0x3c00);      // halfway, even stays
  EXPECT_EQ(float_to_half(1.0f + 3.0f / 2048), 0x3c02);      // halfway, odd rounds up
  EXPECT_EQ(float_to_half(5.960464477539063e-08f), 0x0001);  // smallest subnormal
  EXPECT_EQ(float_to_half(2.98e-08f), 0x0000);               // below half of it
  EXPECT_EQ(float_to_half(6.1035156e-05f), 0x0400);          // smallest normal
  EXPECT_EQ(float_to_half(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(float_to_half(std::nanf("")) & 0x7c00, 0x7c00);
}

// LayerNorm parameters stay float32 (the CUDA kernels read them so); the Linear weight converts;
// an internal Cast to float32 becomes a Cast to float16.
TEST(AssignPrecision, NormParametersStayFloat32) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "x", {"batch", "4", "8"});
  add_init(g, "gamma", {8}, std::vector<float>(8, 1.f));
  add_init(g, "beta", {8}, std::vector<float>(8, 0.f));
  add_node(g, "LayerNormalization", {"x", "gamma", "beta"}, {"l"});
  add_init(g, "w", {8, 8}, std::vector<float>(64, 0.5f));
  add_node(g, "MatMul", {"l", "w"}, {"mm"});
  add_node(g, "Shape", {"mm"}, {"shp"});
  add_node(g, "Cast", {"shp"}, {"shpf"});
  add_int(g->mutable_node(g->node_size() - 1), "to", 1);
  add_init_i64(g, "zero", {0});
  add_node(g, "Gather", {"shpf", "zero"}, {"bf"});
  add_node(g, "Mul", {"mm", "bf"}, {"y"});
  g->add_output()->set_name("y");
  Graph graph = import_onnx_bytes(model_bytes(m), "ln");
  infer_shapes(graph);
  EXPECT_GT(assign_precision(graph, Precision::FP16), 0);
  for (const auto& n : graph.nodes) {
    if (n.op_type == "LayerNormalization") {
      EXPECT_EQ(graph.value(n.inputs[0]).dtype, DType::Float16);
      EXPECT_EQ(graph.value(n.inputs[1]).dtype, DType::Float32);
      EXPECT_EQ(graph.value(n.inputs[2]).dtype, DType::Float32);
    }
    if (n.op_type == "MatMul") {
      EXPECT_EQ(graph.value(n.inputs[1]).dtype, DType::Float16);
      EXPECT_EQ(graph.value(n.inputs[1]).data->dtype, DType::Float16);
      EXPECT_EQ(graph.value(n.outputs[0]).dtype, DType::Float16);
    }
    if (n.op_type == "Mul") EXPECT_EQ(graph.value(n.inputs[1]).dtype, DType::Float16);
  }
  EXPECT_EQ(graph.value(graph.outputs[0]).dtype, DType::Float32);
  EXPECT_EQ(assign_precision(graph, Precision::FP32), 0);
}

// A conv bias and a LayerNorm bias with equal contents are one constant after CSE; the conv reads
// it as float16 and the LayerNorm as float32 (like its scale): each reader gets its own type.
TEST(AssignPrecision, ConstantSharedByConvBiasAndNormBiasKeepsBothTypes) {
  onnx::ModelProto m = patch_embed_model(std::vector<float>(64 * 3 * 16, 0.1f));
  BuildOptions o;
  o.backend = "cuda";
  o.precision = Precision::FP16;
  Engine e = build_engine(import_onnx_bytes(model_bytes(m), "pe"), o);
  const Graph& gr = e.graph;
  int norms = 0;
  for (const auto& n : gr.nodes) {
    if (n.op_type != "LayerNormalization") continue;
    ++norms;
    EXPECT_EQ(gr.value(n.inputs[1]).dtype, DType::Float32);
    EXPECT_EQ(gr.value(n.inputs[2]).dtype, DType::Float32);
    EXPECT_TRUE(gr.value(n.inputs[2]).has_shape);  // the planner sizes it from its shape: 64 values
  }
  EXPECT_EQ(norms, 1);
  const Plan p = make_plan(e, {{"a", {1, 3, 8, 8}}});
  for (const auto& n : gr.nodes)
    if (n.op_type == "LayerNormalization") EXPECT_EQ(p.values[n.inputs[2]].shape, std::vector<int64_t>{64});
}

// unirt.BoxDecode is box arithmetic: float32 in an FP16 engine even with no NMS after it, its
// float16 readers behind a Cast.
TEST(AssignPrecision, BoxDecodeStaysFloat32) {
  auto m = box_decode_model(true, true);
  auto* g = m.mutable_graph();
  g->mutable_output(0)->set_name("boxes_scaled");
  add_init(g, "w", {4, 4}, std::vector<float>(16, 0.25f));
  add_node(g, "MatMul", {"y", "w"}, {"boxes_scaled"});
  BuildOptions o;
  o.backend = "cuda";
  o.precision = Precision::FP16;
  Engine e = build_engine(import_onnx_bytes(model_bytes(m), "bd"), o);
  int decodes = 0;
  for (const auto& n : e.graph.nodes) {
    if (n.op_type != "unirt.BoxDecode") continue;
    ++decodes;
    for (int i : n.inputs) EXPECT_EQ(e.graph.value(i).dtype, DType::Float32) << e.graph.value(i).name;
    EXPECT_EQ(e.graph.value(n.outputs[0]).dtype, DType::Float32);
  }
  EXPECT_EQ(decodes, 1);
}

// QuantizeLinear / DequantizeLinear in an FP16 engine: the scales stay float32 (the grid the graph
// gives), DequantizeLinear writes float16 activations, and the graph output is float32 again.
TEST(AssignPrecision, QuantizationScalesStayFloat32) {
  onnx::ModelProto m = qdq_chain_model();
  BuildOptions o;
  o.backend = "cuda";
  o.precision = Precision::FP16;
  Engine e = build_engine(import_onnx_bytes(model_bytes(m), "qdq"), o);
  int qdq = 0;
  for (const auto& n : e.graph.nodes) {
    if (n.op_type != "QuantizeLinear" && n.op_type != "DequantizeLinear") continue;
    ++qdq;
    EXPECT_EQ(e.graph.value(n.inputs[1]).dtype, DType::Float32) << n.name;
    if (n.op_type == "DequantizeLinear") EXPECT_EQ(e.graph.value(n.outputs[0]).dtype, DType::Float16) << n.name;
    else EXPECT_EQ(e.graph.value(n.inputs[0]).dtype, DType::Float16) << n.name;
  }
  EXPECT_EQ(qdq, 6);
  EXPECT_EQ(e.graph.value(e.graph.outputs[0]).dtype, DType::Float32);
  EXPECT_EQ(e.graph.value(e.graph.outputs[1]).dtype, DType::Int8);
}
