#include <cstring>

#include "passes/pipeline.h"

namespace unirt {
namespace {

// Larger constants are not computed while building (they would be stored in the engine too).
constexpr size_t kMaxFoldBytes = size_t{256} << 20;

bool evaluate_with_cpu(Graph& g, Node& n) {
  const KernelFactory* f = KernelRegistry::get("cpu").find(n.op_type);
  if (!f) return false;
  for (int o : n.outputs)
    if (o >= 0 && (!g.value(o).has_shape || !shape_is_const(g.value(o).shape))) return false;
  std::vector<TensorView> in, out;
  std::vector<std::vector<int64_t>> host_ints;
  host_ints.reserve(n.inputs.size());
  for (int i : n.inputs) {
    TensorView v;
    if (i >= 0) {
      const Value& val = g.value(i);
      v.dtype = val.dtype;
      v.shape = val.data->shape;
      v.data = val.data->bytes.data();
      if (val.dtype == DType::Int64) v.host_values = val.data->as<int64_t>();
    }
    in.push_back(v);
  }
  std::vector<TensorData> results(n.outputs.size());
  for (size_t k = 0; k < n.outputs.size(); ++k) {
    TensorView v;
    if (n.outputs[k] >= 0) {
      const Value& val = g.value(n.outputs[k]);
      results[k].dtype = val.dtype;
      results[k].shape = shape_values(val.shape);
      const size_t bytes = checked_bytes(results[k].shape, val.dtype, n.describe() + " output '" + val.name + "'");
      if (bytes > kMaxFoldBytes) return false;  // left to run time, where the planner applies the limits
      results[k].bytes.resize(bytes);
      v.dtype = val.dtype;
      v.shape = results[k].shape;
      v.data = results[k].bytes.data();
    }
    out.push_back(v);
  }
  auto kernel = (*f)(KernelCreateArgs{g, n, Precision::FP32});
  std::vector<uint8_t> scratch(kernel->prepare(in, out));
  RunContext ctx;
  ctx.workspace = scratch.data();
  ctx.workspace_bytes = scratch.size();
  ctx.threads = 1;
  kernel->run(in, out, ctx);
  for (size_t k = 0; k < n.outputs.size(); ++k)
    if (n.outputs[k] >= 0) g.value(n.outputs[k]).data = std::make_shared<TensorData>(std::move(results[k]));
  return true;
}

}  // namespace

int fold_constants(Graph& g) {
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
    } else if (!all_const || !evaluate_with_cpu(g, n)) {
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

int eliminate_dead_code(Graph& g) {
  int removed = 0;
  // Identity and Dropout (inference) forward their input; keep them only where they name a graph output.
  for (auto& n : g.nodes) {
    if ((n.op_type != "Identity" && n.op_type != "Dropout") || n.outputs.empty()) continue;
    const int from = n.inputs[0], to = n.outputs[0];
    if (g.is_graph_output(to) || (n.outputs.size() > 1 && n.outputs[1] >= 0)) continue;
    for (auto& m : g.nodes)
      for (int& i : m.inputs)
        if (i == to) i = from;
    n.op_type.clear();
    ++removed;
  }
  std::vector<char> live(g.values.size(), 0);
  for (int o : g.outputs) live[o] = 1;
  auto order = g.topo_order();
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node& n = g.nodes[*it];
    bool used = false;
    for (int o : n.outputs) used |= (o >= 0 && live[o]);
    if (!used) {
      n.op_type.clear();
      ++removed;
      continue;
    }
    for (int i : n.inputs)
      if (i >= 0) live[i] = 1;
  }
  g.compact();
  return removed;
}

}  // namespace unirt
