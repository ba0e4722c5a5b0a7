// GELU on the GPU's float32 registers, shared by the hand-written kernels (mlp.cu,
// quant_gemm_short_k.cu) that apply it in their epilogues.
#pragma once
#include <cuda_runtime.h>

namespace unirt {
namespace cuda {

// GELU in its tanh form, v/2 (1 + tanh(u)) with u = sqrt(2/pi) (v + 0.044715 v^3), written as
// v / (1 + e^(-2u)): one exp and one reciprocal on the special function unit, float32-accurate.
// This is the function cuBLASLt's GELU epilogue computes for the unfused float16 path (within 1e-3
// of the erf form; float16 spacing at 2 is 2e-3). CUDA's erff (~30 instructions, 4C per row) left
// the fused kernel issue-bound in Nsight Compute; tanh.approx.f32 (relative error 2^-11) cost
// top-1 agreement on UniFormer-S+.
__device__ __forceinline__ float gelu_tanh_form(float v) {
  const float u2 = v * fmaf(0.0713548162f, v * v, 1.5957691216f);  // 2u
  return __fdividef(v, 1.f + __expf(-u2));
}

// The same tanh form with the hardware tanh (tanh.approx.f32: one special-function op instead of
// two, relative error 2^-11). For epilogues whose output is an 8-bit code: the code's step (1/127
// of the range, or E4M3's 2^-3 relative) is 16-250 times that error.
__device__ __forceinline__ float gelu_tanh_approx(float v) {
  const float u = v * fmaf(0.0356774081f, v * v, 0.7978845608f);  // sqrt(2/pi) (v + 0.044715 v^3)
  float t;
  asm("tanh.approx.f32 %0, %1;" : "=f"(t) : "f"(u));
  const float h = 0.5f * v;
  return fmaf(h, t, h);
}

}  // namespace cuda
}  // namespace unirt
