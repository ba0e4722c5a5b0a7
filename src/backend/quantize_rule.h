// QuantizeLinear / DequantizeLinear's arithmetic, shared by the CPU and CUDA kernels so that both
// give the same integers (float32 division, round half to even, saturation):
//   quantize:   q = saturate(rint(x / scale) + zero_point)
//   dequantize: y = (x - zero_point) * scale
// and which scale an element uses: one for the tensor, one per index along `axis`, or one per
// block of `block_size` indices along `axis` (opset 21's blocked quantization).
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "backend/float8_rule.h"
#include "backend/host_device.h"
#include "ir/dim.h"
#include "ir/dtype.h"
#include "ir/graph.h"

namespace unirt {

enum class QuantGranularity : int { Tensor = 0, Axis = 1, Block = 2 };

// Element i of x [outer, A, inner] (around the axis) reads scale index scale_index(i).
struct QuantLayout {
  QuantGranularity granularity = QuantGranularity::Tensor;
  int64_t A = 1, inner = 1;
  int64_t blocks = 1, block_size = 1;  // Block: the scale has `blocks` = ceil(A / block_size) along the axis
};

UNIRT_HOST_DEVICE inline int64_t quant_scale_index(const QuantLayout& q, int64_t i) {
  if (q.granularity == QuantGranularity::Tensor) return 0;
  const int64_t a = (i / q.inner) % q.A;
  if (q.granularity == QuantGranularity::Axis) return a;
  const int64_t o = i / (q.inner * q.A);
  return (o * q.blocks + a / q.block_size) * q.inner + i % q.inner;
}

// The quantized value of x in [lo, hi]. A NaN quantizes to the zero point (it has no integer):
// it dequantizes to 0.
UNIRT_HOST_DEVICE inline int32_t quantize_value(float x, float scale, int32_t zero_point, int32_t lo, int32_t hi) {
#ifdef __CUDA_ARCH__
  const float r = rintf(__fdiv_rn(x, scale));
#else
  const float r = std::nearbyint(x / scale);
#endif
  if (r != r) return zero_point;
  const float v = r + static_cast<float>(zero_point);
  if (v <= static_cast<float>(lo)) return lo;
  if (v >= static_cast<float>(hi)) return hi;
  return static_cast<int32_t>(v);
}

// The quantize of the fused producers (unirt.LayerNormQuantize, and a ConvNHWC / Attention /
// QuantizedLinear with q_scale), on both backends: x times the float32 reciprocal of the scale,
// rounded half to even, saturated (int8: NaN to 0; E4M3FN: float_to_e4m3fn of the product). One
// multiply where QuantizeLinear divides: the IEEE division cost the 5x5 depthwise conv 40% of its
// time. The two rules differ by one code only where x / scale lies within a float32 rounding of a
// half-integer. inv_scale is computed once as 1.f / scale.
UNIRT_HOST_DEVICE inline uint8_t fused_code_int8(float x, float inv_scale) {
  float v = x * inv_scale;
  if (v != v) return 0;
#ifdef __CUDA_ARCH__
  v = fminf(fmaxf(v, -128.f), 127.f);
  return static_cast<uint8_t>(__float_as_int(v + 12582912.f) & 0xFF);  // 1.5 * 2^23: the low byte is rint(v)
#else
  v = std::fmin(std::fmax(v, -128.f), 127.f);
  return static_cast<uint8_t>(static_cast<int8_t>(std::nearbyint(v)));
#endif
}
UNIRT_HOST_DEVICE inline uint8_t fused_code_e4m3fn(float x, float inv_scale) { return float_to_e4m3fn(x * inv_scale, true); }
// The code of x as int8 or (fp8) float8 E4M3FN: the kernels' one call for either type.
UNIRT_HOST_DEVICE inline uint8_t fused_code(bool fp8, float x, float inv_scale) {
  return fp8 ? fused_code_e4m3fn(x, inv_scale) : fused_code_int8(x, inv_scale);
}

// float8 E4M3FN: q = e4m3fn(x / scale + zero_point), rounded to nearest even, saturating to
// +-448 unless `saturate` is off (then NaN); dequantize: (x - zero_point) * scale in float32.
UNIRT_HOST_DEVICE inline uint8_t quantize_e4m3fn(float x, float scale, uint8_t zero_point, bool saturate) {
#ifdef __CUDA_ARCH__
  const float v = __fadd_rn(__fdiv_rn(x, scale), e4m3fn_to_float(zero_point));
#else
  const float v = x / scale + e4m3fn_to_float(zero_point);
#endif
  return float_to_e4m3fn(v, saturate);
}

UNIRT_HOST_DEVICE inline float dequantize_e4m3fn(uint8_t x, uint8_t zero_point, float scale) {
  return (e4m3fn_to_float(x) - e4m3fn_to_float(zero_point)) * scale;
}

// One int64 subtraction, then one rounding to float (as ONNX Runtime computes it).
UNIRT_HOST_DEVICE inline float dequantize_value(int32_t x, int32_t zero_point, float scale) {
  return static_cast<float>(static_cast<int64_t>(x) - static_cast<int64_t>(zero_point)) * scale;
}

// The layout of x's scale, checked: a scalar or one-element scale is per tensor (axis unused); a
// 1-D scale of x.shape[axis] elements is per axis; with block_size > 0, a scale of x's rank whose
// dim `axis` is ceil(x.shape[axis] / block_size) and whose other dims are x's. `axis` may be
// negative. Returns "" or what is wrong.
inline std::string quant_layout(const std::vector<int64_t>& x, const std::vector<int64_t>& scale, int64_t axis, int64_t block_size,
                                QuantLayout& q) {
  q = QuantLayout{};
  int64_t n = 1;
  for (int64_t d : scale) n *= d;
  if (block_size <= 0 && scale.size() <= 1 && n == 1) return "";  // per tensor
  const int64_t r = static_cast<int64_t>(x.size());
  if (r == 0) return "a scale of " + dims_text(scale) + " for a scalar input (one scale expected)";
  if (axis < -r || axis >= r) return "axis " + std::to_string(axis) + " out of range for input " + dims_text(x);
  if (axis < 0) axis += r;
  q.A = x[axis];
  q.inner = 1;
  for (size_t i = axis + 1; i < x.size(); ++i) q.inner *= x[i];
  if (block_size <= 0) {
    if (scale.size() != 1 || scale[0] != x[axis])
      return "scale " + dims_text(scale) + " for input " + dims_text(x) + ": expected one element, or " + std::to_string(x[axis]) +
             " along axis " + std::to_string(axis);
    q.granularity = QuantGranularity::Axis;
    return "";
  }
  if (scale.size() != x.size()) return "blocked scale " + dims_text(scale) + " must have the rank of input " + dims_text(x);
  q.block_size = block_size;
  q.blocks = (x[axis] + block_size - 1) / block_size;
  for (size_t i = 0; i < x.size(); ++i) {
    const int64_t want = static_cast<int64_t>(i) == axis ? q.blocks : x[i];
    if (scale[i] != want)
      return "blocked scale " + dims_text(scale) + " for input " + dims_text(x) + " and block_size " + std::to_string(block_size) +
             ": dim " + std::to_string(i) + " must be " + std::to_string(want);
  }
  q.granularity = QuantGranularity::Block;
  return "";
}

// quant_layout for a QuantizeLinear / DequantizeLinear node's inputs, with the zero point's
// agreement; the attributes come from the node (axis 1 and block_size 0 when absent).
inline std::string quant_node_layout(const Node& node, const std::vector<int64_t>& x, const std::vector<int64_t>& scale,
                                     const std::vector<int64_t>* zero_point, QuantLayout& q) {
  std::string err = quant_layout(x, scale, node.attr_i("axis", 1), node.attr_i("block_size", 0), q);
  if (err.empty() && zero_point) {
    int64_t a = 1, b = 1;
    for (int64_t d : *zero_point) a *= d;
    for (int64_t d : scale) b *= d;
    if (a != b) err = "the zero point has " + std::to_string(a) + " elements and the scale " + std::to_string(b);
  }
  return err;
}

// quant_node_layout, or an Error naming the node.
inline QuantLayout checked_quant_layout(const Node& node, const std::vector<int64_t>& x, const std::vector<int64_t>& scale,
                                        const std::vector<int64_t>* zero_point) {
  QuantLayout q;
  const std::string err = quant_node_layout(node, x, scale, zero_point, q);
  if (!err.empty()) throw Error(node.describe() + ": " + err);
  return q;
}

// The saturation range of a quantized type: int8 [-128, 127], uint8 [0, 255].
inline bool quant_range(DType t, int32_t& lo, int32_t& hi) {
  if (t == DType::Int8) return lo = -128, hi = 127, true;
  if (t == DType::Uint8) return lo = 0, hi = 255, true;
  return false;
}

}  // namespace unirt
