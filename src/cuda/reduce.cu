// ReduceMean, ReduceSum, ReduceMax, ReduceMin, ReduceProd (and Size) over a run of adjacent axes (axes from the attribute, or from
// the host-known input in newer opsets); float32 accumulation for floats, exact for int64/int32.
#include <algorithm>

#include "cuda/cuda_context.h"
#include "cuda/reduce_util.cuh"

namespace unirt {
namespace cuda {

namespace {

// mode: 0 mean, 1 sum, 2 max, 3 min, 4 product.
__device__ __forceinline__ float red_init(int mode) { return mode == 2 ? -FLT_MAX : mode == 3 ? FLT_MAX : mode == 4 ? 1.f : 0.f; }
__device__ __forceinline__ float red_step(int mode, float a, float v) {
  return mode == 2 ? fmaxf(a, v) : mode == 3 ? fminf(a, v) : mode == 4 ? a * v : a + v;
}
__device__ __forceinline__ float red_warp(int mode, float v) {
  for (int o = 16; o > 0; o >>= 1) v = red_step(mode, v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Reduction over a contiguous block of axes [a0, a1): out[o, i] = reduce_k x[o, k, i].
template <typename T>
__global__ void reduce_mid(const T* x, T* y, int64_t outer, int64_t K, int64_t inner, int mode) {
  const int64_t n = outer * inner;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < n; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = t / inner, i = t % inner;
    float acc = red_init(mode);
    for (int64_t k = 0; k < K; ++k) acc = red_step(mode, acc, ld(x, (o * K + k) * inner + i));
    st(y, t, mode == 0 ? acc / K : acc);
  }
}

// Last-axis reduction (the classifier's mean pool): one warp per output.
template <typename T>
__global__ void reduce_last(const T* x, T* y, int64_t rows, int64_t K, int mode) {
  const int64_t row = blockIdx.x * int64_t(blockDim.y) + threadIdx.y;
  if (row >= rows) return;
  float acc = red_init(mode);
  for (int64_t k = threadIdx.x; k < K; k += 32) acc = red_step(mode, acc, ld(x, row * K + k));
  acc = mode == 2 ? warp_max(acc) : mode == 1 || mode == 0 ? warp_sum(acc) : red_warp(mode, acc);
  if (threadIdx.x == 0) st(y, row, mode == 0 ? acc / K : acc);
}

// Few long rows (a detector's largest coordinate over 80k boxes): one 1024-thread block per row.
template <typename T>
__global__ void reduce_long_rows(const T* x, T* y, int64_t K, int mode) {
  const int64_t row = blockIdx.x;
  float acc = red_init(mode);
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) acc = red_step(mode, acc, ld(x, row * K + k));
  acc = red_warp(mode, acc);
  __shared__ float part[32];
  if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = acc;
  __syncthreads();
  if (threadIdx.x < 32) {
    float v = threadIdx.x < (blockDim.x >> 5) ? part[threadIdx.x] : red_init(mode);
    v = red_warp(mode, v);
    if (threadIdx.x == 0) st(y, row, mode == 0 ? v / K : v);
  }
}

// Integer reductions (index counts of the detector's selections): exact in the element type.
template <typename T>
__global__ void reduce_mid_int(const T* x, T* y, int64_t outer, int64_t K, int64_t inner, int mode) {
  const int64_t n = outer * inner;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < n; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = t / inner, i = t % inner;
    T acc = mode == 4 ? T(1) : mode >= 2 ? x[o * K * inner + i] : T(0);
    for (int64_t k = 0; k < K; ++k) {
      const T v = x[(o * K + k) * inner + i];
      acc = mode == 2 ? (v > acc ? v : acc) : mode == 3 ? (v < acc ? v : acc) : mode == 4 ? acc * v : acc + v;
    }
    y[t] = mode == 0 ? acc / static_cast<T>(K) : acc;
  }
}

}  // namespace

void reduce_axes(DType t, const void* x, void* y, int64_t outer, int64_t K, int64_t inner, int mode, cudaStream_t s) {
  if (outer * inner == 0) return;
  if (t == DType::Int64) {
    if (K == 0 && mode >= 2) return;  // max/min of nothing: the shape function refuses it
    reduce_mid_int<<<grid_for(outer * inner), 256, 0, s>>>(static_cast<const int64_t*>(x), static_cast<int64_t*>(y), outer, K, inner, mode);
    return;
  }
  if (t == DType::Int32) {
    if (K == 0 && mode >= 2) return;
    reduce_mid_int<<<grid_for(outer * inner), 256, 0, s>>>(static_cast<const int32_t*>(x), static_cast<int32_t*>(y), outer, K, inner, mode);
    return;
  }
  const bool half = t == DType::Float16;
  if (inner == 1 && K >= 16384 && outer <= 4 * 132) {
    if (half) reduce_long_rows<<<static_cast<unsigned>(outer), 1024, 0, s>>>(static_cast<const __half*>(x), static_cast<__half*>(y), K, mode);
    else reduce_long_rows<<<static_cast<unsigned>(outer), 1024, 0, s>>>(static_cast<const float*>(x), static_cast<float*>(y), K, mode);
  } else if (inner == 1) {
    dim3 block(32, 8);
    const unsigned grid = static_cast<unsigned>((outer + 7) / 8);
    if (half) reduce_last<<<grid, block, 0, s>>>(static_cast<const __half*>(x), static_cast<__half*>(y), outer, K, mode);
    else reduce_last<<<grid, block, 0, s>>>(static_cast<const float*>(x), static_cast<float*>(y), outer, K, mode);
  } else {
    if (half) reduce_mid<<<grid_for(outer * inner), 256, 0, s>>>(static_cast<const __half*>(x), static_cast<__half*>(y), outer, K, inner, mode);
    else reduce_mid<<<grid_for(outer * inner), 256, 0, s>>>(static_cast<const float*>(x), static_cast<float*>(y), outer, K, inner, mode);
  }
}

namespace {

class ReduceKernel : public CudaKernel {
 public:
  ReduceKernel(const KernelCreateArgs& a, int mode) : CudaKernel(a), mode_(mode) {}
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    if ((in[0].dtype != DType::Int64 && in[0].dtype != DType::Int32) || mode_ == 0) expect_floatish(in[0], "input");
    const auto& xs = in[0].shape;
    std::vector<int64_t> axes;
    // axes became an input (ReduceSum at opset 13, the others at 18); the attribute is honoured
    // when the input is absent, as the CPU backend does.
    if (has(1)) axes = host_ints(in[1], "axes");
    else axes = node_.attr_ints("axes");
    if (axes.empty()) {
      if (node_.attr_i("noop_with_empty_axes", 0) != 0) {
        if (in[0].bytes()) UNIRT_CUDA(cudaMemcpyAsync(out[0].data, in[0].data, in[0].bytes(), cudaMemcpyDeviceToDevice, stream_of(ctx)));
        return;
      }
      for (size_t i = 0; i < xs.size(); ++i) axes.push_back(static_cast<int64_t>(i));
    }
    for (auto& a : axes) a = a < 0 ? a + static_cast<int64_t>(xs.size()) : a;
    std::sort(axes.begin(), axes.end());
    for (size_t i = 1; i < axes.size(); ++i)
      if (axes[i] != axes[i - 1] + 1) fail("the CUDA backend reduces over adjacent axes only");
    if (xs.empty()) {
      if (in[0].bytes()) UNIRT_CUDA(cudaMemcpyAsync(out[0].data, in[0].data, in[0].bytes(), cudaMemcpyDeviceToDevice, stream_of(ctx)));
      return;
    }
    int64_t outer = 1, K = 1, inner = 1;
    for (int64_t i = 0; i < static_cast<int64_t>(xs.size()); ++i) {
      if (i < axes.front()) outer *= xs[i];
      else if (i <= axes.back()) K *= xs[i];
      else inner *= xs[i];
    }
    if (outer * inner == 0) return;
    reduce_axes(in[0].dtype, in[0].data, out[0].data, outer, K, inner, mode_, stream_of(ctx));
    check_launch(node_);
  }

