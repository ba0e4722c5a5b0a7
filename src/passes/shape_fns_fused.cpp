// Shape functions: the fused ops the passes create (unirt.Attention, unirt.ConvNHWC, unirt.Linear,
// unirt.Mlp, unirt.QuantizedLinear, unirt.QuantizedMlp). They run again when an engine file is loaded, so besides the shapes they check
// everything the kernels rely on (operand ranks, channel counts, bias lengths, attribute ranges):
// a damaged engine gets an error naming the node, never a kernel reading past a buffer.
#include "ir/fused_attrs.h"
#include <cmath>

#include "passes/shape_inference.h"

namespace unirt {
namespace {

// A bias input i (if present) is [n].
void require_bias(ShapeCtx& c, int i, const Dim& n, const char* what) {
  if (!c.has(i)) return;
  if (c.rank(i) != 1) c.fail(std::string(what) + " has shape " + shape_str(c.shape(i)) + ", expected [" + n.brief() + "]");
  c.require_equal(c.shape(i)[0], n, std::string(what) + " length");
}

void attention(ShapeCtx& c) {
  const Shape& x = c.shape(0);
  const AttentionAttrs a = AttentionAttrs::of(c.node());
  const int64_t h = a.num_heads, d = a.head_dim;
  if (x.size() != 3) c.fail("qkv must be [batch, tokens, 3*heads*head_dim], got rank " + std::to_string(x.size()));
  c.require_equal(x[2], Dim(3 * h * d), "qkv channels vs 3*" + std::to_string(h) + "*" + std::to_string(d));
  c.set(0, a.q_scale > 0.f ? a.q_dtype : c.dtype(0), {x[0], x[1], Dim(h * d)});
}

// X [..., K] W [K, N] (+ bias [N]) (+ residual of the output shape).
void linear(ShapeCtx& c) {
  const Shape& x = c.shape(0);
  const Shape& w = c.shape(1);
  LinearAttrs::of(c.node());
  if (x.empty() || w.size() != 2) c.fail("expects X [..., K] and W [K, N]");
  c.require_equal(x.back(), w[0], "features of X " + shape_str(x) + " vs W " + shape_str(w));
  require_bias(c, 2, w[1], "bias");
  Shape y = x;
  y.back() = w[1];
  require_residual_shape(c, 3, y);
  c.set(0, c.dtype(0), y);
}

// X [..., K] (int8 / float8e4m3fn), W [N, K] of the same type, alpha [N] and bias [N] float32,
// residual of the output shape; the output type is output_dtype.
void quantized_linear(ShapeCtx& c) {
  const Shape& x = c.shape(0);
  const Shape& w = c.shape(1);
  const QuantizedLinearAttrs a = QuantizedLinearAttrs::of(c.node());
  const DType t = c.dtype(0);
  if (t != DType::Int8 && t != DType::Float8E4M3FN) c.fail(std::string("X is ") + dtype_name(t) + ": int8 or float8e4m3fn expected");
  if (c.dtype(1) != t) c.fail(std::string("W is ") + dtype_name(c.dtype(1)) + ", X is " + dtype_name(t));
  if (x.empty() || w.size() != 2) c.fail("expects X [..., K] and W [N, K]");
  c.require_equal(x.back(), w[1], "features of X " + shape_str(x) + " vs W " + shape_str(w));
  if (c.dtype(2) != DType::Float32) c.fail("alpha must be float32");
  require_bias(c, 2, w[0], "alpha");
  if (!c.has(2)) c.fail("alpha (input 2) is required");
  if (c.has(3) && c.dtype(3) != DType::Float32) c.fail("bias must be float32");
  require_bias(c, 3, w[0], "bias");
  Shape y = x;
  y.back() = w[0];
  require_residual_shape(c, 4, y);
  if (a.out_scale > 0.f && a.output_dtype != t) c.fail("an 8-bit output must have X's type");
  if (a.out_scale > 0.f && c.has(4)) c.fail("an 8-bit output takes no residual");
  if (a.gelu && c.has(4)) c.fail("GELU with a residual is not supported");
  c.set(0, a.output_dtype, y);
  if (a.q_scale > 0.f) c.set(1, t, y);
}

// X [..., C] 8-bit, W1 [H, C] and W2 [C, H] of X's type, alpha1 / bias1 float32 [H], alpha2 /
// bias2 float32 [C], residual of X's shape -> output_dtype, X's shape.
void quantized_mlp(ShapeCtx& c) {
  const Shape& x = c.shape(0);
  const Shape& w1 = c.shape(1);
  const Shape& w2 = c.shape(4);
  const QuantizedMlpAttrs a = QuantizedMlpAttrs::of(c.node());
  const DType t = c.dtype(0);
  if (t != DType::Int8 && t != DType::Float8E4M3FN) c.fail(std::string("X is ") + dtype_name(t) + ": int8 or float8e4m3fn expected");
  for (int i : {1, 4})
    if (c.dtype(i) != t) c.fail(std::string(i == 1 ? "W1" : "W2") + " is " + dtype_name(c.dtype(i)) + ", X is " + dtype_name(t));
  if (x.empty() || w1.size() != 2 || w2.size() != 2) c.fail("expects X [..., C], W1 [H, C] and W2 [C, H]");
  c.require_equal(x.back(), w1[1], "features of X " + shape_str(x) + " vs W1 " + shape_str(w1));
  c.require_equal(x.back(), w2[0], "features of X " + shape_str(x) + " vs W2 " + shape_str(w2));
  c.require_equal(w1[0], w2[1], "hidden width of W1 " + shape_str(w1) + " vs W2 " + shape_str(w2));
  for (int i : {2, 5})
    if (!c.has(i)) c.fail(std::string(i == 2 ? "alpha1 (input 2)" : "alpha2 (input 5)") + " is required");
  for (int i : {2, 3, 5, 6}) {
    if (c.has(i) && c.dtype(i) != DType::Float32) c.fail("input " + std::to_string(i) + " (an epilogue vector) must be float32");
    require_bias(c, i, i < 4 ? w1[0] : x.back(), i == 2 ? "alpha1" : i == 3 ? "bias1" : i == 5 ? "alpha2" : "bias2");
  }
  require_residual_shape(c, 7, x);
  c.set(0, a.output_dtype, x);
}

// X [..., D] float, Scale and B float32 [D] -> the 8-bit codes of LayerNorm(X), X's shape.
void layernorm_quantize(ShapeCtx& c) {
  const Shape& x = c.shape(0);
  const LayerNormQuantizeAttrs a = LayerNormQuantizeAttrs::of(c.node());
  if (x.empty()) c.fail("X must have rank >= 1");
  if (c.dtype(0) != DType::Float32 && c.dtype(0) != DType::Float16) c.fail(std::string("X is ") + dtype_name(c.dtype(0)) + ", float expected");
  for (int i = 1; i <= 2; ++i) {
    if (!c.has(i)) continue;
    if (c.dtype(i) != DType::Float32) c.fail(i == 1 ? "Scale must be float32" : "B must be float32");
    require_bias(c, i, x.back(), i == 1 ? "Scale" : "B");
  }
  if (!c.has(1)) c.fail("Scale (input 1) is required");
  c.set(0, a.output_dtype, x);
}

// GELU(X W1 + b1) W2 + b2 (+ residual): X [..., C], W1 [C, hidden], W2 [hidden, Cout].
void mlp(ShapeCtx& c) {
  const Shape& x = c.shape(0);
  const Shape& w1 = c.shape(1);
  const Shape& w2 = c.shape(3);
  MlpAttrs::of(c.node());
  if (x.empty() || w1.size() != 2 || w2.size() != 2) c.fail("expects X [..., C], W1 [C, hidden] and W2 [hidden, Cout]");
  c.require_equal(x.back(), w1[0], "channels of X " + shape_str(x) + " vs W1 " + shape_str(w1));
  c.require_equal(w1[1], w2[0], "hidden features of W1 " + shape_str(w1) + " vs W2 " + shape_str(w2));
  require_bias(c, 2, w1[1], "b1");
  require_bias(c, 4, w2[1], "b2");
  Shape y = x;
  y.back() = w2[1];
  require_residual_shape(c, 5, y);
  c.set(0, c.dtype(0), y);
}

// X [N, H, W, C] (or NCHW with input_layout), W [kh, kw, C/group, Cout] (+ bias) (+ residual).
void conv_nhwc(ShapeCtx& c) {
  Shape x = c.shape(0);
  const ConvNhwcAttrs a = ConvNhwcAttrs::of(c.node());
  if (a.nchw_input && x.size() == 4) x = {x[0], x[2], x[3], x[1]};
  const Shape& w = c.shape(1);
  if (x.size() != 4 || w.size() != 4) c.fail("expects X [N, H, W, C] and W [kh, kw, C/group, Cout]");
  const auto& k = a.kernel;
  const auto& s = a.strides;
  const auto& p = a.pads;
  const int64_t group = a.group;
  c.require_equal(w[0], Dim(k[0]), "weight height vs kernel_shape");
  c.require_equal(w[1], Dim(k[1]), "weight width vs kernel_shape");
  c.require_equal(x[3], w[2] * Dim(group), "input channels of " + shape_str(x) + " vs the weight's " + w[2].brief() + " x group " +
                                               std::to_string(group));
  if (!w[3].is_const() || w[3].value() % group != 0) c.fail("output channels " + w[3].brief() + " must be constant and divisible by group");
  require_bias(c, 2, w[3], "bias");
  Shape y = {x[0], Dim(0), Dim(0), w[3]};
  for (int d = 0; d < 2; ++d) y[1 + d] = floordiv(x[1 + d] + Dim(p[d] + p[d + 2] - k[d]), Dim(s[d])) + Dim(1);
  require_residual_shape(c, 3, y);
  if (a.q_scale > 0.f) {
    if (group < 2 || !x[3].is_const() || group != x[3].value() || !w[3].is_const(x[3].value()))
      c.fail("a quantized output (q_scale) needs a depthwise convolution (group == channels)");
    const bool both = c.node().outputs.size() > 1;
    if (both) c.set(0, c.dtype(0), y);
    c.set(both ? 1 : 0, a.q_dtype, y);
    return;
  }
  c.set(0, c.dtype(0), y);
}

}  // namespace

// unirt.MultiLevelRoiAlign(rois [R, 4], batch_indices [R], level [R], feat_0..feat_k [N, C, H_i, W_i],
// or [N, H_i, W_i, C] with feature_layout NHWC) -> [R, C, output_height, output_width] (or
// [R, output_height, output_width, C] with output_layout NHWC); one spatial scale and one level
// value per map.
void multilevel_roi_align(ShapeCtx& c) {
  const Node& n = c.node();
  const int maps = static_cast<int>(n.inputs.size()) - 3;
  if (maps < 1) c.fail("needs rois, batch_indices, level and at least one feature map");
  const Shape& rois = c.shape(0);
  if (rois.size() != 2) c.fail("rois must be [num_rois, 4], got " + shape_str(rois));
  c.require_equal(rois[1], Dim(4), "the last dimension of rois " + shape_str(rois) + " is 4");
  for (int i : {1, 2}) {
    if (c.rank(i) != 1) c.fail(std::string(i == 1 ? "batch_indices" : "level") + " must be [num_rois], got " + shape_str(c.shape(i)));
    c.require_equal(c.shape(i)[0], rois[0], std::string(i == 1 ? "batch_indices" : "level") + " holds one value per RoI");
  }
  if (c.dtype(1) != DType::Int64 && c.dtype(1) != DType::Int32) c.fail("batch_indices must be int64 or int32");
  auto is_f = [](DType t) { return t == DType::Float32 || t == DType::Float16; };
  if (!is_f(c.dtype(0))) c.fail("rois must be floating point");
  if (!is_f(c.dtype(2)) && c.dtype(2) != DType::Int64 && c.dtype(2) != DType::Int32) c.fail("level must be a float or integer tensor");
  const auto scales = n.attr_floats("spatial_scales");
  const auto levels = n.attr_ints("levels");
  if (static_cast<int>(scales.size()) != maps || static_cast<int>(levels.size()) != maps)
    c.fail("spatial_scales and levels must hold one value per feature map (" + std::to_string(maps) + ")");
  for (float sc : scales)
    if (!(sc > 0.f) || !std::isfinite(sc)) c.fail("spatial_scales must be positive and finite");
  const std::string layout = n.attr_s("feature_layout", "NCHW");
  if (layout != "NCHW" && layout != "NHWC") c.fail("feature_layout must be NCHW or NHWC");
  const size_t ch = layout == "NHWC" ? 3 : 1;
  const Shape& f0 = c.shape(3);
  if (f0.size() != 4) c.fail("feature maps must be 4-D (" + layout + "), got " + shape_str(f0));
  for (int i = 1; i < maps; ++i) {
    const Shape& fi = c.shape(3 + i);
    if (fi.size() != 4 || c.dtype(3 + i) != c.dtype(3)) c.fail("feature map " + std::to_string(i) + " differs in rank or type from map 0");
    c.require_equal(fi[0], f0[0], "batch of feature map " + std::to_string(i));
    c.require_equal(fi[ch], f0[ch], "channels of feature map " + std::to_string(i));
  }
  if (!is_f(c.dtype(3))) c.fail("feature maps must be floating point");
  const int64_t oh = n.attr_i("output_height", 1), ow = n.attr_i("output_width", 1), sr = n.attr_i("sampling_ratio", 0);
  if (oh < 1 || ow < 1 || oh > 4096 || ow > 4096) c.fail("output_height/output_width must be in 1..4096");
  if (sr < 0 || sr > 4096) c.fail("sampling_ratio must be in 0..4096");
  const std::string ct = n.attr_s("coordinate_transformation_mode", "half_pixel");
  if (ct != "half_pixel" && ct != "output_half_pixel") c.fail("coordinate_transformation_mode must be half_pixel or output_half_pixel");
  const std::string out_layout = n.attr_s("output_layout", "NCHW");
  if (out_layout != "NCHW" && out_layout != "NHWC") c.fail("output_layout must be NCHW or NHWC");
  if (out_layout == "NHWC") c.set(0, c.dtype(3), {rois[0], Dim(oh), Dim(ow), f0[ch]});
  else c.set(0, c.dtype(3), {rois[0], f0[ch], Dim(oh), Dim(ow)});
}

// unirt.BoxDecode(rois [..., 4], deltas [..., 4], bound [2] optional) -> deltas' shape; rois of
// the same rank, each dimension equal to deltas' or 1 (broadcast). float32 throughout.
void box_decode(ShapeCtx& c) {
  const Node& n = c.node();
  const Shape& r = c.shape(0);
  const Shape& d = c.shape(1);
  if (d.empty() || r.size() != d.size()) c.fail("rois " + shape_str(r) + " and deltas " + shape_str(d) + " must have one rank");
  c.require_equal(d.back(), Dim(4), "the last dimension of deltas " + shape_str(d) + " is 4");
  c.require_equal(r.back(), Dim(4), "the last dimension of rois " + shape_str(r) + " is 4");
  for (size_t i = 0; i + 1 < d.size(); ++i)
    if (!r[i].is_const(1)) c.require_equal(r[i], d[i], "rois dimension " + std::to_string(i) + " broadcasts to deltas'");
  for (int i = 0; i < 2; ++i)
    if (c.dtype(i) != DType::Float32) c.fail(std::string(i == 0 ? "rois" : "deltas") + " must be float32");
  if (n.inputs.size() > 2 && n.inputs[2] >= 0) {
    if (c.rank(2) != 1 || c.dtype(2) != DType::Float32) c.fail("bound must be float32 [2] (max x, max y)");
    c.require_equal(c.shape(2)[0], Dim(2), "bound holds (max x, max y)");
  }
  const auto stds = n.attr_floats("stds");
  if (stds.size() != 4) c.fail("stds must hold 4 values");
  for (float s : stds)
    if (!std::isfinite(s)) c.fail("stds must be finite");
  const float mr = n.attr_f("max_ratio", 0.f);
  if (!(mr > 0.f) || !std::isfinite(mr)) c.fail("max_ratio must be positive and finite");
  c.set(0, DType::Float32, d);
}

// unirt.MultiLevelTopK(s_0..s_L [B, n_l], k_0..k_L (one int64 each, known to the planner)) ->
// values [B, sum k_l] (the levels' top values side by side), indices_l [B, k_l] int64.
void multilevel_topk(ShapeCtx& c) {
  const Node& n = c.node();
  const size_t levels = n.inputs.size() / 2;
  if (levels < 2 || n.inputs.size() != 2 * levels || n.outputs.size() != levels + 1)
    c.fail("needs L >= 2 score rows, L k values and 1 + L outputs (got " + std::to_string(n.inputs.size()) + " inputs, " +
           std::to_string(n.outputs.size()) + " outputs)");
  Dim total(0);
  for (size_t l = 0; l < levels; ++l) {
    const Shape& x = c.shape(static_cast<int>(l));
    if (x.size() != 2) c.fail("scores of level " + std::to_string(l) + " must be [batch, n], got " + shape_str(x));
    if (c.dtype(static_cast<int>(l)) != c.dtype(0)) c.fail("every level's scores must have one type");
    if (c.dtype(0) != DType::Float32 && c.dtype(0) != DType::Float16) c.fail("scores must be float32 or float16");
    if (l) c.require_equal(x[0], c.shape(0)[0], "batch of level " + std::to_string(l));
    const auto k = c.values(static_cast<int>(levels + l));
    if (!k || k->size() != 1) c.fail("k of level " + std::to_string(l) + " must be one value known from shapes or constants");
    const Dim kd = (*k)[0];
    if (dim_lt(kd, Dim(0)) == Truth::True) c.fail("k of level " + std::to_string(l) + " is negative (" + kd.brief() + ")");
    if (dim_lt(x[1], kd) == Truth::True) c.fail("k " + kd.brief() + " exceeds level " + std::to_string(l) + "'s " + x[1].brief() + " scores");
    if (dim_lt(x[1], kd) == Truth::Unknown) c.require_equal(dmin(kd, x[1]), kd, "k " + kd.brief() + " <= " + x[1].brief());
    total = total + kd;
    c.set(static_cast<int>(l + 1), DType::Int64, {x[0], kd});
  }
  c.set(0, c.dtype(0), {c.shape(0)[0], total});
}

void register_shape_fns_fused(std::map<std::string, ShapeFn>& m) {
  m["unirt.BoxDecode"] = box_decode;
  m["unirt.MultiLevelTopK"] = multilevel_topk;
  m["unirt.MultiLevelRoiAlign"] = multilevel_roi_align;
  m["unirt.Attention"] = attention;
  m["unirt.ConvNHWC"] = conv_nhwc;
  m["unirt.Linear"] = linear;
  m["unirt.Mlp"] = mlp;
  m["unirt.QuantizedMlp"] = quantized_mlp;
  m["unirt.QuantizedLinear"] = quantized_linear;
  m["unirt.LayerNormQuantize"] = layernorm_quantize;
}

}  // namespace unirt
