// LayerNormalization and BatchNormalization (inference). Activations float32 or float16; the
// parameters may be float32 next to float16 activations (the FP16 precision pass keeps them so);
// statistics in float32.
#include "backend/float8_rule.h"
#include "backend/quantize_rule.h"
#include "cuda/cuda_context.h"
#include "cuda/reduce_util.cuh"
#include "ir/fused_attrs.h"

namespace unirt {
namespace cuda {
namespace {

// Where LayerNorm writes: T as computed (QOUT 0), or the int8 (1) / float8 E4M3FN (2) codes of
// unirt.LayerNormQuantize, `scale` being the reciprocal of y_scale (the fused producers' rule,
// backend/quantize_rule.h, as the CPU kernel computes it).
template <int QOUT, typename T, int VEC>
__device__ __forceinline__ void store_out(void* y, int64_t at, const float* v, float scale) {
  if constexpr (QOUT == 0) {
    store_vec<T, VEC>(static_cast<T*>(y) + at, v);
  } else {
    uint8_t c[VEC];
#pragma unroll
    for (int k = 0; k < VEC; ++k)
      c[k] = fused_code(QOUT == 2, v[k], scale);
    uint8_t* p = static_cast<uint8_t*>(y) + at;
    if constexpr (VEC == 8) {
      *reinterpret_cast<uint2*>(p) = *reinterpret_cast<const uint2*>(c);
    } else {
#pragma unroll
      for (int k = 0; k < VEC; ++k) p[k] = c[k];
    }
  }
}

// LPR lanes per row (32, or fewer for short rows so that a warp holds 32 / LPR rows: a 64-channel
// float16 row is 8 vectors, and one row per warp left 24 lanes idle), the row held in registers:
// chunk j of lane l covers elements [(l + LPR j) * VEC, +VEC). Two passes over the registers
// (mean, then centred variance).
template <typename T, typename P, int VEC, int NJ, int LPR, int QOUT>
__global__ void __launch_bounds__(128) layernorm_warp(const T* __restrict__ x, const P* __restrict__ g, const P* __restrict__ b,
                                                     void* __restrict__ y, int64_t rows, int D, float eps, float qscale) {
  const int64_t row = blockIdx.x * int64_t(128 / LPR) + (threadIdx.x / LPR);
  const bool valid = row < rows;  // no early return: the row's lanes meet in the shuffles
  const int lane = threadIdx.x % LPR;
  const T* xr = x + row * D;
  float v[NJ][VEC];
  float s = 0.f;
#pragma unroll
  for (int j = 0; j < NJ; ++j) {
    const int e = (lane + LPR * j) * VEC;
    if (valid && e < D) {
      load_vec<T, VEC>(xr + e, v[j]);
#pragma unroll
      for (int k = 0; k < VEC; ++k) s += v[j][k];
    }
  }
  const float mean = group_sum<LPR>(s) / D;
  float q = 0.f;
#pragma unroll
  for (int j = 0; j < NJ; ++j) {
    const int e = (lane + LPR * j) * VEC;
    if (valid && e < D) {
#pragma unroll
      for (int k = 0; k < VEC; ++k) {
        const float d = v[j][k] - mean;
        q += d * d;
      }
    }
  }
  const float rstd = rsqrtf(group_sum<LPR>(q) / D + eps);
#pragma unroll
  for (int j = 0; j < NJ; ++j) {
    const int e = (lane + LPR * j) * VEC;
    if (valid && e < D) {
      float o[VEC];
#pragma unroll
      for (int k = 0; k < VEC; ++k) o[k] = (v[j][k] - mean) * rstd * ld(g, e + k) + (b ? ld(b, e + k) : 0.f);
      store_out<QOUT, T, VEC>(y, row * D + e, o, qscale);
    }
  }
}

// Rows longer than 1024: one block per row, two passes over global memory (L1/L2 resident).
template <typename T, typename P, int QOUT>
__global__ void layernorm_block(const T* x, const P* g, const P* b, void* y, int64_t D, float eps, float qscale) {
  const int64_t row = blockIdx.x;
  const T* xr = x + row * D;
  float s = 0;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) s += ld(xr, i);
  const float mean = block_reduce<false>(s) / D;
  float v = 0;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
    const float d = ld(xr, i) - mean;
    v += d * d;
  }
  const float rstd = rsqrtf(block_reduce<false>(v) / D + eps);
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
    const float o = (ld(xr, i) - mean) * rstd * ld(g, i) + (b ? ld(b, i) : 0.f);
    store_out<QOUT, T, 1>(y, row * D + i, &o, qscale);
  }
}

