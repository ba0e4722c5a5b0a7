// convert_to_nhwc step 1b: a ConvTranspose whose kernel equals its stride (no padding, dilation,
// output padding or groups: the Mask R-CNN mask head's 2x2 / 2 upsampling) is a channels-last GEMM
// followed by a depth-to-space:
//   Transpose(NCHW -> NHWC) -> unirt.Linear(W [Cin, kh*kw*Cout], bias tiled per tap)
//   -> Reshape [N, H, W, kh, kw, Cout] -> Transpose [N, H, kh, W, kw, Cout] -> Reshape [N, H*kh, W*kw, Cout]
//   -> Transpose(NHWC -> NCHW)
// whose outer transposes then cancel with the neighbouring convolutions' like any other. Applied
// where H and W are constants (the reshapes name them).
#include <cstring>

#include "passes/layout_nhwc.h"

namespace unirt {

int conv_transposes_nhwc(Graph& g) {
  int fired = 0;
  const size_t original = g.nodes.size();
  for (size_t ci = 0; ci < original; ++ci) {
    if (g.nodes[ci].op_type != "ConvTranspose") continue;
    const Node ct = g.nodes[ci];
    const Value& x = g.value(ct.inputs[0]);
    if (!x.has_shape || x.shape.size() != 4 || !x.shape[2].is_const() || !x.shape[3].is_const()) continue;
    if (!g.value(ct.inputs[1]).is_const() || (ct.has_input(2) && !g.value(ct.inputs[2]).is_const())) continue;
    const TensorData& w = *g.value(ct.inputs[1]).data;
    if (w.shape.size() != 4 || (w.dtype != DType::Float32 && w.dtype != DType::Float16)) continue;
    const int64_t cin = w.shape[0], cout = w.shape[1], kh = w.shape[2], kw = w.shape[3];
    const std::string ap = ct.attr_s("auto_pad", "NOTSET");
    if (ct.attr_i("group", 1) != 1 || (ap != "NOTSET" && ap != "VALID") || !ct.attr_ints("output_shape").empty()) continue;
    if (ct.attr_ints("strides", {1, 1}) != Perm{kh, kw} || ct.attr_ints("dilations", {1, 1}) != Perm{1, 1}) continue;
    if (ct.attr_ints("output_padding", {0, 0}) != Perm{0, 0}) continue;
    if (ap == "NOTSET" && ct.attr_ints("pads", {0, 0, 0, 0}) != Perm{0, 0, 0, 0}) continue;
    const int64_t H = x.shape[2].value(), W = x.shape[3].value();
    const std::string base = ct.name;
    // [Cin, Cout, kh, kw] -> [Cin, kh, kw, Cout] = [Cin, kh*kw*Cout]: column (ky, kx, co).
    TensorData w2 = transpose_data(w, {0, 2, 3, 1});
    w2.shape = {cin, kh * kw * cout};
    Node lin;
    lin.name = base;
    lin.op_type = "unirt.Linear";
    lin.notes = ct.notes;
    lin.notes.push_back("ConvTranspose with kernel == stride as a channels-last GEMM + depth-to-space");
    lin.inputs = {add_transpose(g, ct.inputs[0], {0, 2, 3, 1}, -1, base), g.add_constant(g.unique_name(base + "/weight_i_hwo"), std::move(w2))};
    if (ct.has_input(2)) {
      const TensorData& b = *g.value(ct.inputs[2]).data;
      TensorData b2 = b;
      const size_t es = dtype_size(b.dtype), row = static_cast<size_t>(cout) * es;
      b2.shape = {kh * kw * cout};
      b2.bytes.resize(row * static_cast<size_t>(kh * kw));
      for (int64_t t = 0; t < kh * kw; ++t) std::memcpy(b2.bytes.data() + t * row, b.bytes.data(), row);
      lin.inputs.push_back(g.add_constant(g.unique_name(base + "/bias_per_tap"), std::move(b2)));
    }
    const DType dt = g.value(ct.outputs[0]).dtype;
    const int y0 = g.add_value(g.unique_name(base + "/taps"), dt);
    lin.outputs = {y0};
    g.nodes[ci].op_type.clear();
    g.add_node(std::move(lin));
    auto reshape = [&](int in, const std::vector<int64_t>& to, const char* tag) {
      const int out = g.add_value(g.unique_name(base + "/" + tag), dt);
      Node r;
      r.name = g.unique_name(base + "/" + tag);
      r.op_type = "Reshape";
      r.inputs = {in, g.add_constant(g.unique_name(base + "/" + tag + "_shape"), TensorData::from_int64(to, {static_cast<int64_t>(to.size())}))};
      r.outputs = {out};
      g.add_node(std::move(r));
      return out;
    };
    const int split = reshape(y0, {0, H, W, kh, kw, cout}, "split_taps");
    const int moved = add_transpose(g, split, {0, 1, 3, 2, 4, 5}, -1, base + "/depth_to_space");
    const int merged = reshape(moved, {0, H * kh, W * kw, cout}, "merge_taps");
    add_transpose(g, merged, {0, 3, 1, 2}, ct.outputs[0], base);
    ++fired;
  }
  if (fired) g.relink();
  return fired;
}

}  // namespace unirt
