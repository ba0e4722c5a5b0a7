#include <gtest/gtest.h>

#include "runtime/planner.h"
#include "runtime_test_util.h"

using namespace unirt;
using namespace unirt::testing;

namespace {

// Lifetimes recomputed from the schedule (independently of the planner's own bookkeeping), then
// every pair of arena buffers live at the same step must occupy disjoint bytes.
int expect_no_live_overlap(const Engine& e, const Plan& p) {
  const Graph& g = e.graph;
  const size_t nv = g.values.size();
  std::vector<int> first(nv, -1), last(nv, -1);
  for (size_t s = 0; s < p.steps.size(); ++s) {
    const Node& n = g.nodes[p.steps[s]];
    for (int o : n.outputs)
      if (o >= 0 && first[o] < 0) first[o] = last[o] = static_cast<int>(s);
    for (int i : n.inputs)
      if (i >= 0 && first[i] >= 0) last[i] = std::max(last[i], static_cast<int>(s));
  }
  int checked = 0;
  for (size_t a = 0; a < nv; ++a) {
    if (p.values[a].offset == Plan::kNoBuffer) continue;
    EXPECT_GE(first[a], 0) << g.values[a].name << " has a buffer but no step writes it";
    EXPECT_LE(p.values[a].offset + planned_bytes(g, p, static_cast<int>(a)), p.arena_bytes);
    EXPECT_EQ(p.values[a].offset % 256, 0u);
    for (size_t b = a + 1; b < nv; ++b) {
      if (p.values[b].offset == Plan::kNoBuffer) continue;
      if (last[a] < first[b] || last[b] < first[a]) continue;
      const size_t ea = p.values[a].offset + planned_bytes(g, p, static_cast<int>(a));
      const size_t eb = p.values[b].offset + planned_bytes(g, p, static_cast<int>(b));
      EXPECT_TRUE(ea <= p.values[b].offset || eb <= p.values[a].offset)
          << g.values[a].name << " [" << p.values[a].offset << "," << ea << ") overlaps " << g.values[b].name << " [" << p.values[b].offset
          << "," << eb << ")";
      ++checked;
    }
  }
  return checked;
}

}  // namespace

TEST(Planner, ChainPingPongsBetweenTwoBuffers) {
  Engine e = chain_engine();
  for (int64_t batch : {1, 4, 33}) {
    Plan p = make_plan(e, {{"x", {batch, 16}}});
    EXPECT_EQ(p.bindings.at("batch"), batch);
    EXPECT_EQ(p.steps.size(), 8u);
    const size_t one = (static_cast<size_t>(batch) * 16 * 4 + 255) / 256 * 256;
    EXPECT_EQ(p.arena_bytes, 2 * one);  // t0..t6 alternate between two slots
    EXPECT_EQ(p.naive_bytes, 7 * one);  // x and y live outside the arena
    EXPECT_GT(expect_no_live_overlap(e, p), 0);
    const Graph& g = e.graph;
    EXPECT_EQ(p.values[g.inputs[0]].offset, Plan::kNoBuffer);
    EXPECT_EQ(p.values[g.outputs[0]].offset, Plan::kNoBuffer);
    EXPECT_TRUE(p.values[g.outputs[0]].written);
    EXPECT_EQ(p.values[g.outputs[0]].shape, (std::vector<int64_t>{batch, 16}));
  }
}

TEST(Planner, DiamondKeepsLongLivedBranchApart) {
  Engine e = diamond_engine();
  Plan p = make_plan(e, {{"x", {8, 32}}});
  EXPECT_GT(expect_no_live_overlap(e, p), 0);
  EXPECT_LT(p.arena_bytes, p.naive_bytes);
  // a is read by the last node, so it overlaps every other intermediate in time.
  const Graph& g = e.graph;
  const int a = g.find_value("a");
  ASSERT_GE(a, 0);
  for (const char* other : {"b", "c", "d", "e", "f"}) {
    const int o = g.find_value(other);
    ASSERT_GE(o, 0);
    EXPECT_NE(p.values[a].offset, p.values[o].offset) << other;
  }
  // 6 intermediates of 1 KiB each (a..f). Live ranges in steps: a[0,6] b[1,3] c[2,4] d[3,4]
  // e[4,5] f[5,6]: at most 4 are live at once (steps 3 and 4), which is what the plan needs.
  EXPECT_EQ(p.naive_bytes, 6u * 1024);
  EXPECT_EQ(p.arena_bytes, 4u * 1024);
}

