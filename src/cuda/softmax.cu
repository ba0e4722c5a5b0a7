// Softmax over the last axis (opset 13) or the flattened trailing axes (opset < 13), float32
// accumulation. Rows up to 1024 (attention: 49..784 tokens) run one warp per row with the row in
// registers; longer rows run one block per row.
#include "cuda/cuda_context.h"
#include "cuda/reduce_util.cuh"

namespace unirt {
namespace cuda {
namespace {

template <typename T, int NJ>
__global__ void __launch_bounds__(128) softmax_warp(const T* __restrict__ x, T* __restrict__ y, int64_t rows, int L) {
  const int64_t row = blockIdx.x * int64_t(4) + (threadIdx.x >> 5);
  if (row >= rows) return;
  const int lane = threadIdx.x & 31;
  const T* xr = x + row * L;
  T* yr = y + row * L;
  float v[NJ];
  float m = -FLT_MAX;
#pragma unroll
  for (int j = 0; j < NJ; ++j) {
    const int e = lane + 32 * j;
    v[j] = e < L ? ld(xr, e) : -FLT_MAX;
    m = fmaxf(m, v[j]);
  }
  m = warp_max(m);
  float s = 0.f;
#pragma unroll
  for (int j = 0; j < NJ; ++j) {
    const int e = lane + 32 * j;
    v[j] = e < L ? __expf(v[j] - m) : 0.f;
    s += v[j];
  }
  const float inv = 1.f / warp_sum(s);
#pragma unroll
  for (int j = 0; j < NJ; ++j) {
    const int e = lane + 32 * j;
    if (e < L) st(yr, e, v[j] * inv);
  }
}

template <typename T>
__global__ void softmax_block(const T* x, T* y, int64_t L) {
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

template <typename T>
void launch_softmax(const T* x, T* y, int64_t rows, int64_t L, cudaStream_t s) {
  if (L <= 1024) {
    const unsigned grid = static_cast<unsigned>((rows + 3) / 4);
    const int chunks = static_cast<int>((L + 31) / 32);
    const int l = static_cast<int>(L);
    if (chunks <= 1) return softmax_warp<T, 1><<<grid, 128, 0, s>>>(x, y, rows, l);
    if (chunks <= 2) return softmax_warp<T, 2><<<grid, 128, 0, s>>>(x, y, rows, l);
    if (chunks <= 4) return softmax_warp<T, 4><<<grid, 128, 0, s>>>(x, y, rows, l);
    if (chunks <= 8) return softmax_warp<T, 8><<<grid, 128, 0, s>>>(x, y, rows, l);
    if (chunks <= 16) return softmax_warp<T, 16><<<grid, 128, 0, s>>>(x, y, rows, l);
    return softmax_warp<T, 32><<<grid, 128, 0, s>>>(x, y, rows, l);
  }
  softmax_block<<<static_cast<unsigned>(rows), L >= 4096 ? 512 : 256, 0, s>>>(x, y, L);
}

class SoftmaxKernel : public CudaKernel {
 public:
  using CudaKernel::CudaKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_floatish(in[0], "input");
    const auto& xs = in[0].shape;
    const int64_t r = static_cast<int64_t>(xs.size());
    int64_t axis = node_.attr_i("axis", opset_ >= 13 ? -1 : 1);
    if (axis < 0) axis += r;
    if (axis < 0 || axis >= std::max<int64_t>(r, 1)) fail("axis out of range for a rank-" + std::to_string(r) + " input");
    if (opset_ >= 13 && axis != r - 1) fail("the CUDA backend runs Softmax over the last axis only, axis is " + std::to_string(axis));
    int64_t L = 1;
    for (int64_t i = axis; i < r; ++i) L *= xs[i];
    const int64_t rows = L ? in[0].numel() / L : 0;
    if (rows == 0) return;
    if (in[0].dtype == DType::Float16) launch_softmax(in[0].as<__half>(), out[0].as<__half>(), rows, L, stream_of(ctx));
    else launch_softmax(in[0].as<float>(), out[0].as<float>(), rows, L, stream_of(ctx));
    check_launch(node_);
  }
};
UNIRT_REGISTER_KERNEL(cuda, Softmax, SoftmaxKernel, "float32 float16");

}  // namespace
}  // namespace cuda
}  // namespace unirt
