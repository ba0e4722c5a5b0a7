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
