// Shared by the CUDA kernels: error checks, the per-process library handles, and small helpers.
#pragma once
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <string>
#include <vector>

#include "runtime/kernel.h"

namespace unirt {
namespace cuda {

void throw_cuda(cudaError_t e, const char* call, const char* where);
void throw_cublas(cublasStatus_t s, const char* call, const char* where);
void throw_cudnn(cudnnStatus_t s, const char* call, const char* where);

#define UNIRT_CUDA(call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) ::unirt::cuda::throw_cuda(e_, #call, __FILE__); } while (0)
#define UNIRT_CUBLAS(call) do { cublasStatus_t s_ = (call); if (s_ != CUBLAS_STATUS_SUCCESS) ::unirt::cuda::throw_cublas(s_, #call, __FILE__); } while (0)
#define UNIRT_CUDNN(call) do { cudnnStatus_t s_ = (call); if (s_ != CUDNN_STATUS_SUCCESS) ::unirt::cuda::throw_cudnn(s_, #call, __FILE__); } while (0)

// Library handles shared by all kernels of the process (one stream per backend binds them per run).
struct Handles {
  cublasHandle_t cublas = nullptr;
  cudnnHandle_t cudnn = nullptr;
};
Handles& handles();

inline cudaStream_t stream_of(const RunContext& ctx) { return static_cast<cudaStream_t>(ctx.stream); }

// Launch check after every kernel: a bad configuration names the node.
inline void check_launch(const Node& n) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw Error(n.describe() + ": CUDA launch failed: " + cudaGetErrorString(e));
}

constexpr int kMaxDims = 8;
struct Dims {
  int rank = 0;
  int64_t d[kMaxDims] = {};
};
struct Strides {
  int64_t s[kMaxDims] = {};
};

Dims dims_of(const std::vector<int64_t>& shape);
// Row-major strides; broadcast dims (size 1 where out is larger) get stride 0.
Strides strides_for(const std::vector<int64_t>& in, const std::vector<int64_t>& out);

// Row-major C[M,N] = alpha * op(A)[M,K] op(B)[K,N] + beta * C, batched with element strides
// (stride 0 shares an operand); float32 accumulation (tensor cores for float16).
void gemm_rm(cublasHandle_t h, DType t, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* A,
             int64_t lda, int64_t sa, const void* B, int64_t ldb, int64_t sb, float beta, void* C, int64_t ldc, int64_t sc,
             int64_t batch);
// out[i] = in[base + sum_k idx_k(i) * in_strides[k]] over out_shape; any element size.
void strided_copy(const void* in, void* out, DType t, const std::vector<int64_t>& out_shape,
                  const std::vector<int64_t>& in_strides, int64_t base, cudaStream_t stream);
// y[n, c, s] = bias[c] for an NCHW tensor with C channels of S elements each.
void fill_channel_bias(DType t, const void* bias, void* y, int64_t n, int64_t C, int64_t S, cudaStream_t stream);

class CudaKernel : public OpKernel {
 public:
  explicit CudaKernel(const KernelCreateArgs& a) : node_(a.node), opset_(a.graph.opset) {}

 protected:
  [[noreturn]] void fail(const std::string& m) const { throw Error(node_.describe() + ": " + m); }
  void expect_floatish(const TensorView& t, const char* what) const {
    if (t.dtype != DType::Float32 && t.dtype != DType::Float16)
      fail(std::string(what) + " has type " + dtype_name(t.dtype) + ", the CUDA backend expects float32 or float16");
  }
  std::vector<int64_t> host_ints(const TensorView& t, const char* what) const {
    if (!t.host_values) fail(std::string(what) + " must be known when the input shape is (a shape value or constant)");
    return std::vector<int64_t>(t.host_values, t.host_values + t.numel());
  }
  Node node_;
  int64_t opset_;
};

}  // namespace cuda
}  // namespace unirt
