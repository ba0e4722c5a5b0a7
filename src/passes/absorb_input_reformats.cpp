// convert_to_nhwc step 4.
#include "passes/layout_nhwc.h"

namespace unirt {

// A one-group ConvNHWC fed by the NCHW -> NHWC reformat of a tensor nothing else needs in
// channels-last (the image into the first patch embedding) gathers its im2col rows from NCHW.
int absorb_input_reformats(Graph& g) {
  int fired = 0;
  auto cons = g.consumers();
  for (auto& n : g.nodes) {
    if (n.op_type != "unirt.ConvNHWC" || n.attr_i("group", 1) != 1 || n.has_attr("input_layout")) continue;
    const int p = g.value(n.inputs[0]).producer;
    if (p < 0 || g.nodes[p].op_type != "Transpose" || g.nodes[p].attr_ints("perm") != Perm{0, 2, 3, 1}) continue;
    if (cons[n.inputs[0]].size() != 1 || g.is_graph_output(n.inputs[0])) continue;
    n.inputs[0] = g.nodes[p].inputs[0];
    n.attrs["input_layout"] = std::string("NCHW");
    n.notes.push_back("reads its NCHW input directly");
    ++fired;
  }
  if (fired) g.relink();
  return fired;
}

}  // namespace unirt
