// Multi-level RoIAlign as detection exports write it (mmdetection's ONNX path, unirt_models):
//
//   out = sum_i RoiAlign_i(feat_i, rois, batch_indices) * mask_i,  mask_i = Equal(level, c_i)
//
// with the mask broadcast per RoI through Cast/Unsqueeze/Expand/Reshape. Every RoiAlign runs on
// every RoI and all but one result is multiplied by zero. The sum becomes one
// unirt.MultiLevelRoiAlign(rois, batch_indices, level, feat_0..feat_k) that samples each RoI on
// the feature map whose level value it has, and writes zeros where none matches, which is what
// the masked sum computes. The level computation itself stays in the graph, so whatever formula
// the export used is kept exactly.
#include <algorithm>
#include <functional>
#include <set>
#include <utility>

#include "passes/fusions.h"
#include "passes/match_util.h"

namespace unirt {
namespace {

struct Term {
  int roi_align = -1;  // node
  int level_value = -1;
  double level = 0;
};

// The per-RoI mask chain down to Equal(level, constant): returns the Equal node or -1.
int mask_source(const Graph& g, const std::vector<std::vector<int>>& cons, int v, const Dim& rois) {
  for (int depth = 0; depth < 8; ++depth) {
    const Value& val = g.value(v);
    if (val.producer < 0 || sole_consumer(g, cons, v) < 0) return -1;
    const Node& n = g.nodes[val.producer];
    if (!val.has_shape || val.shape.empty() || !same(val.shape[0], rois)) return -1;  // every row stays one RoI's
    if (n.op_type == "Equal") return val.shape.size() == 1 ? val.producer : -1;
    if (n.op_type != "Cast" && n.op_type != "Unsqueeze" && n.op_type != "Reshape" && n.op_type != "Expand") return -1;
    v = n.inputs[0];
  }
  return -1;
}

std::optional<double> scalar_of(const Graph& g, int v) {
  if (v < 0) return std::nullopt;
  const Value& val = g.value(v);
  if (!val.data || val.data->numel() != 1) return std::nullopt;
  switch (val.data->dtype) {
    case DType::Float32: case DType::Float16: return static_cast<double>(val.data->to_float().at(0));
    case DType::Int64: case DType::Int32: return static_cast<double>(val.data->to_int64().at(0));
    default: return std::nullopt;
  }
}

}  // namespace

int fuse_multilevel_roi_align(Graph& g) {
  int fused = 0;
  auto cons = g.consumers();
  const size_t count = g.nodes.size();
  for (size_t root = 0; root < count; ++root) {
    if (g.nodes[root].op_type != "Add") continue;
    // Only the top of an Add tree: its output must not feed another Add of the tree.
    const int out = g.nodes[root].outputs[0];
    const int next = sole_consumer(g, cons, out);
    if (next >= 0 && g.nodes[next].op_type == "Add") continue;
    // Leaves of the tree: Mul(RoiAlign, mask) terms, and x * 0 (mmdetection's zero start).
    std::vector<int> adds, muls;
    bool ok = true;
    std::function<void(int, bool)> walk = [&](int v, bool top) {
      const int p = g.value(v).producer;
      if (p < 0 || (!top && sole_consumer(g, cons, v) < 0)) {
        ok = false;
        return;
      }
      const Node& n = g.nodes[p];
      if (n.op_type == "Add") {
        adds.push_back(p);
        walk(n.inputs[0], false);
        walk(n.inputs[1], false);
      } else if (n.op_type == "Mul") {
        muls.push_back(p);
      } else {
        ok = false;
      }
    };
    walk(out, true);
    if (!ok || muls.size() < 2) continue;
    std::vector<Term> terms;
    int rois = -1, bidx = -1, level = -1;
    std::vector<int> dead = adds;
    for (int mi : muls) {
      const Node& m = g.nodes[mi];
      dead.push_back(mi);
      if (is_scalar_const(g, m.inputs[0], 0.f, 0.f) || is_scalar_const(g, m.inputs[1], 0.f, 0.f)) continue;  // a zero term
      int ra = -1, mask = -1;
      for (int k = 0; k < 2; ++k) {
        const int p = g.value(m.inputs[k]).producer;
        if (p >= 0 && g.nodes[p].op_type == "RoiAlign" && sole_consumer(g, cons, m.inputs[k]) == mi) ra = p, mask = m.inputs[1 - k];
      }
      if (ra < 0) {
        ok = false;
        break;
      }
      const Node& r = g.nodes[ra];
      if (rois < 0) rois = r.inputs[1], bidx = r.inputs[2];
      if (r.inputs[1] != rois || r.inputs[2] != bidx || !g.value(rois).has_shape) {
        ok = false;
        break;
      }
      const int eq = mask_source(g, cons, mask, g.value(rois).shape[0]);
      if (eq < 0) {
        ok = false;
        break;
      }
      const Node& e = g.nodes[eq];
      std::optional<double> c = scalar_of(g, e.inputs[1]);
      int lv = e.inputs[0];
      if (!c) c = scalar_of(g, e.inputs[0]), lv = e.inputs[1];
      if (!c || (level >= 0 && lv != level)) {
        ok = false;
        break;
      }
      level = lv;
      terms.push_back({ra, lv, *c});
      dead.push_back(ra);
      for (int v = mask; g.value(v).producer != eq; v = g.nodes[g.value(v).producer].inputs[0]) dead.push_back(g.value(v).producer);
      dead.push_back(eq);
    }
    if (!ok || terms.size() < 2) continue;
    // One set of sampling attributes, distinct levels (a RoI matches at most one map).
    const Node& first = g.nodes[terms[0].roi_align];
    std::set<double> levels;
    for (const Term& t : terms) {
      const Node& r = g.nodes[t.roi_align];
      for (const auto& [a, dflt] : {std::pair<const char*, int64_t>{"output_height", 1}, {"output_width", 1}, {"sampling_ratio", 0}})
        if (r.attr_i(a, dflt) != first.attr_i(a, dflt)) ok = false;
      if (r.attr_s("mode", "avg") != "avg" || r.attr_s("coordinate_transformation_mode", "half_pixel") !=
                                                 first.attr_s("coordinate_transformation_mode", "half_pixel"))
        ok = false;
      ok = ok && levels.insert(t.level).second;
    }
    if (!ok) continue;
    std::sort(terms.begin(), terms.end(), [](const Term& a, const Term& b) { return a.level < b.level; });
    Node f;
    f.name = g.unique_name(g.nodes[root].name + "/multilevel_roi_align");
    f.op_type = "unirt.MultiLevelRoiAlign";
    f.inputs = {rois, bidx, level};
    std::vector<float> scales;
    std::vector<int64_t> lv;
    for (const Term& t : terms) {
      const Node& r = g.nodes[t.roi_align];
      f.inputs.push_back(r.inputs[0]);
      scales.push_back(r.attr_f("spatial_scale", 1.f));
      lv.push_back(static_cast<int64_t>(t.level));
      if (static_cast<double>(lv.back()) != t.level) ok = false;  // whole-number levels only
    }
    if (!ok) continue;
    f.outputs = {out};
    f.attrs["output_height"] = first.attr_i("output_height", 1);
    f.attrs["output_width"] = first.attr_i("output_width", 1);
    f.attrs["sampling_ratio"] = first.attr_i("sampling_ratio", 0);
    f.attrs["coordinate_transformation_mode"] =
        first.attr_s("coordinate_transformation_mode", g.opset >= 16 ? "half_pixel" : "output_half_pixel");
    f.attrs["spatial_scales"] = scales;
    f.attrs["levels"] = lv;
    f.notes.push_back("fused " + std::to_string(terms.size()) + " masked RoiAligns (" + std::to_string(dead.size()) +
                      " nodes): each RoI sampled on its level only");
    std::sort(dead.begin(), dead.end());
    dead.erase(std::unique(dead.begin(), dead.end()), dead.end());
    for (int d : dead) g.nodes[d].op_type.clear();
    add_fused_node(g, std::move(f), cons);
    ++fused;
  }
  if (fused) g.compact();
  return fused;
}

}  // namespace unirt
