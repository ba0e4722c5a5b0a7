// LayerNormalization, BatchNormalization, Softmax, ReduceMean/Sum/Max, GlobalAveragePool on the GPU.
// Statistics and sums accumulate in float32 for float16 tensors too.
#include <cfloat>

#include "cuda/cuda_common.h"
#include "cuda/half_io.cuh"

namespace unirt {
namespace cuda {
namespace {


__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
// Block-wide reduction (blockDim.x multiple of 32, <= 1024).
template <bool kMax>
__device__ float block_reduce(float v) {
  __shared__ float part[32];
  v = kMax ? warp_max(v) : warp_sum(v);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) part[warp] = v;
  __syncthreads();
  const int nw = blockDim.x >> 5;
  v = threadIdx.x < nw ? part[threadIdx.x] : (kMax ? -FLT_MAX : 0.f);
  if (warp == 0) v = kMax ? warp_max(v) : warp_sum(v);
  __shared__ float result;
  if (threadIdx.x == 0) result = v;
  __syncthreads();
  const float r = result;
  __syncthreads();
  return r;
}

// One block per row; two passes over the row (mean, then variance) keep float32 accuracy.
template <typename T, typename P>
__global__ void layernorm_rows(const T* x, const P* g, const P* b, T* y, int64_t D, float eps) {
  const int64_t row = blockIdx.x;
  const T* xr = x + row * D;
  T* yr = y + row * D;
  float s = 0;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) s += ld(xr, i);
  const float mean = block_reduce<false>(s) / D;
  float v = 0;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
    const float d = ld(xr, i) - mean;
    v += d * d;
  }
  const float rstd = rsqrtf(block_reduce<false>(v) / D + eps);
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x)
    st(yr, i, (ld(xr, i) - mean) * rstd * ld(g, i) + (b ? ld(b, i) : 0.f));
}

int threads_for(int64_t d) { return d >= 1024 ? 512 : (d >= 256 ? 256 : 128); }

class LayerNormalizationKernel : public CudaKernel {
 public:
  using CudaKernel::CudaKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_floatish(in[0], "X");
    const auto& xs = in[0].shape;
    int64_t axis = node_.attr_i("axis", -1);
    if (axis < 0) axis += static_cast<int64_t>(xs.size());
    int64_t D = 1;
    for (size_t i = axis; i < xs.size(); ++i) D *= xs[i];
    if (in[1].numel() != D) fail("scale has " + std::to_string(in[1].numel()) + " values, expected " + std::to_string(D));
    if (in[1].dtype != in[0].dtype) fail("scale and input types differ");
    const int64_t rows = D ? in[0].numel() / D : 0;
    if (rows == 0) return;
    if (out.size() > 1 && (out[1].data || (out.size() > 2 && out[2].data))) fail("Mean/InvStdDev outputs are not supported on CUDA");
    const float eps = node_.attr_f("epsilon", 1e-5f);
    const bool hb = in.size() > 2 && in[2].data;
    cudaStream_t s = stream_of(ctx);
    if (in[0].dtype == DType::Float16)
      layernorm_rows<<<rows, threads_for(D), 0, s>>>(in[0].as<__half>(), in[1].as<__half>(), hb ? in[2].as<__half>() : nullptr, out[0].as<__half>(), D, eps);
    else
      layernorm_rows<<<rows, threads_for(D), 0, s>>>(in[0].as<float>(), in[1].as<float>(), hb ? in[2].as<float>() : nullptr, out[0].as<float>(), D, eps);
    check_launch(node_);
  }
};
UNIRT_REGISTER_KERNEL(cuda, LayerNormalization, LayerNormalizationKernel);

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
    const auto& xs = in[0].shape;
    const int64_t n = in[0].numel(), C = xs[1], S = n / std::max<int64_t>(1, xs[0] * C);
    for (int i = 1; i < 5; ++i)
      if (in[i].numel() != C || in[i].dtype != in[0].dtype) fail("parameter " + std::to_string(i) + " does not match the channels/type");
    if (n == 0) return;
    const float eps = node_.attr_f("epsilon", 1e-5f);
    const int grid = static_cast<int>(std::min<int64_t>((n + 255) / 256, 65535 * 8));
    cudaStream_t s = stream_of(ctx);
    if (in[0].dtype == DType::Float16)
      batchnorm<<<grid, 256, 0, s>>>(in[0].as<__half>(), in[1].as<__half>(), in[2].as<__half>(), in[3].as<__half>(), in[4].as<__half>(), out[0].as<__half>(), n, C, S, eps);
    else
      batchnorm<<<grid, 256, 0, s>>>(in[0].as<float>(), in[1].as<float>(), in[2].as<float>(), in[3].as<float>(), in[4].as<float>(), out[0].as<float>(), n, C, S, eps);
    check_launch(node_);
  }
};
UNIRT_REGISTER_KERNEL(cuda, BatchNormalization, BatchNormalizationKernel);

