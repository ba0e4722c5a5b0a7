// Row-major GEMMs through cuBLASLt, shared by MatMul, Gemm and the patch-embedding Conv.
#pragma once
#include "cuda/cuda_context.h"

namespace unirt {
namespace cuda {

// D[b] = alpha * op(A[b]) op(B[b]) + beta * C[b] (+ bias[n] per output column), row-major, with
// element strides between batches (0 shares an operand across the batch). float32 accumulation:
// full FP32 for float32 tensors, tensor cores for float16.
struct GemmShape {
  DType type = DType::Float32;
  bool trans_a = false, trans_b = false;
  int64_t M = 0, N = 0, K = 0;
  int64_t lda = 0, ldb = 0, ldc = 0;
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;
  int64_t batch = 1;
  bool bias = false;         // bias epilogue: bias[N] added to every row of D
  bool gelu = false;         // GELU epilogue (cuBLASLt's tanh form) after the bias
  int min_alignment = 16;    // bytes every A/B/C pointer is known to be aligned to
};

class LtGemm {
 public:
  LtGemm() = default;
  LtGemm(const LtGemm&) = delete;
  LtGemm& operator=(const LtGemm&) = delete;
  ~LtGemm();
  // Descriptors and the heuristic's best algorithm; returns the workspace run() needs.
  size_t setup(const GemmShape& s);
  // C may equal D (or be null with beta == 0).
  void run(float alpha, const void* A, const void* B, float beta, const void* C, void* D, const void* bias, void* workspace,
           size_t workspace_bytes, cudaStream_t stream) const;
  const GemmShape& shape() const { return s_; }
  bool ready() const { return desc_ != nullptr; }

 private:
  GemmShape s_;
  cublasLtMatmulDesc_t desc_ = nullptr;
  cublasLtMatrixLayout_t a_ = nullptr, b_ = nullptr, c_ = nullptr;
  cublasLtMatmulAlgo_t algo_{};
  size_t workspace_ = 0;
};

}  // namespace cuda
}  // namespace unirt
