// Loads and stores that read float16 and float32 tensors as float, for kernels templated on T.
#pragma once
#include <cuda_fp16.h>

namespace unirt {
namespace cuda {

template <typename T> __device__ __forceinline__ float ld(const T* p, int64_t i) { return static_cast<float>(p[i]); }
template <> __device__ __forceinline__ float ld<__half>(const __half* p, int64_t i) { return __half2float(p[i]); }
template <typename T> __device__ __forceinline__ void st(T* p, int64_t i, float v) { p[i] = static_cast<T>(v); }
template <> __device__ __forceinline__ void st<__half>(__half* p, int64_t i, float v) { p[i] = __float2half(v); }

}  // namespace cuda
}  // namespace unirt