template <typename T, typename P, int VEC, int QOUT>
bool launch_ln_warp(const T* x, const P* g, const P* b, void* y, int64_t rows, int D, float eps, float q, cudaStream_t s) {
  const int chunks = (D + VEC - 1) / VEC;
  auto grid = [&](int lpr) { return static_cast<unsigned>((rows + 128 / lpr - 1) / (128 / lpr)); };
  if (chunks <= 8) return layernorm_warp<T, P, VEC, 1, 8, QOUT><<<grid(8), 128, 0, s>>>(x, g, b, y, rows, D, eps, q), true;
  if (chunks <= 16) return layernorm_warp<T, P, VEC, 1, 16, QOUT><<<grid(16), 128, 0, s>>>(x, g, b, y, rows, D, eps, q), true;
#define UNIRT_LN(NJ) \
  if (chunks <= 32 * NJ) return layernorm_warp<T, P, VEC, NJ, 32, QOUT><<<grid(32), 128, 0, s>>>(x, g, b, y, rows, D, eps, q), true;
  UNIRT_LN(1) UNIRT_LN(2) UNIRT_LN(4) UNIRT_LN(8)
  if (VEC == 1) {
    UNIRT_LN(16) UNIRT_LN(32)
  }
#undef UNIRT_LN
  return false;
}

template <typename T, typename P, int QOUT = 0>
void launch_layernorm(const T* x, const P* g, const P* b, void* y, int64_t rows, int64_t D, float eps, cudaStream_t s, float q = 1.f) {
  constexpr int kVec = sizeof(T) == 2 ? 8 : 4;
  if (D <= 1024) {
    const bool vec = D % kVec == 0 && aligned16(x) && aligned16(y);
    if (vec ? launch_ln_warp<T, P, kVec, QOUT>(x, g, b, y, rows, static_cast<int>(D), eps, q, s)
            : launch_ln_warp<T, P, 1, QOUT>(x, g, b, y, rows, static_cast<int>(D), eps, q, s))
      return;
  }
  const int threads = D >= 4096 ? 512 : 256;
  layernorm_block<T, P, QOUT><<<static_cast<unsigned>(rows), threads, 0, s>>>(x, g, b, y, D, eps, q);
}

class LayerNormalizationKernel : public CudaKernel {
 public:
  using CudaKernel::CudaKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_floatish(in[0], "X");
    expect_floatish(in[1], "Scale");
    const auto& xs = in[0].shape;
    int64_t axis = node_.attr_i("axis", -1);
    if (axis < 0) axis += static_cast<int64_t>(xs.size());
    if (axis < 0 || axis >= static_cast<int64_t>(xs.size())) fail("axis out of range for a rank-" + std::to_string(xs.size()) + " input");
    int64_t D = 1;
    for (size_t i = axis; i < xs.size(); ++i) D *= xs[i];
    if (in[1].numel() != D) fail("Scale has " + std::to_string(in[1].numel()) + " values, expected " + std::to_string(D));
    const bool hb = in.size() > 2 && in[2].data;
    if (hb && (in[2].numel() != D || in[2].dtype != in[1].dtype))
      fail(std::string("B (") + dtype_name(in[2].dtype) + ", " + std::to_string(in[2].numel()) + " values) must match Scale (" +
           dtype_name(in[1].dtype) + ", " + std::to_string(in[1].numel()) + " values)");
    if (out.size() > 1 && (out[1].data || (out.size() > 2 && out[2].data)))
      fail("the Mean/InvStdDev outputs are not supported on CUDA");
    const int64_t rows = D ? in[0].numel() / D : 0;
    if (rows == 0) return;
    const float eps = node_.attr_f("epsilon", 1e-5f);
    cudaStream_t s = stream_of(ctx);
    const bool pf = in[1].dtype == DType::Float32;
    if (in[0].dtype == DType::Float16) {
      if (pf) launch_layernorm(in[0].as<__half>(), in[1].as<float>(), hb ? in[2].as<float>() : nullptr, out[0].as<__half>(), rows, D, eps, s);
      else launch_layernorm(in[0].as<__half>(), in[1].as<__half>(), hb ? in[2].as<__half>() : nullptr, out[0].as<__half>(), rows, D, eps, s);
    } else {
      if (!pf) fail("float16 Scale with float32 X is not supported");
      launch_layernorm(in[0].as<float>(), in[1].as<float>(), hb ? in[2].as<float>() : nullptr, out[0].as<float>(), rows, D, eps, s);
    }
    check_launch(node_);
  }
};
UNIRT_REGISTER_KERNEL(cuda, LayerNormalization, LayerNormalizationKernel, "float32 float16");