TEST(Planner, ProfileViolationNamesTensorShapeAndBounds) {
  ShapeProfile prof;
  prof.min["x"] = {1, 16};
  prof.max["x"] = {8, 16};
  Engine e = chain_engine(prof);
  EXPECT_NO_THROW(make_plan(e, {{"x", {8, 16}}}));
  try {
    make_plan(e, {{"x", {9, 16}}});
    FAIL() << "accepted a batch above the profile";
  } catch (const Error& err) {
    const std::string msg = err.what();
    EXPECT_NE(msg.find("'x'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("9x16"), std::string::npos) << msg;
    EXPECT_NE(msg.find("min 1x16"), std::string::npos) << msg;
    EXPECT_NE(msg.find("max 8x16"), std::string::npos) << msg;
  }
  try {
    make_plan(e, {{"x", {2, 15}}});
    FAIL() << "accepted a wrong fixed dimension";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("must be 16"), std::string::npos) << err.what();
  }
  EXPECT_THROW(make_plan(e, {{"x", {2, 16, 1}}}), Error);  // rank
  EXPECT_THROW(make_plan(e, {{"y", {2, 16}}}), Error);     // missing input
}

TEST(Planner, SymbolicShapesEvaluatePerInputShape) {
  auto m = window_pad_model();
  Engine e = build_engine(import_onnx_bytes(model_bytes(m), "w"), BuildOptions{});
  const Graph& g = e.graph;
  for (auto hw : std::vector<std::pair<int64_t, int64_t>>{{50, 9}, {56, 56}, {13, 70}}) {
    Plan p = make_plan(e, {{"x", {2, 4, hw.first, hw.second}}});
    EXPECT_EQ(p.bindings.at("height"), hw.first);
    EXPECT_EQ(p.bindings.at("width"), hw.second);
    const auto& y = p.values[g.outputs[0]].shape;
    ASSERT_EQ(y.size(), 4u);
    EXPECT_EQ(y[2], (hw.first + 6) / 7 * 7);
    EXPECT_EQ(y[3], (hw.second + 6) / 7 * 7);
    // Shape-only nodes are evaluated by the planner, not run.
    for (int idx : p.steps) EXPECT_FALSE(node_is_static(g, g.nodes[idx])) << g.nodes[idx].name;
    expect_no_live_overlap(e, p);
  }
}

// Relu -> Reshape -> Relu: the Reshape is a view of the first Relu's buffer, which then lives
// until the second Relu has read it through the view.
TEST(Planner, ReshapeIsAViewOfItsInput) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "x", {"batch", "16"});
  add_init_i64(g, "shape", {0, 4, 4});
  add_node(g, "Relu", {"x"}, {"a"});
  add_node(g, "Reshape", {"a", "shape"}, {"b"});
  add_node(g, "Relu", {"b"}, {"c"});
  add_node(g, "Relu", {"c"}, {"y"});
  g->add_output()->set_name("y");
  BuildOptions o;
  Engine e = build_engine(import_onnx_bytes(model_bytes(m), "m"), o);
  Plan p = make_plan(e, {{"x", {3, 16}}});
  EXPECT_EQ(p.steps.size(), 3u);  // the Reshape does not run
  const Graph& gr = e.graph;
  const int a = gr.find_value("a"), b = gr.find_value("b"), c = gr.find_value("c");
  EXPECT_EQ(p.values[a].offset, p.values[b].offset);
  EXPECT_NE(p.values[c].offset, p.values[a].offset);  // c is written while b (= a) is read
  EXPECT_EQ(p.values[b].shape, (std::vector<int64_t>{3, 4, 4}));
  EXPECT_EQ(p.values[a].last_step, 1);
}
