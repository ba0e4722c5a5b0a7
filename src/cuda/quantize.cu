// QuantizeLinear and DequantizeLinear on the GPU: one thread per element, the arithmetic and the
// scale layout of backend/quantize_rule.h (the CPU kernels' too), float32 or float16 on the float
// side, int8, uint8 or float8 E4M3FN (and int32 for DequantizeLinear) on the quantized side. These run the QDQ
// nodes a fusion has not absorbed.
#include "backend/quantize_rule.h"
#include "cuda/cuda_context.h"
#include "cuda/half_io.cuh"

namespace unirt {
namespace cuda {
namespace {

template <typename Z>
__device__ __forceinline__ int32_t zp_at(const Z* zp, int64_t k) { return zp ? static_cast<int32_t>(zp[k]) : 0; }

template <typename X, typename S, typename Y>
__global__ void quantize_kernel(const X* x, const S* scale, const Y* zp, Y* y, int64_t n, QuantLayout q, int32_t lo, int32_t hi) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t k = quant_scale_index(q, i);
    y[i] = static_cast<Y>(quantize_value(ld(x, i), ld(scale, k), zp_at(zp, k), lo, hi));
  }
}

template <typename X, typename S>
__global__ void quantize_e4m3fn_kernel(const X* x, const S* scale, const uint8_t* zp, uint8_t* y, int64_t n, QuantLayout q, bool saturate) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t k = quant_scale_index(q, i);
    y[i] = quantize_e4m3fn(ld(x, i), ld(scale, k), zp ? zp[k] : 0, saturate);
  }
}

template <typename S, typename Y>
__global__ void dequantize_e4m3fn_kernel(const uint8_t* x, const S* scale, const uint8_t* zp, Y* y, int64_t n, QuantLayout q) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t k = quant_scale_index(q, i);
    st(y, i, dequantize_e4m3fn(x[i], zp ? zp[k] : 0, ld(scale, k)));
  }
}

template <typename X, typename S, typename Y>
__global__ void dequantize_kernel(const X* x, const S* scale, const X* zp, Y* y, int64_t n, QuantLayout q) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t k = quant_scale_index(q, i);
    st(y, i, dequantize_value(static_cast<int32_t>(x[i]), zp_at(zp, k), ld(scale, k)));
  }
}

// Per-tensor scale, float16 in, 8-bit out, eight elements a thread (16 bytes read, 8 written): the
// activation quantizes of an INT8/FP8 engine, which the generic kernel above ran at a quarter of
// the memory bandwidth. Same arithmetic (backend/quantize_rule.h), bit for bit.
template <typename S, bool FP8>
__global__ void quantize_tensor_half8(const __half* __restrict__ x, const S* __restrict__ scale, const uint8_t* __restrict__ zp,
                                      uint8_t* __restrict__ y, int64_t n8, int32_t lo, int32_t hi, bool saturate) {
  const float sc = ld(scale, 0);
  const int32_t z = zp ? (FP8 ? 0 : static_cast<int32_t>(lo < 0 ? static_cast<int8_t>(zp[0]) : zp[0])) : 0;
  const uint8_t z8 = zp && FP8 ? zp[0] : 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n8; i += int64_t(gridDim.x) * blockDim.x) {
    const uint4 v = reinterpret_cast<const uint4*>(x)[i];
    const __half2* h = reinterpret_cast<const __half2*>(&v);
    uint8_t c[8];
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const float2 f = __half22float2(h[k]);
      if constexpr (FP8) {
        c[2 * k] = quantize_e4m3fn(f.x, sc, z8, saturate);
        c[2 * k + 1] = quantize_e4m3fn(f.y, sc, z8, saturate);
      } else {
        c[2 * k] = static_cast<uint8_t>(quantize_value(f.x, sc, z, lo, hi));
        c[2 * k + 1] = static_cast<uint8_t>(quantize_value(f.y, sc, z, lo, hi));
      }
    }
    reinterpret_cast<uint2*>(y)[i] = *reinterpret_cast<const uint2*>(c);
  }
}

// Calls f(F{}) with F the float type of t: float or __half.
template <typename Fn>
bool with_float(DType t, Fn&& f) {
  if (t == DType::Float32) return f(float{}), true;
  if (t == DType::Float16) return f(__half{}), true;
  return false;
}

