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
struct ConvNhwcAttrs {
  std::vector<int64_t> kernel, strides, pads;
  int64_t group = 1;
  bool nchw_input = false;
  // Throws Error naming the node when a value is missing or out of range.
  static ConvNhwcAttrs of(const Node& n);
};

// unirt.Linear: activation "" (none) or "gelu" (exact erf form).
struct LinearAttrs {
  bool gelu = false;
  static LinearAttrs of(const Node& n);
};

// unirt.Mlp: GELU(X W1 + b1) W2 + b2; activation must be "gelu".
struct MlpAttrs {
  static MlpAttrs of(const Node& n);
};

// unirt.Attention over packed qkv: num_heads and head_dim in 1..4096, scale on Q K^T.
struct AttentionAttrs {
  int64_t num_heads = 0, head_dim = 0;
  float scale = 1.f;
  static AttentionAttrs of(const Node& n);
};

}  // namespace unirt
