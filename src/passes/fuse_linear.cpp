// MatMul(X, W constant [K, N]) (+ Add(constant bias [N])) -> unirt.Linear(X, W, bias). The leading
// dims of X fold into the GEMM's M, and the bias rides in the GEMM epilogue instead of a separate
// broadcast Add over the whole activation.
#include "passes/fusions.h"
#include "passes/match_util.h"

namespace unirt {
namespace {

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

}  // namespace unirt
