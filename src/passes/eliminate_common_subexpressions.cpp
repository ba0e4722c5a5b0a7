// Nodes that compute the same thing (same op, attributes and inputs) become one: exporters repeat
// small subgraphs per call site (torchvision's RoiAlign slices the RoIs and casts the batch
// indices once per feature level), and the fusions that follow match shared inputs by value.
// Every op unirt accepts is deterministic, so equal inputs give equal outputs; small constants
// with equal contents count as one input.
#include <cstring>
#include <map>
#include <sstream>

#include "passes/pipeline.h"

namespace unirt {
namespace {

void write_attr(std::ostringstream& k, const AttrValue& a) {
  k << a.index() << ':';
  if (const auto* i = std::get_if<int64_t>(&a)) k << *i;
  else if (const auto* f = std::get_if<float>(&a)) k.write(reinterpret_cast<const char*>(f), sizeof(float));
  else if (const auto* s = std::get_if<std::string>(&a)) k << s->size() << '#' << *s;
  else if (const auto* iv = std::get_if<std::vector<int64_t>>(&a)) for (int64_t v : *iv) k << v << ',';
  else if (const auto* fv = std::get_if<std::vector<float>>(&a)) k.write(reinterpret_cast<const char*>(fv->data()), fv->size() * sizeof(float));
  else if (const auto* sv = std::get_if<std::vector<std::string>>(&a)) for (const auto& s2 : *sv) k << s2.size() << '#' << s2;
  else if (const auto* t = std::get_if<TensorData>(&a)) {
    k << static_cast<int>(t->dtype) << '[';
    for (int64_t d : t->shape) k << d << ',';
    k << ']';
    k.write(reinterpret_cast<const char*>(t->bytes.data()), static_cast<std::streamsize>(t->bytes.size()));
  }
  k << ';';
}

}  // namespace

int eliminate_common_subexpressions(Graph& g) {
  int merged = 0;
  std::map<std::string, int> seen;  // key -> node index
  std::vector<int> replace(g.values.size(), -1);
  // Small constants with equal contents are one value (each call site exports its own copy).
  std::map<std::string, int> constants;
  for (size_t v = 0; v < g.values.size(); ++v) {
    const Value& val = g.values[v];
    if (!val.data || val.data->numel() > 1024 || g.is_graph_output(static_cast<int>(v))) continue;
    std::ostringstream k;
    write_attr(k, *val.data);
    auto [it, fresh] = constants.emplace(k.str(), static_cast<int>(v));
    if (!fresh && g.values[it->second].dtype == val.dtype) replace[v] = it->second;
  }
  int rewired = 0;  // inputs moved to an equal constant
  for (int i : g.topo_order()) {
    Node& n = g.nodes[i];
    if (n.op_type.empty()) continue;
    for (int& in : n.inputs)
      if (in >= 0 && replace[in] >= 0) in = replace[in], ++rewired;
    bool graph_output = false;
    for (int o : n.outputs) graph_output = graph_output || (o >= 0 && g.is_graph_output(o));
    if (graph_output || n.outputs.empty()) continue;  // outputs keep their names
    // Sizes only known after a node runs are named after that node: those nodes stay as they are.
    if (n.op_type == "NonZero" || n.op_type == "NonMaxSuppression" || n.op_type == "TopK") continue;
    std::ostringstream k;
    k << n.domain << '|' << n.op_type << '|' << n.outputs.size() << '|';
    for (int in : n.inputs) k << in << ',';
    k << '|';
    for (const auto& kv : n.attrs) {
      k << kv.first << '=';
      write_attr(k, kv.second);
    }
    auto [it, fresh] = seen.emplace(k.str(), i);
    if (fresh) continue;
    const Node& keep = g.nodes[it->second];
    bool covered = true;  // the kept node writes every output this one has
    for (size_t o = 0; o < n.outputs.size(); ++o) covered = covered && (n.outputs[o] < 0 || keep.outputs[o] >= 0);
    if (!covered) continue;
    for (size_t o = 0; o < n.outputs.size(); ++o)
      if (n.outputs[o] >= 0) replace[n.outputs[o]] = keep.outputs[o];
    n.op_type.clear();
    ++merged;
  }
  if (merged || rewired) {
    for (auto& n : g.nodes)
      for (int& in : n.inputs)
        if (in >= 0 && replace[in] >= 0) in = replace[in];
    g.relink();
    g.compact();
  }
  return merged + rewired;
}

}  // namespace unirt
