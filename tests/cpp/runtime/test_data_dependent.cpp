// Data-dependent output sizes (NonZero, NonMaxSuppression, TopK with a data k): memory planned for
// the bound, the size read back after the node, the nodes after it planned at the actual size, and
// guards that involve the size checked once it is known.
#include <gtest/gtest.h>

#include <cstdio>

#include "runtime/planner.h"
#include "runtime/session.h"
#include "runtime_test_util.h"

using namespace unirt;
using namespace unirt::testing;

namespace {

HostTensor floats(const std::string& name, std::vector<float> v) {
  HostTensor t;
  t.name = name;
  t.shape = {static_cast<int64_t>(v.size())};
  t.bytes.resize(v.size() * 4);
  std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  return t;
}

HostTensor int64s(const std::string& name, std::vector<int64_t> v) {
  HostTensor t;
  t.name = name;
  t.dtype = DType::Int64;
  t.shape = {static_cast<int64_t>(v.size())};
  t.bytes.resize(v.size() * 8);
  std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  return t;
}

std::vector<int64_t> ints_of(const HostTensor& t) { return std::vector<int64_t>(t.as<int64_t>(), t.as<int64_t>() + t.numel()); }
std::vector<float> floats_of(const HostTensor& t) { return std::vector<float>(t.as<float>(), t.as<float>() + t.numel()); }

// x[n] -> NonZero -> Squeeze -> Gather(x) -> Neg: the nonzero values negated, their indices, and
// the count as a shape value (Shape of a tensor whose length is the data-dependent size).
onnx::ModelProto nonzero_model() {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "x", {"n"});
  add_node(g, "NonZero", {"x"}, {"nz"}, "nonzero");
  add_init_i64(g, "ax0", {0});
  add_node(g, "Squeeze", {"nz", "ax0"}, {"idx"});
  add_int(add_node(g, "Gather", {"x", "idx"}, {"vals"}), "axis", 0);
  add_node(g, "Neg", {"vals"}, {"y"});
  add_node(g, "Shape", {"y"}, {"count"});
  for (const char* o : {"nz", "y", "count"}) g->add_output()->set_name(o);
  return m;
}

}  // namespace

TEST(DataDependentSizes, NonZeroOutputsCarryTheCountDownstream) {
  auto e = std::make_shared<Engine>(build_unfused(nonzero_model()));
  ASSERT_EQ(e->graph.data_dims.size(), 1u);
  EXPECT_EQ(e->graph.data_dims[0].symbol, "len(nonzero)");
  Session s(e, make_cpu_backend(1));
  // Buffers are planned for the bound: every element nonzero.
  EXPECT_EQ(s.output_shapes({{5}}), (std::vector<std::vector<int64_t>>{{1, 5}, {5}, {1}}));
  for (int rep = 0; rep < 2; ++rep) {  // the second pass reuses the segments prepared per count
    auto out = s.run({floats("x", {0, 1.5f, 0, -2, 3})});
    EXPECT_EQ(out[0].shape, (std::vector<int64_t>{1, 3}));
    EXPECT_EQ(ints_of(out[0]), (std::vector<int64_t>{1, 3, 4}));
    EXPECT_EQ(floats_of(out[1]), (std::vector<float>{-1.5f, 2, -3}));
    EXPECT_EQ(ints_of(out[2]), (std::vector<int64_t>{3}));
    out = s.run({floats("x", {0, 0, 0, 0, 0})});
    EXPECT_EQ(out[0].shape, (std::vector<int64_t>{1, 0}));
    EXPECT_EQ(out[1].shape, (std::vector<int64_t>{0}));
    EXPECT_EQ(ints_of(out[2]), (std::vector<int64_t>{0}));
    out = s.run({floats("x", {-0.0f, 7, 8})});  // -0.0 is zero; another input shape
    EXPECT_EQ(ints_of(out[0]), (std::vector<int64_t>{1, 2}));
    EXPECT_EQ(floats_of(out[1]), (std::vector<float>{-7, -8}));
  }
}

TEST(DataDependentSizes, PlanSplitsAfterTheNodeAndPlansTheBound) {
  Engine e = build_unfused(nonzero_model());
  Plan p = make_plan(e, {{"x", {7}}});
  ASSERT_EQ(p.data_sizes.size(), 1u);
  EXPECT_EQ(p.data_sizes[0].bound, 7);
  ASSERT_EQ(p.segment_ends.size(), 2u);
  EXPECT_EQ(e.graph.nodes[p.steps[p.segment_ends[0] - 1]].name, "nonzero");
  const int vals = e.graph.find_value("vals");
  ASSERT_GE(vals, 0);
  EXPECT_TRUE(p.values[vals].data_shaped);
  EXPECT_EQ(p.values[vals].shape, (std::vector<int64_t>{7}));
  std::vector<int64_t> shape, hv;
  data_shaped_value(e.graph, p, vals, {{"n", 7}, {"len(nonzero)", 4}}, shape, hv);
  EXPECT_EQ(shape, (std::vector<int64_t>{4}));
  data_shaped_value(e.graph, p, vals, {{"n", 7}}, shape, hv);  // not read back yet: the bound
  EXPECT_EQ(shape, (std::vector<int64_t>{7}));
}

