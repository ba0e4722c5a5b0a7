#include "ir/fused_attrs.h"

#include <cmath>
#include <string>

namespace unirt {
namespace {

[[noreturn]] void refuse(const Node& n, const std::string& msg) { throw Error(n.describe() + ": " + msg); }

std::string ints_text(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

// A producer's q_scale / q_dtype (the codes it writes for an 8-bit consumer), when present.
void quantized_output(const Node& n, float& scale, DType& type) {
  if (!n.has_attr("q_scale")) return;
  scale = n.attr_f("q_scale", 0.f);
  if (!(scale > 0.f) || !std::isfinite(scale)) refuse(n, "q_scale must be a finite value > 0");
  const int64_t t = n.attr_i("q_dtype", static_cast<int64_t>(DType::Int8));
  if (t != static_cast<int64_t>(DType::Int8) && t != static_cast<int64_t>(DType::Float8E4M3FN))
    refuse(n, "q_dtype " + std::to_string(t) + ": int8 or float8e4m3fn expected");
  type = static_cast<DType>(t);
}

}  // namespace

ConvNhwcAttrs ConvNhwcAttrs::of(const Node& n) {
  ConvNhwcAttrs a;
  a.kernel = n.attr_ints("kernel_shape");
  a.strides = n.attr_ints("strides", {1, 1});
  a.pads = n.attr_ints("pads", {0, 0, 0, 0});
  a.group = n.attr_i("group", 1);
  const std::string layout = n.attr_s("input_layout", "NHWC");
  if (layout != "NHWC" && layout != "NCHW") refuse(n, "input_layout '" + layout + "' (NHWC or NCHW expected)");
  a.nchw_input = layout == "NCHW";
  if (a.kernel.size() != 2 || a.strides.size() != 2 || a.pads.size() != 4)
    refuse(n, "kernel_shape " + ints_text(a.kernel) + ", strides " + ints_text(a.strides) + " and pads " + ints_text(a.pads) +
                  " must have 2, 2 and 4 values");
  for (int64_t k : a.kernel)
    if (k < 1 || k > resource_limits().max_dim) refuse(n, "kernel_shape " + ints_text(a.kernel) + " must be positive");
  for (int64_t s : a.strides)
    if (s < 1 || s > resource_limits().max_dim) refuse(n, "strides " + ints_text(a.strides) + " must be positive");
  for (int64_t p : a.pads)
    if (p < 0 || p > resource_limits().max_dim) refuse(n, "pads " + ints_text(a.pads) + " must be in 0.." + std::to_string(resource_limits().max_dim));
  if (a.group < 1) refuse(n, "group " + std::to_string(a.group) + " must be positive");
  if (a.nchw_input && a.group != 1) refuse(n, "an NCHW input is only supported with one group");
  quantized_output(n, a.q_scale, a.q_dtype);
  if (n.outputs.size() > 1 && !(a.q_scale > 0.f)) refuse(n, "a second output needs q_scale (the quantized copy of Y)");
  a.codes_only = a.q_scale > 0.f && n.outputs.size() == 1;
  return a;
}

LinearAttrs LinearAttrs::of(const Node& n) {
  const std::string act = n.attr_s("activation", "");
  if (!act.empty() && act != "gelu") refuse(n, "activation '" + act + "' is not supported (none or gelu)");
  LinearAttrs a;
  a.gelu = act == "gelu";
  return a;
}

QuantizedLinearAttrs QuantizedLinearAttrs::of(const Node& n) {
  const std::string act = n.attr_s("activation", "");
  if (!act.empty() && act != "gelu") refuse(n, "activation '" + act + "' is not supported (none or gelu)");
  QuantizedLinearAttrs a;
  a.gelu = act == "gelu";
  a.out_scale = n.attr_f("out_scale", 0.f);
  if (!(a.out_scale >= 0.f) || !std::isfinite(a.out_scale)) refuse(n, "out_scale must be a finite value >= 0");
  const int64_t t = n.attr_i("output_dtype", static_cast<int64_t>(DType::Float32));
  a.output_dtype = t >= 0 && t < 64 && dtype_supported(static_cast<int32_t>(t)) ? static_cast<DType>(t) : DType::Undefined;
  const bool eight = a.output_dtype == DType::Int8 || a.output_dtype == DType::Float8E4M3FN;
  if (!eight && a.output_dtype != DType::Float32 && a.output_dtype != DType::Float16)
    refuse(n, "output_dtype " + std::to_string(t) + ": float32, float16, int8 or float8e4m3fn expected");
  if (eight != (a.out_scale > 0.f)) refuse(n, "an 8-bit output_dtype needs out_scale > 0, and only it takes one");
  a.q_scale = n.attr_f("q_scale", 0.f);
  if (!(a.q_scale >= 0.f) || !std::isfinite(a.q_scale)) refuse(n, "q_scale must be a finite value >= 0");
  if ((a.q_scale > 0.f) != (n.outputs.size() > 1)) refuse(n, "a second output (the output's codes) comes with q_scale > 0, and only it");
  if (a.q_scale > 0.f && (eight || !n.has_input(4))) refuse(n, "q_scale needs a float output with a residual");
  return a;
}

QuantizedMlpAttrs QuantizedMlpAttrs::of(const Node& n) {
  QuantizedMlpAttrs a;
  a.hidden_scale = n.attr_f("hidden_scale", 0.f);
  if (!(a.hidden_scale > 0.f) || !std::isfinite(a.hidden_scale)) refuse(n, "hidden_scale must be a finite value > 0");
  const int64_t t = n.attr_i("output_dtype", static_cast<int64_t>(DType::Float32));
  a.output_dtype = t >= 0 && t < 64 && dtype_supported(static_cast<int32_t>(t)) ? static_cast<DType>(t) : DType::Undefined;
  if (a.output_dtype != DType::Float32 && a.output_dtype != DType::Float16)
    refuse(n, "output_dtype " + std::to_string(t) + ": float32 or float16 expected");
  return a;
}

LayerNormQuantizeAttrs LayerNormQuantizeAttrs::of(const Node& n) {
  LayerNormQuantizeAttrs a;
  a.epsilon = n.attr_f("epsilon", 1e-5f);
  a.y_scale = n.attr_f("y_scale", 0.f);
  if (!(a.epsilon >= 0.f) || !std::isfinite(a.epsilon)) refuse(n, "epsilon must be a finite value >= 0");
  if (!(a.y_scale > 0.f) || !std::isfinite(a.y_scale)) refuse(n, "y_scale must be a finite value > 0");
  const int64_t t = n.attr_i("output_dtype", static_cast<int64_t>(DType::Int8));
  if (t != static_cast<int64_t>(DType::Int8) && t != static_cast<int64_t>(DType::Float8E4M3FN))
    refuse(n, "output_dtype " + std::to_string(t) + ": int8 or float8e4m3fn expected");
  a.output_dtype = static_cast<DType>(t);
  return a;
}

MlpAttrs MlpAttrs::of(const Node& n) {
  const std::string act = n.attr_s("activation", "gelu");
  if (act != "gelu") refuse(n, "activation '" + act + "' is not supported (gelu)");
  return {};
}

AttentionAttrs AttentionAttrs::of(const Node& n) {
  AttentionAttrs a;
  a.num_heads = n.attr_i("num_heads");
  a.head_dim = n.attr_i("head_dim");
  a.scale = n.attr_f("scale", 1.f);
  if (a.num_heads < 1 || a.head_dim < 1 || a.num_heads > 4096 || a.head_dim > 4096)
    refuse(n, "num_heads " + std::to_string(a.num_heads) + " and head_dim " + std::to_string(a.head_dim) + " must be in 1..4096");
  quantized_output(n, a.q_scale, a.q_dtype);
  return a;
}

}  // namespace unirt
