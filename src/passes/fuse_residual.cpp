// Add(layer(x), r) where the layer is a unirt.Linear or unirt.ConvNHWC whose output feeds only
// that Add, and r has exactly the output's shape -> the layer takes r as its 4th input and adds it
// while writing (cuBLASLt's beta * C), so the residual stream costs no extra pass over memory.
#include "passes/fusions.h"
#include "passes/match_util.h"

namespace unirt {
namespace {

// Equal shapes, proven or asserted by a guard: the fused layer's shape function asserts the same
// residual shape again, so the guard outlives the Add it came from.
bool same_value_shape(const Graph& g, int a, int b) {
  const Value& va = g.value(a);
  const Value& vb = g.value(b);
  if (!va.has_shape || !vb.has_shape || va.dtype != vb.dtype) return false;
  return g.known_equal(va.shape, vb.shape);
}

}  // namespace

int fuse_residual(Graph& g) {
  int fired = 0;
  auto cons = g.consumers();
  for (size_t ai = 0; ai < g.nodes.size(); ++ai) {
    if (g.nodes[ai].op_type != "Add" || g.nodes[ai].inputs.size() != 2) continue;
    const Node add = g.nodes[ai];
    for (int k = 1; k >= 0; --k) {  // prefer the later operand: the branch, not the stream
      const int y = add.inputs[k], r = add.inputs[1 - k];
      const int p = g.value(y).producer;
      if (p < 0 || y == r) continue;
      Node& layer = g.nodes[p];
      if (layer.op_type != "unirt.Linear" && layer.op_type != "unirt.ConvNHWC") continue;
      // Y = act(XW + b) + R has no GEMM epilogue: only layers without an activation take R.
      if (layer.has_input(3) || layer.has_attr("activation") || sole_consumer(g, cons, y) != static_cast<int>(ai)) continue;
      if (g.value(r).is_const() || !same_value_shape(g, y, add.outputs[0]) || !same_value_shape(g, r, add.outputs[0])) continue;
      layer.inputs.resize(4, -1);
      layer.inputs[3] = r;
      layer.outputs[0] = add.outputs[0];
      layer.notes.push_back("residual Add '" + add.name + "' in its epilogue");
      g.nodes[ai].op_type.clear();
      g.relink();
      cons = g.consumers();
      ++fired;
      break;
    }
  }
  return fired;
}

}  // namespace unirt
