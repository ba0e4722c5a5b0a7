// convert_to_nhwc step 4: consumers that read a reformat's source instead.
#include "passes/layout_nhwc.h"

namespace unirt {

// A one-group ConvNHWC fed by the NCHW -> NHWC reformat of a tensor nothing else needs in
// channels-last (the image into the first patch embedding) gathers its im2col rows from NCHW.
int absorb_input_reformats(Graph& g) {
  int fired = 0;
  auto cons = g.consumers();
  // The detector's fused RoIAlign whose only reader is an NCHW -> NHWC reformat (the mask head's
  // first conv) writes channels-last itself. Before the convs below absorb that reformat.
  for (auto& n : g.nodes) {
    if (n.op_type != "unirt.MultiLevelRoiAlign" || n.has_attr("output_layout")) continue;
    const int out = n.outputs[0];
    if (cons[out].size() != 1 || g.is_graph_output(out)) continue;
    Node& t = g.nodes[cons[out][0]];
    if (t.op_type != "Transpose" || t.attr_ints("perm") != Perm{0, 2, 3, 1}) continue;
    const int nhwc = t.outputs[0];
    t.op_type.clear();
    n.outputs[0] = nhwc;
    n.attrs["output_layout"] = std::string("NHWC");
    n.notes.push_back("writes its output channels-last");
    ++fired;
    g.relink();
    cons = g.consumers();
  }
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
  // The detector's fused RoIAlign fed by the NHWC -> NCHW reformats of every FPN level samples the
  // channels-last maps themselves (and reads each tap's channels contiguously).
  for (auto& n : g.nodes) {
    if (n.op_type != "unirt.MultiLevelRoiAlign" || n.has_attr("feature_layout")) continue;
    bool all = n.inputs.size() > 3;
    for (size_t i = 3; i < n.inputs.size() && all; ++i) {
      const int p = g.value(n.inputs[i]).producer;
      all = p >= 0 && g.nodes[p].op_type == "Transpose" && g.nodes[p].attr_ints("perm") == Perm{0, 3, 1, 2};
    }
    if (!all) continue;
    for (size_t i = 3; i < n.inputs.size(); ++i) n.inputs[i] = g.nodes[g.value(n.inputs[i]).producer].inputs[0];
    n.attrs["feature_layout"] = std::string("NHWC");
    n.notes.push_back("samples the channels-last feature maps directly");
    ++fired;
  }
  if (fired) g.relink();
  return fired;
}

}  // namespace unirt
