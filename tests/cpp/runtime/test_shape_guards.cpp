// Guards, profile ranges and shape inputs: what the build proves, what it leaves to the planner,
// which profiles it refuses, and engines specialised per value of a shape input.
#include <gtest/gtest.h>

#include "runtime/planner.h"
#include "runtime/session.h"
#include "runtime_test_util.h"

using namespace unirt;
using namespace unirt::testing;

namespace {

// x [b, h] + y [b, w]: equal only if h == w, which the build cannot know.
onnx::ModelProto add_model() {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "x", {"b", "h"});
  add_input(g, "y", {"b", "w"});
  add_node(g, "Add", {"x", "y"}, {"z"}, "the_add");
  g->add_output()->set_name("z");
  return m;
}

// The window_reverse pattern: the batch frozen to 1 by a constant Reshape target, then added to
// the un-frozen input. Valid only at batch 1.
onnx::ModelProto frozen_batch_model() {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "x", {"b", "6"});
  add_init_i64(g, "target", {1, -1});
  add_node(g, "Reshape", {"x", "target"}, {"r"}, "freeze");
  add_node(g, "Add", {"r", "x"}, {"z"}, "residual");
  g->add_output()->set_name("z");
  return m;
}

TensorData tensor_f(std::vector<int64_t> shape) {
  TensorData t;
  t.shape = std::move(shape);
  t.bytes.resize(static_cast<size_t>(t.numel()) * 4);
  for (int64_t i = 0; i < t.numel(); ++i) t.as<float>()[i] = static_cast<float>(i);
  return t;
}

}  // namespace

TEST(ShapeGuards, UndecidableBroadcastBecomesAGuardCheckedPerShape) {
  Engine e = build_unfused(add_model());
  ASSERT_EQ(e.graph.guards.size(), 1u);
  EXPECT_NE(e.graph.guards[0].node.find("the_add"), std::string::npos);
  EXPECT_NO_THROW(make_plan(e, {{"x", {2, 5}}, {"y", {2, 5}}}));
  const std::string msg = error_of([&] { make_plan(e, {{"x", {2, 5}}, {"y", {2, 7}}}); });
  EXPECT_NE(msg.find("the_add"), std::string::npos) << msg;
  EXPECT_NE(msg.find("broadcast dimension 1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("h=5"), std::string::npos) << msg;
  EXPECT_NE(msg.find("w=7"), std::string::npos) << msg;
}

TEST(ShapeGuards, ProfileThatBreaksAGuardIsRefusedWithTheRangeThatWorks) {
  ShapeProfile two;
  two.min["x"] = {1, 6};
  two.max["x"] = {2, 6};
  const std::string msg = error_of([&] { build_unfused(frozen_batch_model(), two); });
  EXPECT_NE(msg.find("residual"), std::string::npos) << msg;
  EXPECT_NE(msg.find("b=2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("valid only for b == 1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--max-shapes x:1x6"), std::string::npos) << msg;

  ShapeProfile one;
  one.min["x"] = {1, 6};
  one.max["x"] = {1, 6};
  Engine e = build_unfused(frozen_batch_model(), one);
  EXPECT_TRUE(e.graph.guards.empty());  // the pinned batch is the constant 1: everything is proven
  EXPECT_TRUE(same_shape(e.graph.value(e.graph.outputs[0]).shape, {Dim(1), Dim(6)}));
  Session s(std::make_shared<Engine>(e), make_cpu_backend(1));
  TensorData x = tensor_f({1, 6});
  auto out = s.run({{"x", DType::Float32, x.shape, x.bytes}});
  ASSERT_EQ(out[0].shape, (std::vector<int64_t>{1, 6}));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(out[0].as<float>()[i], 2.f * static_cast<float>(i));
}

TEST(ShapeGuards, PlannerRefusesSymbolValuesOutsideTheirRange) {
  Engine e = build_unfused(add_model());  // no profile: 1..2^31-1 for every symbol
  const std::string msg = error_of([&] { make_plan(e, {{"x", {0, 5}}, {"y", {0, 5}}}); });
  EXPECT_NE(msg.find("'b'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("serves 1.."), std::string::npos) << msg;
}

TEST(ShapeGuards, ShapeInputSpecialisesTheEnginePerValue) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "x", {"n"});
  auto* s = g->add_input();
  s->set_name("shape");
  auto* tt = s->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto::INT64);
  tt->mutable_shape()->add_dim()->set_dim_value(2);
  add_node(g, "Reshape", {"x", "shape"}, {"r"});
  add_node(g, "Neg", {"r"}, {"y"});
  g->add_output()->set_name("y");
  auto e = std::make_shared<Engine>(build_unfused(m));
  ASSERT_EQ(e->shape_inputs, std::vector<std::string>{"shape"});
  Session sess(e, make_cpu_backend(1));
  TensorData x = tensor_f({12});
  for (const auto& target : std::vector<std::vector<int64_t>>{{3, 4}, {-1, 6}, {2, -1}}) {
    TensorData t = TensorData::from_int64(target, {2});
    auto out = sess.run({{"x", DType::Float32, {12}, x.bytes}, {"shape", DType::Int64, {2}, t.bytes}});
    const int64_t rows = target[0] == -1 ? 12 / target[1] : target[0];
    ASSERT_EQ(out[0].shape, (std::vector<int64_t>{rows, 12 / rows}));
    EXPECT_EQ(out[0].as<float>()[11], -11.f);
  }
  TensorData bad = TensorData::from_int64({5, 5}, {2});
  const std::string msg = error_of([&] { sess.run({{"x", DType::Float32, {12}, x.bytes}, {"shape", DType::Int64, {2}, bad.bytes}}); });
  EXPECT_NE(msg.find("reshape"), std::string::npos) << msg;
}

// A Reshape target chosen by Equal(n, 6): a function of the input shape, but not one the algebra
// can decide over n's range. The engine is specialised per input shape.
TEST(ShapeGuards, UndecidableShapeValueSpecialisesPerInputShape) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "x", {"n"});
  add_node(g, "Shape", {"x"}, {"s"});
  add_init_i64(g, "six", {6});
  add_node(g, "Equal", {"s", "six"}, {"is6"});
  add_init_i64(g, "two_by_three", {2, 3});
  add_init_i64(g, "one", {1});
  add_int(add_node(g, "Concat", {"s", "one"}, {"n_by_1"}), "axis", 0);
  add_node(g, "Where", {"is6", "two_by_three", "n_by_1"}, {"target"});
  add_node(g, "Reshape", {"x", "target"}, {"y"});
  g->add_output()->set_name("y");
  auto e = std::make_shared<Engine>(build_unfused(m));
  EXPECT_TRUE(e->specialize_per_shape);
  EXPECT_TRUE(e->shape_inputs.empty());
  Session sess(e, make_cpu_backend(1));
  for (int64_t n : {6, 5, 6, 9}) {
    TensorData x = tensor_f({n});
    auto out = sess.run({{"x", DType::Float32, {n}, x.bytes}});
    EXPECT_EQ(out[0].shape, n == 6 ? (std::vector<int64_t>{2, 3}) : (std::vector<int64_t>{n, 1}));
  }
}