// Softmax over the last axis, one block per row (attention rows are 49..3800 long).
template <typename T>
__global__ void softmax_rows(const T* x, T* y, int64_t L) {
  const int64_t row = blockIdx.x;
  const T* xr = x + row * L;
  T* yr = y + row * L;
  float m = -FLT_MAX;
  for (int64_t i = threadIdx.x; i < L; i += blockDim.x) m = fmaxf(m, ld(xr, i));
  m = block_reduce<true>(m);
  float s = 0;
  for (int64_t i = threadIdx.x; i < L; i += blockDim.x) s += __expf(ld(xr, i) - m);
  const float inv = 1.f / block_reduce<false>(s);
  for (int64_t i = threadIdx.x; i < L; i += blockDim.x) st(yr, i, __expf(ld(xr, i) - m) * inv);
}

class SoftmaxKernel : public CudaKernel {
 public:
  using CudaKernel::CudaKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_floatish(in[0], "input");
    const auto& xs = in[0].shape;
    int64_t axis = node_.attr_i("axis", opset_ >= 13 ? -1 : 1);
    if (axis < 0) axis += static_cast<int64_t>(xs.size());
    int64_t L = 1;
    for (size_t i = axis; i < xs.size(); ++i) L *= xs[i];
    if (opset_ >= 13 && axis != static_cast<int64_t>(xs.size()) - 1)
      fail("the CUDA backend runs Softmax over the last axis only");
    const int64_t rows = L ? in[0].numel() / L : 0;
    if (rows == 0) return;
    const int th = L >= 1024 ? 512 : (L >= 128 ? 128 : 64);
    if (in[0].dtype == DType::Float16) softmax_rows<<<rows, th, 0, stream_of(ctx)>>>(in[0].as<__half>(), out[0].as<__half>(), L);
    else softmax_rows<<<rows, th, 0, stream_of(ctx)>>>(in[0].as<float>(), out[0].as<float>(), L);
    check_launch(node_);
  }
};
UNIRT_REGISTER_KERNEL(cuda, Softmax, SoftmaxKernel);

// Reduction over a contiguous block of axes [a0, a1): out[o, i] = reduce_k x[o, k, i].
template <typename T>
__global__ void reduce_mid(const T* x, T* y, int64_t outer, int64_t K, int64_t inner, int mode) {
  const int64_t n = outer * inner;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < n; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = t / inner, i = t % inner;
    float acc = mode == 2 ? -FLT_MAX : 0.f;
    for (int64_t k = 0; k < K; ++k) {
      const float v = ld(x, (o * K + k) * inner + i);
      acc = mode == 2 ? fmaxf(acc, v) : acc + v;
    }
    st(y, t, mode == 0 ? acc / K : acc);
  }
}