TEST(DataDependentSizes, GuardOnTheSizeIsCheckedOnceItIsKnown) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "x", {"n"});
  add_input(g, "w", {"m"});
  add_node(g, "NonZero", {"x"}, {"nz"}, "nonzero");
  add_init_i64(g, "ax0", {0});
  add_node(g, "Squeeze", {"nz", "ax0"}, {"idx"});
  add_int(add_node(g, "Gather", {"x", "idx"}, {"vals"}), "axis", 0);
  add_node(g, "Add", {"vals", "w"}, {"y"}, "add_w");
  g->add_output()->set_name("y");
  auto e = std::make_shared<Engine>(build_unfused(m));
  Session s(e, make_cpu_backend(1));
  auto out = s.run({floats("x", {1, 0, 2}), floats("w", {10, 20})});
  EXPECT_EQ(floats_of(out[0]), (std::vector<float>{11, 22}));
  const std::string msg = error_of([&] { s.run({floats("x", {1, 2, 3}), floats("w", {10, 20})}); });
  EXPECT_NE(msg.find("add_w"), std::string::npos) << msg;
  EXPECT_NE(msg.find("len(nonzero)=3"), std::string::npos) << msg;
}

TEST(DataDependentSizes, TopKWithADataKNeedsNoSpecialisation) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "x", {"n"});
  auto* k = g->add_input();
  k->set_name("k");
  k->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::INT64);
  k->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(1);
  add_node(g, "TopK", {"x", "k"}, {"v", "i"}, "topk");
  g->add_output()->set_name("v");
  g->add_output()->set_name("i");
  auto e = std::make_shared<Engine>(build_unfused(m));
  EXPECT_FALSE(is_deferred(*e));
  ASSERT_EQ(e->graph.data_dims.size(), 1u);
  Session s(e, make_cpu_backend(1));
  for (int64_t kk : {2, 4, 0}) {
    auto out = s.run({floats("x", {3, 9, 1, 7}), int64s("k", {kk})});
    const std::vector<int64_t> all = {1, 3, 0, 2};
    EXPECT_EQ(ints_of(out[1]), std::vector<int64_t>(all.begin(), all.begin() + kk));
  }
  const std::string msg = error_of([&] { s.run({floats("x", {3, 9, 1, 7}), int64s("k", {5})}); });
  EXPECT_NE(msg.find("topk"), std::string::npos) << msg;
  EXPECT_NE(msg.find("k 5"), std::string::npos) << msg;
}

TEST(DataDependentSizes, NonMaxSuppressionCountVariesPerRun) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "boxes", {"b", "n", "4"});
  add_input(g, "scores", {"b", "c", "n"});
  add_init_i64(g, "max_out", {2});
  add_init(g, "iou", {1}, {0.5f});
  add_init(g, "thr", {1}, {0.1f});
  add_node(g, "NonMaxSuppression", {"boxes", "scores", "max_out", "iou", "thr"}, {"sel"}, "nms");
  g->add_output()->set_name("sel");
  auto e = std::make_shared<Engine>(build_unfused(m));
  Session s(e, make_cpu_backend(1));
  EXPECT_EQ(s.output_shapes({{1, 3, 4}, {1, 1, 3}}), (std::vector<std::vector<int64_t>>{{2, 3}}));  // b*c*min(n, 2)
  HostTensor boxes = floats("boxes", {0, 0, 1, 1, 0, 0.1f, 1, 1.1f, 0, 2, 1, 3});
  boxes.shape = {1, 3, 4};
  HostTensor scores = floats("scores", {0.9f, 0.8f, 0.7f});
  scores.shape = {1, 1, 3};
  auto out = s.run({boxes, scores});  // box 1 overlaps box 0 (IoU 0.82): boxes 0 and 2
  EXPECT_EQ(ints_of(out[0]), (std::vector<int64_t>{0, 0, 0, 0, 0, 2}));
  scores = floats("scores", {0.9f, 0.05f, 0.05f});
  scores.shape = {1, 1, 3};
  out = s.run({boxes, scores});  // the others are under the score threshold
  EXPECT_EQ(ints_of(out[0]), (std::vector<int64_t>{0, 0, 0}));
}

TEST(DataDependentSizes, EngineFileKeepsTheSizes) {
  Engine e = build_unfused(nonzero_model());
  const std::string path = ::testing::TempDir() + "/nonzero.engine";
  save_engine(e, path);
  auto loaded = std::make_shared<Engine>(load_engine(path));
  std::remove(path.c_str());
  ASSERT_EQ(loaded->graph.data_dims.size(), 1u);
  EXPECT_EQ(loaded->graph.data_dims[0].node, "nonzero");
  Session s(loaded, make_cpu_backend(1));
  auto out = s.run({floats("x", {0, 4})});
  EXPECT_EQ(floats_of(out[1]), (std::vector<float>{-4}));
}
