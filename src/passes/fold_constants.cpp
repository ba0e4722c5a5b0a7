// Folds nodes whose inputs are constant and values whose shape value is known into constants.
#include "passes/pipeline.h"

namespace unirt {
namespace {

// Larger constants are not computed while building (they would be stored in the engine too).
constexpr size_t kMaxFoldBytes = size_t{256} << 20;

// Runs `evaluate` on a node whose inputs are constants, with outputs sized from the graph.
bool evaluate_node(Graph& g, Node& n, const ConstantEvaluator& evaluate) {
  if (!evaluate) return false;
  for (int o : n.outputs)
    if (o >= 0 && (!g.value(o).has_shape || !shape_is_const(g.value(o).shape))) return false;
  std::vector<const TensorData*> in;
  for (int i : n.inputs) in.push_back(i >= 0 ? g.value(i).data.get() : nullptr);
  std::vector<TensorData> results(n.outputs.size());
  for (size_t k = 0; k < n.outputs.size(); ++k) {
    if (n.outputs[k] < 0) {
      results[k].dtype = DType::Undefined;  // an omitted optional output
      continue;
    }
    const Value& val = g.value(n.outputs[k]);
    results[k].dtype = val.dtype;
    results[k].shape = shape_values(val.shape);
    const size_t bytes = checked_bytes(results[k].shape, val.dtype, n.describe() + " output '" + val.name + "'");
    if (bytes > kMaxFoldBytes) return false;  // left to run time, where the planner applies the limits
    results[k].bytes.resize(bytes);
  }
  if (!evaluate(g, n, in, results)) return false;
  for (size_t k = 0; k < n.outputs.size(); ++k)
    if (n.outputs[k] >= 0) g.value(n.outputs[k]).data = std::make_shared<TensorData>(std::move(results[k]));
  return true;
}

}  // namespace

int fold_constants(Graph& g, const ConstantEvaluator& evaluate) {
  int folded = 0;
  for (int idx : g.topo_order()) {
    Node& n = g.nodes[idx];
    bool all_const = true;
    for (int i : n.inputs) all_const &= (i < 0 || g.value(i).is_const());
    bool outputs_known = true;
    for (int o : n.outputs) {
      if (o < 0) continue;
      const Value& v = g.value(o);
      bool known = v.sym_value && v.has_shape && shape_is_const(v.shape);
      if (known)
        for (const Dim& d : *v.sym_value) known &= d.is_const();
      outputs_known &= known;
    }
    if (outputs_known && !n.outputs.empty()) {
      for (int o : n.outputs) {
        if (o < 0) continue;
        Value& v = g.value(o);
        std::vector<int64_t> vals;
        for (const Dim& d : *v.sym_value) vals.push_back(d.value());
        TensorData t = TensorData::from_int64(vals, shape_values(v.shape));
        if (v.dtype == DType::Int32) {
          TensorData t32;
          t32.dtype = DType::Int32;
          t32.shape = t.shape;
          t32.bytes.resize(vals.size() * 4);
          for (size_t i = 0; i < vals.size(); ++i) t32.as<int32_t>()[i] = static_cast<int32_t>(vals[i]);
          t = std::move(t32);
        } else if (v.dtype != DType::Int64) {
          continue;
        }
        v.data = std::make_shared<TensorData>(std::move(t));
      }
    } else if (!all_const || !evaluate_node(g, n, evaluate)) {
      continue;
    }
    bool done = true;
    for (int o : n.outputs) done &= (o < 0 || g.value(o).is_const());
    if (!done) continue;
    for (int o : n.outputs)
      if (o >= 0) g.value(o).producer = -1;
    n.op_type.clear();  // dead: its outputs are constants now
    ++folded;
  }
  return folded;
}

}  // namespace unirt
