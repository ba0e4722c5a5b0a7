// The arithmetic of unirt.QuantizedLinear on the CPU, shared with unirt.QuantizedMlp (the fused
// pair computes exactly what the two layers do): the 8-bit dot product (int8 exact in int32,
// float8 E4M3FN in float32), GELU in the tanh form the GPU epilogues use, and the requantize of an
// 8-bit output (round half to even, saturate; int8 NaN to 0).
#pragma once
#include <cmath>
#include <cstdint>

#include "backend/float8_rule.h"

namespace unirt {
namespace cpu {

inline float gelu_tanh(float v) { return 0.5f * v * (1.f + std::tanh(0.7978845608f * (v + 0.044715f * v * v * v))); }

inline float quantized_dot(bool fp8, const uint8_t* x, const uint8_t* w, int64_t K) {
  if (fp8) {
    float acc = 0.f;
    for (int64_t k = 0; k < K; ++k) acc += e4m3fn_to_float(x[k]) * e4m3fn_to_float(w[k]);
    return acc;
  }
  int32_t a = 0;
  for (int64_t k = 0; k < K; ++k) a += int32_t(static_cast<int8_t>(x[k])) * int32_t(static_cast<int8_t>(w[k]));
  return static_cast<float>(a);
}

// v is already divided by the output scale (multiplied by its reciprocal).
inline uint8_t requantize(bool fp8, float v) {
  if (fp8) return float_to_e4m3fn(v, true);
  return static_cast<uint8_t>(static_cast<int8_t>(std::isnan(v) ? 0.f : std::fmin(127.f, std::fmax(-128.f, std::nearbyint(v)))));
}

}  // namespace cpu
}  // namespace unirt
