// Multi-head self-attention with a packed qkv projection, as PyTorch exports
//   qkv.reshape(b, n, 3, h, d).permute(2, 0, 3, 1, 4); q, k, v = qkv[0], qkv[1], qkv[2]
//   softmax(q @ k.transpose(-2, -1) * scale) @ v  ->  transpose(1, 2).reshape(b, n, h * d)
// becomes one unirt.Attention(qkv) node. The fused kernel reads q/k/v straight from the packed
// [b, n, 3*h*d] rows and writes [b, n, h*d], so the 5-D permute, the three gathers, the k
// transpose, the [b, h, n, n] score tensor and the output transpose never reach memory.
#include <cmath>

#include "passes/fusions.h"
#include "passes/match_util.h"
#include "passes/shape_inference.h"

namespace unirt {
namespace {

const Node* producer_of(const Graph& g, int v, const char* op) {
  if (v < 0) return nullptr;
  const int p = g.value(v).producer;
  if (p < 0 || g.nodes[p].op_type != op) return nullptr;
  return &g.nodes[p];
}

bool perm_is(const Node& t, std::vector<int64_t> want) { return t.attr_ints("perm") == want; }

// Gather(data, scalar constant index, axis 0): returns the index or -1.
int64_t gather_index(const Graph& g, const Node& n) {
  if (n.op_type != "Gather" || n.attr_i("axis", 0) != 0 || !n.has_input(1)) return -1;
  const Value& idx = g.value(n.inputs[1]);
  if (!idx.data || idx.data->numel() != 1 || !idx.data->shape.empty()) return -1;
  return idx.data->to_int64()[0];
}

bool const_dim(const Shape& s, size_t i, int64_t* out) {
  if (i >= s.size() || !s[i].is_const()) return false;
  *out = s[i].value();
  return true;
}


}  // namespace

int fuse_attention(Graph& g) {
  int fired = 0;
  auto cons = g.consumers();
  const size_t original = g.nodes.size();
  for (size_t si = 0; si < original; ++si) {
    if (g.nodes[si].op_type != "Softmax") continue;
    const Node& sm = g.nodes[si];
    const int64_t rank = static_cast<int64_t>(g.value(sm.inputs[0]).shape.size());
    if (rank != 4 || (sm.attr_i("axis", -1) != -1 && sm.attr_i("axis", -1) != 3)) continue;
    if (g.opset < 13) continue;  // older Softmax normalises over flattened trailing dims
    // scores = (q @ kT) * scale  (or / c, or unscaled)
    float scale = 1.f;
    int scores = sm.inputs[0];
    std::vector<int> dead = {static_cast<int>(si)};
    if (const Node* m = producer_of(g, scores, "Mul")) {
      int other = -1;
      for (int j = 0; j < 2; ++j)
        if (g.value(m->inputs[j]).data && g.value(m->inputs[j]).data->numel() == 1) other = j;
      if (other < 0 || sole_consumer(g, cons, scores) < 0) continue;
      scale = g.value(m->inputs[other]).data->to_float()[0];
      dead.push_back(g.value(scores).producer);
      scores = m->inputs[1 - other];
    } else if (const Node* dv = producer_of(g, scores, "Div")) {
      const Value& c = g.value(dv->inputs[1]);
      if (!c.data || c.data->numel() != 1 || sole_consumer(g, cons, scores) < 0) continue;
      scale = 1.f / c.data->to_float()[0];
      dead.push_back(g.value(scores).producer);
      scores = dv->inputs[0];
    }
    const Node* mm1 = producer_of(g, scores, "MatMul");
    if (!mm1 || sole_consumer(g, cons, scores) < 0) continue;
    dead.push_back(g.value(scores).producer);
    const Node* kt = producer_of(g, mm1->inputs[1], "Transpose");
    if (!kt || !perm_is(*kt, {0, 1, 3, 2}) || sole_consumer(g, cons, mm1->inputs[1]) < 0) continue;
    dead.push_back(g.value(mm1->inputs[1]).producer);
    const Node* gq = producer_of(g, mm1->inputs[0], "Gather");
    const Node* gk = producer_of(g, kt->inputs[0], "Gather");
    const int mm2_idx = sole_consumer(g, cons, sm.outputs[0]);
    if (!gq || !gk || mm2_idx < 0 || g.nodes[mm2_idx].op_type != "MatMul" || g.nodes[mm2_idx].inputs[0] != sm.outputs[0]) continue;
    const Node& mm2 = g.nodes[mm2_idx];
    const Node* gv = producer_of(g, mm2.inputs[1], "Gather");
    if (!gv || gather_index(g, *gq) != 0 || gather_index(g, *gk) != 1 || gather_index(g, *gv) != 2) continue;
    if (gq->inputs[0] != gk->inputs[0] || gq->inputs[0] != gv->inputs[0]) continue;
    for (int v : {mm1->inputs[0], kt->inputs[0], mm2.inputs[1]})
      if (sole_consumer(g, cons, v) < 0) goto next;
    {
      const int packed = gq->inputs[0];
      const Node* perm = producer_of(g, packed, "Transpose");
      if (!perm || !perm_is(*perm, {2, 0, 3, 1, 4}) || cons[packed].size() != 3 || g.is_graph_output(packed)) continue;
      const Node* split = producer_of(g, perm->inputs[0], "Reshape");
      if (!split || sole_consumer(g, cons, perm->inputs[0]) < 0) continue;
      const Shape& s5 = g.value(split->outputs[0]).shape;
      int64_t three = 0, heads = 0, hd = 0;
      if (s5.size() != 5 || !const_dim(s5, 2, &three) || three != 3 || !const_dim(s5, 3, &heads) || !const_dim(s5, 4, &hd)) continue;
      if (hd > 128) continue;  // beyond what the CUDA kernel holds in registers; the unfused graph runs anywhere
      const int qkv = split->inputs[0];
      const Shape& s3 = g.value(qkv).shape;
      if (s3.size() != 3 || !same(s3[0], s5[0]) || !same(s3[1], s5[1]) || !s3[2].is_const() || s3[2].value() != 3 * heads * hd) continue;
      // out = (attn @ v).transpose(1, 2).reshape(b, n, h*d)
      const int t_idx = sole_consumer(g, cons, mm2.outputs[0]);
      if (t_idx < 0 || g.nodes[t_idx].op_type != "Transpose" || !perm_is(g.nodes[t_idx], {0, 2, 1, 3})) continue;
      const int r_idx = sole_consumer(g, cons, g.nodes[t_idx].outputs[0]);
      if (r_idx < 0 || g.nodes[r_idx].op_type != "Reshape") continue;
      const Shape& so = g.value(g.nodes[r_idx].outputs[0]).shape;
      if (so.size() != 3 || !same(so[0], s3[0]) || !same(so[1], s3[1]) || !so[2].is_const() || so[2].value() != heads * hd) continue;
      for (const Node* n : {gq, gk, gv, perm, split}) dead.push_back(static_cast<int>(n - g.nodes.data()));
      dead.push_back(mm2_idx);
      dead.push_back(t_idx);
      dead.push_back(r_idx);
      Node att;
      att.name = g.unique_name(sm.name + "/attention");
      att.op_type = "unirt.Attention";
      att.inputs = {qkv};
      att.outputs = {g.nodes[r_idx].outputs[0]};
      att.attrs["num_heads"] = heads;
      att.attrs["head_dim"] = hd;
      att.attrs["scale"] = scale;
      att.notes.push_back("fused multi-head attention (" + std::to_string(dead.size()) + " nodes, " + std::to_string(heads) +
                          " heads of " + std::to_string(hd) + ")");
      for (int d : dead) g.nodes[d].op_type.clear();
      g.add_node(std::move(att));
      g.relink();
      cons = g.consumers();
      ++fired;
    }
  next:;
  }
  return fired;
}

}  // namespace unirt
