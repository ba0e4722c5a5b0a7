#include <cmath>

#include "passes/fusions.h"
#include "passes/match_util.h"

namespace unirt {
namespace {

// The other input of a binary node, given one of them.
int other_input(const Node& n, int v) { return n.inputs[0] == v ? n.inputs[1] : n.inputs[0]; }

}  // namespace

int fuse_gelu(Graph& g) {
  int fired = 0;
  auto cons = g.consumers();
  const float inv_sqrt2 = 0.70710678f, sqrt2 = 1.41421356f;
  const size_t original = g.nodes.size();  // fused nodes are appended: index, don't iterate
  for (size_t ei = 0; ei < original; ++ei) {
    if (g.nodes[ei].op_type != "Erf") continue;
    Node& erf = g.nodes[ei];
    // x / sqrt(2)  or  x * (1/sqrt(2))
    const int scaled = erf.inputs[0];
    const int pre = g.value(scaled).producer;
    if (pre < 0) continue;
    Node& scale = g.nodes[pre];
    int x = -1;
    if (scale.op_type == "Div" && is_scalar_const(g, scale.inputs[1], sqrt2, 1e-3f)) x = scale.inputs[0];
    if (scale.op_type == "Mul" && is_scalar_const(g, scale.inputs[1], inv_sqrt2, 1e-3f)) x = scale.inputs[0];
    if (scale.op_type == "Mul" && is_scalar_const(g, scale.inputs[0], inv_sqrt2, 1e-3f)) x = scale.inputs[1];
    if (x < 0 || sole_consumer(g, cons, scaled) < 0) continue;
    // 1 + erf
    const int add_idx = sole_consumer(g, cons, erf.outputs[0]);
    if (add_idx < 0 || g.nodes[add_idx].op_type != "Add") continue;
    Node& add = g.nodes[add_idx];
    if (!is_scalar_const(g, other_input(add, erf.outputs[0]), 1.f)) continue;
    // Either (x * (1+erf)) * 0.5, or (x * 0.5) * (1+erf), or x * ((1+erf) * 0.5).
    const int m1_idx = sole_consumer(g, cons, add.outputs[0]);
    if (m1_idx < 0 || g.nodes[m1_idx].op_type != "Mul") continue;
    Node& m1 = g.nodes[m1_idx];
    const int m1_other = other_input(m1, add.outputs[0]);
    int out = -1;
    std::vector<Node*> dead = {&scale, &erf, &add, &m1};
    if (m1_other == x) {
      const int m2_idx = sole_consumer(g, cons, m1.outputs[0]);
      if (m2_idx < 0 || g.nodes[m2_idx].op_type != "Mul") continue;
      Node& m2 = g.nodes[m2_idx];
      if (!is_scalar_const(g, other_input(m2, m1.outputs[0]), 0.5f)) continue;
      out = m2.outputs[0];
      dead.push_back(&m2);
    } else if (is_scalar_const(g, m1_other, 0.5f)) {
      const int m2_idx = sole_consumer(g, cons, m1.outputs[0]);
      if (m2_idx < 0 || g.nodes[m2_idx].op_type != "Mul" || other_input(g.nodes[m2_idx], m1.outputs[0]) != x) continue;
      out = g.nodes[m2_idx].outputs[0];
      dead.push_back(&g.nodes[m2_idx]);
    } else {
      const int half_prod = g.value(m1_other).producer;
      if (half_prod < 0) continue;
      Node& half = g.nodes[half_prod];
      if (half.op_type != "Mul" || !(half.inputs[0] == x || half.inputs[1] == x) ||
          !is_scalar_const(g, other_input(half, x), 0.5f) || sole_consumer(g, cons, half.outputs[0]) != m1_idx)
        continue;
      out = m1.outputs[0];
      dead.push_back(&half);
    }
    Node gelu;
    gelu.name = g.unique_name(erf.name + "/gelu");
    for (Node* d : dead) d->op_type.clear();
    gelu.op_type = "Gelu";
    gelu.inputs = {x};
    gelu.outputs = {out};
    gelu.notes.push_back("fused GELU (" + std::to_string(dead.size()) + " nodes)");
    g.add_node(std::move(gelu));
    cons = g.consumers();
    ++fired;
  }
  if (fired) g.relink();
  return fired;
}

}  // namespace unirt