 private:
  int mode_;  // 0 mean, 1 sum, 2 max, 3 min, 4 product
};
class ReduceMinKernel : public ReduceKernel {
 public:
  explicit ReduceMinKernel(const KernelCreateArgs& a) : ReduceKernel(a, 3) {}
};
class ReduceProdKernel : public ReduceKernel {
 public:
  explicit ReduceProdKernel(const KernelCreateArgs& a) : ReduceKernel(a, 4) {}
};
UNIRT_REGISTER_KERNEL(cuda, ReduceMin, ReduceMinKernel, "float32 float16 int64 int32");
UNIRT_REGISTER_KERNEL(cuda, ReduceProd, ReduceProdKernel, "float32 float16 int64 int32");

__global__ void size_kernel(int64_t* y, int64_t n) { *y = n; }

// Size: runs only where the element count is not a planner-known shape value.
class SizeKernel : public CudaKernel {
 public:
  using CudaKernel::CudaKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    size_kernel<<<1, 1, 0, stream_of(ctx)>>>(out[0].as<int64_t>(), in[0].numel());
    check_launch(node_);
  }
};
UNIRT_REGISTER_KERNEL(cuda, Size, SizeKernel, "any");
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
UNIRT_REGISTER_KERNEL(cuda, ReduceMean, ReduceMeanKernel, "float32 float16");
UNIRT_REGISTER_KERNEL(cuda, ReduceSum, ReduceSumKernel, "float32 float16 int64 int32");
UNIRT_REGISTER_KERNEL(cuda, ReduceMax, ReduceMaxKernel, "float32 float16 int64 int32");

}  // namespace
}  // namespace cuda
}  // namespace unirt
