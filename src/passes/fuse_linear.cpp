// Epilogue fusions for GEMM-shaped layers:
//   fuse_linear:   MatMul(X, W constant [K, N]) (+ Add(constant bias [N])) -> unirt.Linear(X, W, bias).
//                  The leading dims of X fold into the GEMM's M, and the bias rides in the GEMM
//                  epilogue instead of a separate broadcast Add over the whole activation.
//   fuse_linear_gelu: unirt.Linear -> Gelu (exact) -> the Linear's activation = "gelu"; the GEMM
//                  applies it while writing, so the 4x-wide MLP activation is written once.
//   fuse_residual: Add(layer(x), r) where the layer is a unirt.Linear or unirt.ConvNHWC whose output
//                  feeds only that Add, and r has exactly the output's shape -> the layer takes r
//                  as its 4th input and adds it while writing (cuBLASLt's beta * C), so the
//                  residual stream costs no extra pass over memory.
#include "passes/fusions.h"

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

// A constant holding one row of N values (shape [N], [1, N], ...).
bool is_bias_row(const Graph& g, int v, int64_t n) {
  const Value& c = g.value(v);
  if (!c.data || c.data->numel() != n || c.data->shape.empty() || c.data->shape.back() != n) return false;
  return c.dtype == DType::Float32 || c.dtype == DType::Float16;
}

}  // namespace

int fuse_linear(Graph& g) {
  int fired = 0;
  auto cons = g.consumers();
  const size_t original = g.nodes.size();
  for (size_t mi = 0; mi < original; ++mi) {
    if (g.nodes[mi].op_type != "MatMul") continue;
    const Node mm = g.nodes[mi];
    const Value& x = g.value(mm.inputs[0]);
    const Value& w = g.value(mm.inputs[1]);
    if (!w.data || w.data->shape.size() != 2 || !x.has_shape || x.shape.size() < 2) continue;
    if (w.dtype != DType::Float32 && w.dtype != DType::Float16) continue;
    const int64_t n = w.data->shape[1];
    Node lin;
    lin.name = mm.name;
    lin.op_type = "unirt.Linear";
    lin.inputs = {mm.inputs[0], mm.inputs[1]};
    lin.outputs = mm.outputs;
    lin.notes = mm.notes;
    std::string note = "MatMul as a GEMM over all leading dims";
    const int add_idx = sole_consumer(g, cons, mm.outputs[0]);
    if (add_idx >= 0 && g.nodes[add_idx].op_type == "Add") {
      Node& add = g.nodes[add_idx];
      const int other = add.inputs[0] == mm.outputs[0] ? add.inputs[1] : add.inputs[0];
      if (is_bias_row(g, other, n)) {
        TensorData b = *g.value(other).data;
        b.shape = {n};
        lin.inputs.push_back(g.add_constant(g.unique_name(g.value(other).name + "/row"), std::move(b)));
        lin.outputs = add.outputs;
        note += " with the bias Add '" + add.name + "' in its epilogue";
        add.op_type.clear();
      }
    }
    lin.notes.push_back(note);
    g.nodes[mi].op_type.clear();
    g.add_node(std::move(lin));
    ++fired;
  }
  if (fired) g.relink();
  return fired;
}

int fuse_linear_gelu(Graph& g) {
  int fired = 0;
  auto cons = g.consumers();
  for (auto& lin : g.nodes) {
    if (lin.op_type != "unirt.Linear" || lin.has_attr("activation") || lin.has_input(3)) continue;
    const int gi = sole_consumer(g, cons, lin.outputs[0]);
    if (gi < 0 || g.nodes[gi].op_type != "Gelu" || g.nodes[gi].attr_s("approximate", "none") != "none") continue;
    Node& gelu = g.nodes[gi];
    lin.attrs["activation"] = std::string("gelu");
    lin.outputs[0] = gelu.outputs[0];
    lin.notes.push_back("Gelu '" + gelu.name + "' in its epilogue");
    gelu.op_type.clear();
    ++fired;
  }
  if (fired) g.relink();
  return fired;
}

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
