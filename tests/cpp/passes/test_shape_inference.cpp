#include <gtest/gtest.h>

#include "onnx/importer.h"
#include "passes/pipeline.h"
#include "passes/shape_inference.h"
#include "runtime/engine.h"
#include "test_graphs.h"

using namespace unirt;
using namespace unirt::testing;

TEST(ShapeInference, WindowPadStaysSymbolic) {
  auto m = window_pad_model();
  Graph g = import_onnx_bytes(model_bytes(m), "window_pad");
  infer_shapes(g);
  const Value& c = g.value(g.find_value("c"));
  EXPECT_EQ(c.shape[1].value(), 4);  // depthwise channel count resolved, never -1
  const Value& y = g.value(g.find_value("y"));
  ASSERT_EQ(y.shape.size(), 4u);
  EXPECT_FALSE(y.shape[2].is_const());
  EXPECT_EQ(y.shape[2].eval({{"height", 50}, {"width", 9}, {"batch", 2}}), 56);
  EXPECT_EQ(y.shape[3].eval({{"height", 50}, {"width", 9}, {"batch", 2}}), 14);
  EXPECT_EQ(y.shape[2].eval({{"height", 56}}), 56);
  ASSERT_TRUE(g.value(g.find_value("pads")).sym_value.has_value());
}

TEST(ShapeInference, ReshapeFromShapeChain) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "x", {"batch", "8", "height", "width"});
  add_node(g, "Shape", {"x"}, {"s"}, "shape");
  add_init_i64(g, "i0", {0});
  add_int(add_node(g, "Gather", {"s", "i0"}, {"b"}, "gather"), "axis", 0);
  add_init_i64(g, "c8", {8});
  add_init_i64(g, "m1", {-1});
  auto* cat = add_node(g, "Concat", {"b", "c8", "m1"}, {"target"}, "concat");
  add_int(cat, "axis", 0);
  add_node(g, "Reshape", {"x", "target"}, {"y"}, "reshape");
  g->add_output()->set_name("y");
  Graph gr = import_onnx_bytes(model_bytes(m), "m");
  infer_shapes(gr);
  const Shape& y = gr.value(gr.find_value("y")).shape;
  ASSERT_EQ(y.size(), 3u);
  EXPECT_EQ(y[0].str(), "batch");
  EXPECT_EQ(y[1].value(), 8);
  EXPECT_EQ(y[2].eval({{"batch", 2}, {"height", 5}, {"width", 7}}), 35);
}

TEST(ShapeInference, ConvChannelMismatchNamesNode) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "x", {"1", "3", "8", "8"});
  add_init(g, "w", {4, 2, 3, 3}, std::vector<float>(72, 0.f));
  add_node(g, "Conv", {"x", "w"}, {"y"}, "bad_conv");
  g->add_output()->set_name("y");
  Graph gr = import_onnx_bytes(model_bytes(m), "m");
  try {
    infer_shapes(gr);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad_conv"), std::string::npos) << e.what();
  }
}

TEST(ConstantFolding, FoldsShapeArithmeticAndConstants) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "x", {"2", "3"});
  add_init(g, "a", {3}, {1, 2, 3});
  add_init(g, "b", {3}, {10, 20, 30});
  add_node(g, "Add", {"a", "b"}, {"ab"}, "const_add");
  add_node(g, "Add", {"x", "ab"}, {"y"}, "live_add");
  g->add_output()->set_name("y");
  Graph gr = import_onnx_bytes(model_bytes(m), "m");
  infer_shapes(gr);
  EXPECT_EQ(fold_constants(gr), 0) << "without an evaluator only shape values fold";
  EXPECT_EQ(fold_constants(gr, cpu_constant_evaluator()), 1);
  const Value& ab = gr.value(gr.find_value("ab"));
  ASSERT_TRUE(ab.is_const());
  EXPECT_FLOAT_EQ(ab.data->as<float>()[2], 33.f);
  eliminate_dead_code(gr);
  EXPECT_EQ(gr.nodes.size(), 1u);
}

namespace {

// The fused graph of `m` (CPU backend: the detector fusions are on) and its node of `op`.
Graph fused_graph(onnx::ModelProto& m, const std::string& op, int* node) {
  Engine e = build_engine(import_onnx_bytes(model_bytes(m), "m"), BuildOptions{});
  *node = -1;
  for (size_t i = 0; i < e.graph.nodes.size(); ++i)
    if (e.graph.nodes[i].op_type == op) *node = static_cast<int>(i);
  return e.graph;
}

std::string shape_error(Graph& g) {
  try {
    infer_shapes(g);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

// A fused op in an engine file is checked like an ONNX op: bad attributes and shapes name the
// node and what was expected.
TEST(ShapeInference, FusedDetectorOpsRefuseBadAttributesAndShapes) {
  {
    auto m = box_decode_model(true, true);
    int n = -1;
    Graph g = fused_graph(m, "unirt.BoxDecode", &n);
    ASSERT_GE(n, 0);
    g.nodes[n].attrs["stds"] = std::vector<float>{0.1f, 0.1f, 0.2f};
    const std::string err = shape_error(g);
    EXPECT_NE(err.find("stds must hold 4 values"), std::string::npos) << err;
    EXPECT_NE(err.find(g.nodes[n].name), std::string::npos) << err;
  }
  {
    auto m = box_decode_model(false, true);
    int n = -1;
    Graph g = fused_graph(m, "unirt.BoxDecode", &n);
    ASSERT_GE(n, 0);
    g.nodes[n].attrs["max_ratio"] = -1.f;
    EXPECT_NE(shape_error(g).find("max_ratio must be positive"), std::string::npos);
  }
  {
    auto m = multilevel_topk_model();
    int n = -1;
    Graph g = fused_graph(m, "unirt.MultiLevelTopK", &n);
    ASSERT_GE(n, 0);
    g.nodes[n].outputs.pop_back();  // one indices output short
    EXPECT_NE(shape_error(g).find("1 + L outputs"), std::string::npos);
  }
  {
    auto m = multilevel_topk_model();
    int n = -1;
    Graph g = fused_graph(m, "unirt.MultiLevelTopK", &n);
    ASSERT_GE(n, 0);
    std::swap(g.nodes[n].inputs[3], g.nodes[n].inputs[4]);  // level 0's k (10) on level 1's 20 scores, level 1's (5) on 50: still fits
    EXPECT_EQ(shape_error(g), "");
    std::swap(g.nodes[n].inputs[4], g.nodes[n].inputs[5]);  // level 2 (7 scores) gets k = 10
    const std::string err = shape_error(g);
    EXPECT_NE(err.find("exceeds level 2"), std::string::npos) << err;
  }
}