// Last-axis reduction (the classifier's mean pool): one warp per output.
template <typename T>
__global__ void reduce_last(const T* x, T* y, int64_t rows, int64_t K, int mode) {
  const int64_t row = blockIdx.x * int64_t(blockDim.y) + threadIdx.y;
  if (row >= rows) return;
  float acc = mode == 2 ? -FLT_MAX : 0.f;
  for (int64_t k = threadIdx.x; k < K; k += 32) {
    const float v = ld(x, row * K + k);
    acc = mode == 2 ? fmaxf(acc, v) : acc + v;
  }
  acc = mode == 2 ? warp_max(acc) : warp_sum(acc);
  if (threadIdx.x == 0) st(y, row, mode == 0 ? acc / K : acc);
}

class ReduceKernel : public CudaKernel {
 public:
  ReduceKernel(const KernelCreateArgs& a, int mode) : CudaKernel(a), mode_(mode) {}
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_floatish(in[0], "input");
    const auto& xs = in[0].shape;
    std::vector<int64_t> axes;
    if (node_.op_type == "GlobalAveragePool") {
      for (size_t i = 2; i < xs.size(); ++i) axes.push_back(static_cast<int64_t>(i));
    } else {
      axes = in.size() > 1 && in[1].host_values ? host_ints(in[1], "axes") : node_.attr_ints("axes");
      if (axes.empty())
        for (size_t i = 0; i < xs.size(); ++i) axes.push_back(static_cast<int64_t>(i));
    }
    for (auto& a : axes) a = a < 0 ? a + static_cast<int64_t>(xs.size()) : a;
    std::sort(axes.begin(), axes.end());
    for (size_t i = 1; i < axes.size(); ++i)
      if (axes[i] != axes[i - 1] + 1) fail("the CUDA backend reduces over adjacent axes only");
    int64_t outer = 1, K = 1, inner = 1;
    for (int64_t i = 0; i < static_cast<int64_t>(xs.size()); ++i) {
      if (i < axes.front()) outer *= xs[i];
      else if (i <= axes.back()) K *= xs[i];
      else inner *= xs[i];
    }
    if (outer * inner == 0) return;
    cudaStream_t s = stream_of(ctx);
    const bool half = in[0].dtype == DType::Float16;
    if (inner == 1) {
      dim3 block(32, 8);
      const unsigned grid = static_cast<unsigned>((outer + 7) / 8);
      if (half) reduce_last<<<grid, block, 0, s>>>(in[0].as<__half>(), out[0].as<__half>(), outer, K, mode_);
      else reduce_last<<<grid, block, 0, s>>>(in[0].as<float>(), out[0].as<float>(), outer, K, mode_);
    } else {
      const int grid = static_cast<int>(std::min<int64_t>((outer * inner + 255) / 256, 65535));
      if (half) reduce_mid<<<grid, 256, 0, s>>>(in[0].as<__half>(), out[0].as<__half>(), outer, K, inner, mode_);
      else reduce_mid<<<grid, 256, 0, s>>>(in[0].as<float>(), out[0].as<float>(), outer, K, inner, mode_);
    }
    check_launch(node_);
  }

 private:
  int mode_;  // 0 mean, 1 sum, 2 max
};
class ReduceMeanKernel : public ReduceKernel {
 public:
  explicit ReduceMeanKernel(const KernelCreateArgs& a) : ReduceKernel(a, 0) {}
};
class ReduceSumKernel : public ReduceKernel {
 public:
  explicit ReduceSumKernel(const KernelCreateArgs& a) : ReduceKernel(a, 1) {}
};
class ReduceMaxKernel : public ReduceKernel {
 public:
  explicit ReduceMaxKernel(const KernelCreateArgs& a) : ReduceKernel(a, 2) {}
};
UNIRT_REGISTER_KERNEL(cuda, ReduceMean, ReduceMeanKernel);
UNIRT_REGISTER_KERNEL(cuda, ReduceSum, ReduceSumKernel);
UNIRT_REGISTER_KERNEL(cuda, ReduceMax, ReduceMaxKernel);
UNIRT_REGISTER_KERNEL(cuda, GlobalAveragePool, ReduceMeanKernel);

}  // namespace
}  // namespace cuda
}  // namespace unirt
