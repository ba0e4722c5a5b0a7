// float8 E4M3FN (ONNX FLOAT8E4M3FN, the E4M3 of Hopper's FP8 tensor cores): 1 sign bit, 4
// exponent bits (bias 7), 3 mantissa bits, no infinities, NaN = S.1111.111, largest finite 448.
// Conversions shared by the CPU and CUDA kernels, bit for bit: round to nearest even; out of
// range saturates to +-448 (saturate, ONNX's default, infinities included) or becomes NaN (with
// the ONNX reference's one exception below).
#pragma once
#include <cmath>
#include <cstdint>

#include "backend/host_device.h"
#if defined(__CUDACC__)
#include <cuda_fp8.h>
#endif

namespace unirt {

UNIRT_HOST_DEVICE inline uint8_t float_to_e4m3fn(float f, bool saturate) {
  const uint8_t sign = f < 0.f || (f == 0.f && std::signbit(f)) ? 0x80 : 0x00;
  const float a = std::fabs(f);
  if (a != a) return sign | 0x7F;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  // Hopper/Ada convert in one instruction (cvt.rn.satfinite.e4m3x2): the same rounding to
  // nearest even and saturation to +-448 (infinities included) as the code below, which the CPU
  // runs (tests/cpp/cuda compare the two bit for bit). NaN keeps its sign above.
  if (saturate) return static_cast<uint8_t>(__nv_cvt_float_to_fp8(f, __NV_SATFINITE, __NV_E4M3));
#endif
  if (std::isinf(a)) return sign | (saturate ? 0x7E : 0x7F);
  int e2 = 0;
  std::frexp(a, &e2);  // a = m * 2^e2, m in [0.5, 1): floor(log2 a) = e2 - 1
  int E = e2 - 1;
  if (a == 0.f || E < -6) {  // subnormal range: multiples of 2^-9 (code k is k * 2^-9, k = 8 is 2^-6)
    const int q = static_cast<int>(std::nearbyint(std::ldexp(a, 9)));
    return sign | static_cast<uint8_t>(q);
  }
  const float scaled = std::ldexp(a, 3 - E);  // in [8, 16)
  if (!saturate && E == 8 && scaled >= 15.f) {
    // [480, 512) truncates to the NaN pattern: the ONNX reference (and ONNX Runtime) take 448
    // there, and NaN only when the rounding would go up. Kept, so both agree with them bit for bit.
    return sign | (scaled - 15.f >= 0.5f ? 0x7F : 0x7E);
  }
  int q = static_cast<int>(std::nearbyint(scaled));  // in [8, 16]
  if (q == 16) q = 8, ++E;
  const int code = ((E + 7) << 3) | (q - 8);
  if (code > 0x7E) return sign | (saturate ? 0x7E : 0x7F);
  return sign | static_cast<uint8_t>(code);
}

UNIRT_HOST_DEVICE inline float e4m3fn_to_float(uint8_t c) {
  const int e = (c >> 3) & 15, m = c & 7;
  float v;
  if (e == 15 && m == 7) v = NAN;
  else if (e == 0) v = std::ldexp(static_cast<float>(m), -9);
  else v = std::ldexp(static_cast<float>(8 + m), e - 10);
  return (c & 0x80) ? -v : v;
}

}  // namespace unirt
