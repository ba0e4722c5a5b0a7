// Removes nodes that no graph output depends on, after forwarding Identity/Dropout.
#include "passes/pipeline.h"

namespace unirt {

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