// unirt.LayerNormQuantize (passes/lower_quantized_layers.cpp): LayerNorm over the last axis whose
// output is written as the 8-bit codes the next GEMM reads, instead of float16 that a
// QuantizeLinear reads back.
class LayerNormQuantizeKernel : public CudaKernel {
 public:
  explicit LayerNormQuantizeKernel(const KernelCreateArgs& a) : CudaKernel(a) {}
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    if (in[0].dtype != DType::Float16) fail(std::string("X is ") + dtype_name(in[0].dtype) + ", float16 expected");
    if (in[1].dtype != DType::Float32 || (has(2) && in[2].dtype != DType::Float32)) fail("Scale and B must be float32");
    const int64_t D = in[0].shape.empty() ? 0 : in[0].shape.back();
    if (in[1].numel() != D || (has(2) && in[2].numel() != D)) fail("Scale and B must hold " + std::to_string(D) + " values");
    const float scale = 1.f / LayerNormQuantizeAttrs::of(node_).y_scale;  // store_out multiplies
    const int64_t rows = D ? in[0].numel() / D : 0;
    if (rows == 0) return;
    const float eps = node_.attr_f("epsilon", 1e-5f);
    const auto* x = in[0].as<__half>();
    const float* g = in[1].as<float>();
    const float* b = has(2) ? in[2].as<float>() : nullptr;
    if (out[0].dtype == DType::Int8) launch_layernorm<__half, float, 1>(x, g, b, out[0].data, rows, D, eps, stream_of(ctx), scale);
    else if (out[0].dtype == DType::Float8E4M3FN) launch_layernorm<__half, float, 2>(x, g, b, out[0].data, rows, D, eps, stream_of(ctx), scale);
    else fail(std::string("output is ") + dtype_name(out[0].dtype) + ": int8 or float8e4m3fn expected");
    check_launch(node_);
  }
};
UNIRT_REGISTER_KERNEL(cuda, unirt.LayerNormQuantize, LayerNormQuantizeKernel, "float16 int8 float8e4m3fn", "last axis");

template <typename T, typename P>
__global__ void batchnorm(const T* x, const P* g, const P* b, const P* m, const P* v, T* y, int64_t n, int64_t C, int64_t S, float eps) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = (i / S) % C;
    const float sc = ld(g, c) * rsqrtf(ld(v, c) + eps);
    st(y, i, (ld(x, i) - ld(m, c)) * sc + ld(b, c));
  }
}

class BatchNormalizationKernel : public CudaKernel {
 public:
  using CudaKernel::CudaKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_floatish(in[0], "X");
    if (node_.attr_i("training_mode", 0) != 0) fail("training_mode BatchNormalization is not supported (inference only)");
    const auto& xs = in[0].shape;
    if (xs.size() < 2) fail("X must have a channel dimension");
    const int64_t n = in[0].numel(), C = xs[1], S = n / std::max<int64_t>(1, xs[0] * C);
    static const char* names[] = {"", "scale", "B", "input_mean", "input_var"};
    for (int i = 1; i < 5; ++i) {
      if (in[i].numel() != C) fail(std::string(names[i]) + " has " + std::to_string(in[i].numel()) + " values, expected " + std::to_string(C));
      if (in[i].dtype != in[1].dtype) fail(std::string(names[i]) + " type differs from scale's");
    }
    expect_floatish(in[1], "scale");
    if (n == 0) return;
    const float eps = node_.attr_f("epsilon", 1e-5f);
    cudaStream_t s = stream_of(ctx);
    const bool pf = in[1].dtype == DType::Float32;
    if (in[0].dtype == DType::Float16 && pf)
      batchnorm<<<grid_for(n), 256, 0, s>>>(in[0].as<__half>(), in[1].as<float>(), in[2].as<float>(), in[3].as<float>(), in[4].as<float>(),
                                            out[0].as<__half>(), n, C, S, eps);
    else if (in[0].dtype == DType::Float16)
      batchnorm<<<grid_for(n), 256, 0, s>>>(in[0].as<__half>(), in[1].as<__half>(), in[2].as<__half>(), in[3].as<__half>(),
                                            in[4].as<__half>(), out[0].as<__half>(), n, C, S, eps);
    else if (pf)
      batchnorm<<<grid_for(n), 256, 0, s>>>(in[0].as<float>(), in[1].as<float>(), in[2].as<float>(), in[3].as<float>(), in[4].as<float>(),
                                            out[0].as<float>(), n, C, S, eps);
    else
      fail("float16 parameters with float32 X are not supported");
    check_launch(node_);
  }
};
UNIRT_REGISTER_KERNEL(cuda, BatchNormalization, BatchNormalizationKernel, "float32 float16", "rank >= 2, channel at dim 1");

}  // namespace
}  // namespace cuda
}  // namespace unirt
