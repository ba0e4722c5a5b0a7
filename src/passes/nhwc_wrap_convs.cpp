// convert_to_nhwc step 1: each 4-D Conv with constant weights between two transposes, as a
// channels-last unirt.ConvNHWC (weights HWIO) or, for an unpadded stride-1 1x1, a unirt.Linear
// (weights [Cin, Cout], the GEMM's B operand).
#include "passes/layout_nhwc.h"

namespace unirt {

int wrap_convs_nhwc(Graph& g) {
  int fired = 0;
  const size_t original = g.nodes.size();
  for (size_t ci = 0; ci < original; ++ci) {
    if (g.nodes[ci].op_type != "Conv") continue;
    const Node conv = g.nodes[ci];
    const Value& x = g.value(conv.inputs[0]);
    if (!x.has_shape || x.shape.size() != 4 || !g.value(conv.inputs[1]).is_const()) continue;
    if (conv.has_input(2) && !g.value(conv.inputs[2]).is_const()) continue;
    const std::string ap = conv.attr_s("auto_pad", "NOTSET");
    if (ap != "NOTSET" && ap != "VALID") continue;
    for (auto d : conv.attr_ints("dilations", {1, 1}))
      if (d != 1) goto next;
    {
      const TensorData& w = *g.value(conv.inputs[1]).data;
      if (w.shape.size() != 4 || (w.dtype != DType::Float32 && w.dtype != DType::Float16)) continue;
      const int64_t group = conv.attr_i("group", 1), cout = w.shape[0], cin_g = w.shape[1];
      const bool depthwise = group > 1 && cin_g == 1 && cout == group;
      if (group != 1 && !depthwise) continue;
      const Perm strides = conv.attr_ints("strides", {1, 1});
      Perm pads = conv.attr_ints("pads", {0, 0, 0, 0});
      if (ap == "VALID") pads = {0, 0, 0, 0};
      const bool pointwise = group == 1 && w.shape[2] == 1 && w.shape[3] == 1 && strides == Perm{1, 1} && pads == Perm{0, 0, 0, 0};
      const int xn = add_transpose(g, conv.inputs[0], {0, 2, 3, 1}, -1, conv.name);
      const int yn = g.add_value(g.unique_name(conv.name + "/out_nhwc"), g.value(conv.outputs[0]).dtype);
      Node n;
      n.name = conv.name;
      n.notes = conv.notes;
      if (pointwise) {
        // [Cout, Cin, 1, 1] -> [Cin, Cout]: the GEMM's B operand, rows = input channels.
        TensorData w2 = w;
        w2.shape = {cout, cin_g};
        w2 = transpose_data(w2, {1, 0});
        n.op_type = "unirt.Linear";
        n.inputs = {xn, g.add_constant(g.unique_name(conv.name + "/weight_io"), std::move(w2))};
        n.notes.push_back("1x1 Conv as a channels-last GEMM");
      } else {
        n.op_type = "unirt.ConvNHWC";
        n.inputs = {xn, g.add_constant(g.unique_name(conv.name + "/weight_hwio"), transpose_data(w, {2, 3, 1, 0}))};
        n.attrs["kernel_shape"] = Perm{w.shape[2], w.shape[3]};
        n.attrs["strides"] = strides;
        n.attrs["pads"] = pads;
        n.attrs["group"] = group;
        n.notes.push_back("channels-last Conv");
      }
      if (conv.has_input(2)) n.inputs.push_back(conv.inputs[2]);
      n.outputs = {yn};
      g.nodes[ci].op_type.clear();
      g.add_node(std::move(n));
      add_transpose(g, yn, {0, 3, 1, 2}, conv.outputs[0], conv.name);
      ++fired;
    }
  next:;
  }
  g.relink();
  return fired;
}

}  // namespace unirt