class QuantizeLinearKernel : public CudaKernel {
 public:
  using CudaKernel::CudaKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const TensorView &x = in[0], &scale = in[1], &y = out[0];
    const TensorView* zp = has(2) && in[2].data ? &in[2] : nullptr;
    expect_floatish(x, "input");
    expect_floatish(scale, "scale");
    int32_t lo = 0, hi = 0;
    const bool fp8 = y.dtype == DType::Float8E4M3FN;
    if (!fp8 && !quant_range(y.dtype, lo, hi)) fail(std::string("output type ") + dtype_name(y.dtype) + ": int8, uint8 or float8e4m3fn expected");
    if (zp && zp->dtype != y.dtype) fail("zero point type " + std::string(dtype_name(zp->dtype)) + " differs from the output's");
    const QuantLayout q = checked_quant_layout(node_, x.shape, scale.shape, zp ? &zp->shape : nullptr);
    const int64_t n = x.numel();
    if (n == 0) return;
    cudaStream_t s = stream_of(ctx);
    if (q.granularity == QuantGranularity::Tensor && x.dtype == DType::Float16 && n % 8 == 0 && aligned16(x.data) &&
        (reinterpret_cast<uintptr_t>(y.data) & 7) == 0) {
      const bool sat = node_.attr_i("saturate", 1) != 0;
      const auto* zb = zp ? zp->as<uint8_t>() : nullptr;
      with_float(scale.dtype, [&](auto st_) {
        using S = decltype(st_);
        if (fp8) quantize_tensor_half8<S, true><<<grid_for(n / 8), 256, 0, s>>>(x.as<__half>(), scale.as<S>(), zb, y.as<uint8_t>(), n / 8, lo, hi, sat);
        else quantize_tensor_half8<S, false><<<grid_for(n / 8), 256, 0, s>>>(x.as<__half>(), scale.as<S>(), zb, y.as<uint8_t>(), n / 8, lo, hi, sat);
      });
      check_launch(node_);
      return;
    }
    with_float(x.dtype, [&](auto xt) {
      using X = decltype(xt);
      with_float(scale.dtype, [&](auto st_) {
        using S = decltype(st_);
        if (fp8)
          quantize_e4m3fn_kernel<<<grid_for(n), 256, 0, s>>>(x.as<X>(), scale.as<S>(), zp ? zp->as<uint8_t>() : nullptr, y.as<uint8_t>(), n, q,
                                                             node_.attr_i("saturate", 1) != 0);
        else if (y.dtype == DType::Int8)
          quantize_kernel<<<grid_for(n), 256, 0, s>>>(x.as<X>(), scale.as<S>(), zp ? zp->as<int8_t>() : nullptr, y.as<int8_t>(), n, q, lo, hi);
        else
          quantize_kernel<<<grid_for(n), 256, 0, s>>>(x.as<X>(), scale.as<S>(), zp ? zp->as<uint8_t>() : nullptr, y.as<uint8_t>(), n, q, lo, hi);
      });
    });
    check_launch(node_);
  }
};
UNIRT_REGISTER_KERNEL(cuda, QuantizeLinear, QuantizeLinearKernel, "float32 float16 int8 uint8 float8e4m3fn", "per tensor, per axis or blocked scales");

class DequantizeLinearKernel : public CudaKernel {
 public:
  using CudaKernel::CudaKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const TensorView &x = in[0], &scale = in[1], &y = out[0];
    const TensorView* zp = has(2) && in[2].data ? &in[2] : nullptr;
    if (x.dtype != DType::Int8 && x.dtype != DType::Uint8 && x.dtype != DType::Int32 && x.dtype != DType::Float8E4M3FN)
      fail(std::string("input has type ") + dtype_name(x.dtype) + ": int8, uint8, int32 or float8e4m3fn expected");
    expect_floatish(scale, "scale");
    expect_floatish(y, "output");
    if (zp && zp->dtype != x.dtype) fail("zero point type " + std::string(dtype_name(zp->dtype)) + " differs from the input's");
    const QuantLayout q = checked_quant_layout(node_, x.shape, scale.shape, zp ? &zp->shape : nullptr);
    const int64_t n = x.numel();
    if (n == 0) return;
    cudaStream_t s = stream_of(ctx);
    with_float(y.dtype, [&](auto yt) {
      using Y = decltype(yt);
      with_float(scale.dtype, [&](auto st_) {
        using S = decltype(st_);
        switch (x.dtype) {
          case DType::Float8E4M3FN:
            dequantize_e4m3fn_kernel<<<grid_for(n), 256, 0, s>>>(x.as<uint8_t>(), scale.as<S>(), zp ? zp->as<uint8_t>() : nullptr, y.as<Y>(), n, q);
            break;
          case DType::Int8:
            dequantize_kernel<<<grid_for(n), 256, 0, s>>>(x.as<int8_t>(), scale.as<S>(), zp ? zp->as<int8_t>() : nullptr, y.as<Y>(), n, q);
            break;
          case DType::Uint8:
            dequantize_kernel<<<grid_for(n), 256, 0, s>>>(x.as<uint8_t>(), scale.as<S>(), zp ? zp->as<uint8_t>() : nullptr, y.as<Y>(), n, q);
            break;
          default:
            dequantize_kernel<<<grid_for(n), 256, 0, s>>>(x.as<int32_t>(), scale.as<S>(), zp ? zp->as<int32_t>() : nullptr, y.as<Y>(), n, q);
        }
      });
    });
    check_launch(node_);
  }
};
UNIRT_REGISTER_KERNEL(cuda, DequantizeLinear, DequantizeLinearKernel, "int8 uint8 int32 float8e4m3fn float32 float16", "per tensor, per axis or blocked scales");

}  // namespace
}  // namespace cuda
}  // namespace unirt
