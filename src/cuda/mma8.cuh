// The 8-bit mma.sync pieces shared by the hand-written 8-bit kernels (quant_gemm_short_k.cu,
// quantized_mlp.cu): m16n8k32 for int8 (int32 accumulators) and float8 E4M3 (float32), the
// accumulator-to-float conversion, and two output codes packed for a 16-bit store.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/quantize_rule.h"

namespace unirt {
namespace cuda {

template <bool FP8>
struct Mma8;
template <>
struct Mma8<false> {
  using Acc = int;
  static __device__ __forceinline__ void run(int (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};
template <>
struct Mma8<true> {
  using Acc = float;
  static __device__ __forceinline__ void run(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};

// int32 -> float32 without the quarter-rate I2F: 1.5 * 2^23 + x has x in its low mantissa bits for
// |x| <= 2^22, which holds for K <= 256 (|acc| <= 128 * 128 * 256 = 2^22).
__device__ __forceinline__ float acc_to_float(int x) { return __int_as_float(x + 0x4B400000) - 12582912.f; }
__device__ __forceinline__ float acc_to_float(float x) { return x; }

// Codes of a and b (the fused producers' rule), a in the low byte.
__device__ __forceinline__ uint16_t two_codes(bool fp8, float a, float b, float inv) {
  return static_cast<uint16_t>(fused_code(fp8, a, inv) | (fused_code(fp8, b, inv) << 8));
}

}  // namespace cuda
}  // namespace unirt
