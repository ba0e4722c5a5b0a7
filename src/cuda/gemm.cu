// MatMul and Gemm through cuBLAS (float32, or float16 with float32 accumulation on tensor cores).
#include "cuda/cuda_common.h"

namespace unirt {
namespace cuda {
namespace {

cudaDataType_t cuda_type(DType t) { return t == DType::Float16 ? CUDA_R_16F : CUDA_R_32F; }

}  // namespace

void gemm_rm(cublasHandle_t h, DType t, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* A, int64_t lda,
             int64_t sa, const void* B, int64_t ldb, int64_t sb, float beta, void* C, int64_t ldc, int64_t sc, int64_t batch) {
  // Column-major view: C^T = op(B)^T op(A)^T.
  const cudaDataType_t dt = cuda_type(t);
  UNIRT_CUBLAS(cublasGemmStridedBatchedEx(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(N),
                                          static_cast<int>(M), static_cast<int>(K), &alpha, B, dt, static_cast<int>(ldb), sb, A, dt,
                                          static_cast<int>(lda), sa, &beta, C, dt, static_cast<int>(ldc), sc, static_cast<int>(batch),
                                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

namespace {

class MatMulKernel : public CudaKernel {
 public:
  using CudaKernel::CudaKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_floatish(in[0], "A");
    if (in[0].dtype != in[1].dtype || in[0].dtype != out[0].dtype) fail("A, B and the output must share one float type");
    auto as = in[0].shape, bs = in[1].shape;
    if (as.size() == 1) as.insert(as.begin(), 1);
    if (bs.size() == 1) bs.push_back(1);
    const int64_t M = as[as.size() - 2], K = as.back(), N = bs.back();
    if (bs[bs.size() - 2] != K) fail("inner dimensions differ");
    std::vector<int64_t> ab(as.begin(), as.end() - 2), bb(bs.begin(), bs.end() - 2);
    int64_t na = 1, nb = 1;
    for (auto d : ab) na *= d;
    for (auto d : bb) nb *= d;
    const int64_t batches = M * N ? out[0].numel() / (M * N) : 0;
    if (batches == 0 || K == 0) return;
    cublasHandle_t h = handles().cublas;
    UNIRT_CUBLAS(cublasSetStream(h, stream_of(ctx)));
    if (nb == 1) {  // shared B (Linear layers): one GEMM over all rows of A
      gemm_rm(h, out[0].dtype, false, false, na * M, N, K, 1.f, in[0].data, K, 0, in[1].data, N, 0, 0.f, out[0].data, N, 0, 1);
    } else if (na == nb && na == batches && ab == bb) {
      gemm_rm(h, out[0].dtype, false, false, M, N, K, 1.f, in[0].data, K, M * K, in[1].data, N, K * N, 0.f, out[0].data, N, M * N, batches);
    } else if (na == 1) {
      gemm_rm(h, out[0].dtype, false, false, M, N, K, 1.f, in[0].data, K, 0, in[1].data, N, K * N, 0.f, out[0].data, N, M * N, batches);
    } else {
      fail("MatMul batch broadcasting of " + std::to_string(na) + " x " + std::to_string(nb) + " batches is not supported on CUDA");
    }
  }
};
UNIRT_REGISTER_KERNEL(cuda, MatMul, MatMulKernel);

template <typename T>
__global__ void fill_rows(const T* c, T* y, int64_t n, int64_t N, int64_t cn) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = c[cn == 1 ? 0 : (cn == N ? i % N : i)];
}

class GemmKernel : public CudaKernel {
 public:
  explicit GemmKernel(const KernelCreateArgs& a)
      : CudaKernel(a), alpha_(a.node.attr_f("alpha", 1.f)), beta_(a.node.attr_f("beta", 1.f)),
        ta_(a.node.attr_i("transA", 0) != 0), tb_(a.node.attr_i("transB", 0) != 0) {}
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_floatish(in[0], "A");
    const auto& as = in[0].shape;
    const auto& bs = in[1].shape;
    const int64_t M = ta_ ? as[1] : as[0], K = ta_ ? as[0] : as[1], N = tb_ ? bs[0] : bs[1];
    const int64_t n = M * N;
    if (n == 0) return;
    cudaStream_t s = stream_of(ctx);
    float beta = 0.f;
    if (in.size() > 2 && in[2].data) {
      const int64_t cn = in[2].numel();
      if (cn != 1 && cn != N && cn != n) fail("bias C must have 1, N or M*N elements");
      const int grid = static_cast<int>(std::min<int64_t>((n + 255) / 256, 65535));
      if (out[0].dtype == DType::Float16) fill_rows<<<grid, 256, 0, s>>>(in[2].as<__half>(), out[0].as<__half>(), n, N, cn);
      else fill_rows<<<grid, 256, 0, s>>>(in[2].as<float>(), out[0].as<float>(), n, N, cn);
      check_launch(node_);
      beta = beta_;
    }
    cublasHandle_t h = handles().cublas;
    UNIRT_CUBLAS(cublasSetStream(h, s));
    gemm_rm(h, out[0].dtype, ta_, tb_, M, N, K, alpha_, in[0].data, as[1], 0, in[1].data, bs[1], 0, beta, out[0].data, N, 0, 1);
  }

 private:
  float alpha_, beta_;
  bool ta_, tb_;
};
UNIRT_REGISTER_KERNEL(cuda, Gemm, GemmKernel);

}  // namespace
}  // namespace cuda
}  // namespace unirt
