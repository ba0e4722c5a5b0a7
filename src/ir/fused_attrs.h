// Attributes of the fused unirt.* ops, parsed and range-checked in one place: their shape
// functions (passes/shape_fns_fused.cpp) and both backends' kernels read these structs, so an
// attribute means the same everywhere and a bad value is refused with one message.
#pragma once
#include <cstdint>
#include <vector>

#include "ir/graph.h"

namespace unirt {

// unirt.ConvNHWC: kernel_shape, strides (2 each), pads (top, left, bottom, right), group, and
// input_layout "NHWC" (default) or "NCHW" (the first patch embedding reading the image directly).
//
// Depthwise only: with q_scale > 0 the conv also writes QuantizeLinear(Y, q_scale) (zero point 0,
// saturating) as q_dtype codes (int8 or float8e4m3fn; passes/lower_quantized_layers.cpp): as its
// second output when the node has two (Y is read elsewhere too), else in place of Y. The codes are
// those of Y as stored (float16 in FP16 engines), by the fused producers' rule
// (backend/quantize_rule.h: times 1 / q_scale, where QuantizeLinear divides).
struct ConvNhwcAttrs {
  std::vector<int64_t> kernel, strides, pads;
  int64_t group = 1;
  bool nchw_input = false;
  float q_scale = 0.f;  // > 0: quantized output
  DType q_dtype = DType::Int8;
  bool codes_only = false;  // q_scale with one output: the codes replace Y
  // Throws Error naming the node when a value is missing or out of range.
  static ConvNhwcAttrs of(const Node& n);
};

// unirt.Linear: activation "" (none) or "gelu" (exact erf form).
struct LinearAttrs {
  bool gelu = false;
  static LinearAttrs of(const Node& n);
};

// unirt.QuantizedLinear (passes/lower_quantized_layers.cpp): an 8-bit GEMM with its dequantize
// and requantize fused. Inputs X (int8 or float8e4m3fn [..., K]), W (the same type, [N, K]), alpha
// (float32 [N]: X's scale times W's per-channel scale), bias (float32 [N], optional), residual
// (float [..., N], optional). Z = alpha[n] * (X W^T)[m, n] + bias[n]; the output is Z + residual
// (float: output_dtype float32 or float16) or, with out_scale > 0, act(Z) / out_scale rounded and
// saturated to X's type; activation "" or "gelu" (tanh form), the latter only without a residual.
//
// With q_scale > 0 (a float output with a residual), a second output holds the codes of the output
// as stored, QuantizeLinear(Y, q_scale) in X's type: the residual stream's quantized copy for the
// next 8-bit layer.
struct QuantizedLinearAttrs {
  bool gelu = false;
  float out_scale = 0.f;  // > 0: 8-bit output
  DType output_dtype = DType::Float32;
  float q_scale = 0.f;  // > 0: the second output, the output's codes
  static QuantizedLinearAttrs of(const Node& n);
};

// unirt.QuantizedMlp (passes/fuse_quantized_mlp.cpp): a GELU unirt.QuantizedLinear with an 8-bit
// output (fc1) and the residual one that reads it (fc2) as one op. Inputs X (int8 or float8e4m3fn
// [..., C]), W1 [H, C], alpha1 and bias1 (float32 [H]), W2 [C, H], alpha2 and bias2 (float32 [C]),
// residual (float [..., C]); biases and residual optional. Exactly the two layers' arithmetic:
// the hidden codes are quantize(GELU(alpha1 (X W1^T) + bias1) / hidden_scale) in X's type, and
// the output alpha2 (codes W2^T) + bias2 + residual in output_dtype (float32 or float16). The CUDA
// kernel keeps the H-wide hidden codes on chip.
struct QuantizedMlpAttrs {
  float hidden_scale = 0.f;
  DType output_dtype = DType::Float32;
  static QuantizedMlpAttrs of(const Node& n);
};

// unirt.LayerNormQuantize (passes/lower_quantized_layers.cpp): inputs X (float [..., D]), Scale and
// B (float32 [D]); LayerNormalization over the last axis (epsilon), written as QuantizeLinear(y,
// y_scale) codes by the fused producers' rule (backend/quantize_rule.h): int8 or float8e4m3fn
// (output_dtype), zero point 0, saturating.
struct LayerNormQuantizeAttrs {
  float epsilon = 1e-5f, y_scale = 0.f;
  DType output_dtype = DType::Int8;
  static LayerNormQuantizeAttrs of(const Node& n);
};

// unirt.Mlp: GELU(X W1 + b1) W2 + b2; activation must be "gelu".
struct MlpAttrs {
  static MlpAttrs of(const Node& n);
};

// unirt.Attention over packed qkv: num_heads and head_dim in 1..4096, scale on Q K^T.
// With q_scale > 0 (passes/lower_quantized_layers.cpp) the output is QuantizeLinear(O, q_scale)
// as q_dtype codes (int8 or float8e4m3fn): the projection's 8-bit input, written by the attention.
struct AttentionAttrs {
  int64_t num_heads = 0, head_dim = 0;
  float scale = 1.f;
  float q_scale = 0.f;
  DType q_dtype = DType::Int8;
  static AttentionAttrs of(const Node& n);
};

}  // namespace unirt
