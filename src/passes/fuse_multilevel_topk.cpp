// A detector's per-level score selection (mmdetection's RPN: the top nms_pre anchors of every
// pyramid level, then one list):
//
//   values = Concat(TopK(s_0, k_0).values, ..., TopK(s_L, k_L).values)   (axis 1, rows [B, n_l])
//
// becomes one unirt.MultiLevelTopK(s_0..s_L, k_0..k_L) -> (values, indices_0..indices_L): one
// sort of every level's rows instead of one per level, the values written straight into the
// concatenated row. Each level's indices stay separate outputs (its anchors and deltas are
// gathered with them; a Shape of a level's values reads them instead, same shape). Only k the planner knows (constants, or sizes computed from shapes), TopK
// of the last axis, largest and sorted: the ONNX order (ties to the lower index) is kept.
#include "passes/fusions.h"
#include "passes/match_util.h"

namespace unirt {

int fuse_multilevel_topk(Graph& g) {
  int fused = 0;
  auto cons = g.consumers();
  const size_t count = g.nodes.size();
  for (size_t ci = 0; ci < count; ++ci) {
    const Node& cat = g.nodes[ci];
    if (cat.op_type != "Concat" || cat.inputs.size() < 2 || cat.inputs.size() > 16 || cat.outputs.empty()) continue;
    const int64_t axis = cat.attr_i("axis", 0);
    if (axis != 1 && axis != -1) continue;
    std::vector<int> topks;
    bool ok = true;
    Dim batch;
    DType dt = DType::Undefined;
    for (int v : cat.inputs) {
      const int p = v >= 0 ? g.value(v).producer : -1;
      if (p < 0 || g.nodes[p].op_type != "TopK" || g.nodes[p].outputs.size() < 2 || g.nodes[p].outputs[0] != v ||
          g.nodes[p].outputs[1] < 0 || g.is_graph_output(v)) {
        ok = false;
        break;
      }
      // Besides the Concat, only Shape may read a level's values (the export's full_like): it
      // reads the indices instead, which have the same shape.
      int concats = 0;
      for (int c : cons[v]) {
        if (c == static_cast<int>(ci)) ++concats;
        else if (g.nodes[c].op_type != "Shape") ok = false;
      }
      if (!ok || concats != 1) {
        ok = false;
        break;
      }
      const Node& t = g.nodes[p];
      const Value& x = g.value(t.inputs[0]);
      const int k = t.inputs.size() > 1 ? t.inputs[1] : -1;
      if (g.opset < 10 || k < 0 || !(g.value(k).is_const() || g.value(k).sym_value) || !x.has_shape || x.shape.size() != 2 ||
          (t.attr_i("axis", -1) != -1 && t.attr_i("axis", -1) != 1) || t.attr_i("largest", 1) != 1 || t.attr_i("sorted", 1) != 1 ||
          (x.dtype != DType::Float32 && x.dtype != DType::Float16)) {
        ok = false;
        break;
      }
      if (topks.empty()) batch = x.shape[0], dt = x.dtype;
      if (!same(x.shape[0], batch) || x.dtype != dt) {
        ok = false;
        break;
      }
      topks.push_back(p);
    }
    if (!ok || topks.size() < 2) continue;
    Node f;
    f.name = g.unique_name(cat.name + "/multilevel_topk");
    f.op_type = "unirt.MultiLevelTopK";
    for (int t : topks) f.inputs.push_back(g.nodes[t].inputs[0]);
    for (int t : topks) f.inputs.push_back(g.nodes[t].inputs[1]);
    f.outputs.push_back(cat.outputs[0]);
    for (int t : topks) {
      f.outputs.push_back(g.nodes[t].outputs[1]);
      for (int c : cons[g.nodes[t].outputs[0]])
        if (g.nodes[c].op_type == "Shape") g.nodes[c].inputs[0] = g.nodes[t].outputs[1];
    }
    f.notes.push_back("fused " + std::to_string(topks.size()) + " TopKs and their Concat: one sort over every level's rows");
    for (int t : topks) g.nodes[t].op_type.clear();
    g.nodes[ci].op_type.clear();
    add_fused_node(g, std::move(f), cons);
    ++fused;
  }
  if (fused) g.compact();
  return fused;
}

}  // namespace unirt
