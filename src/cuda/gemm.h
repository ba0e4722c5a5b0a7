// Row-major GEMMs through cuBLASLt, shared by MatMul, Gemm and the patch-embedding Conv.
#pragma once
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <vector>

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
  // Descriptors and up to `candidates` algorithms from the heuristic, the first selected; returns
  // the workspace run() needs.
  size_t setup(const GemmShape& s, int candidates = 1);
  int candidates() const { return static_cast<int>(results_.size()); }
  // Selects candidate i; returns the workspace it needs.
  size_t select(int i);
  int selected() const { return selected_; }
  size_t run_workspace() const { return workspace_; }
  // Times every candidate on scratch buffers of this shape (allocated and freed here, so only
  // outside run()/capture), selects the fastest and describes the outcome.
  std::string autotune(bool with_c);
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
  std::vector<cublasLtMatmulHeuristicResult_t> results_;
  int selected_ = 0;
};

// Candidates a plan asks the heuristic for when its algorithm is timed.
constexpr int kGemmCandidates = 8;
// The tactic for a plan of M rows: the recorded candidate when `recorded` names this M (as written
// by autotune), else timed now. Describes the choice in *tactic; returns the workspace.
size_t choose_gemm(LtGemm& gemm, int64_t M, const std::string& recorded, bool with_c, std::string* tactic);

// The alignment in bytes (16, 8, 4, 2 or 1) every one of these byte offsets is a multiple of.
int alignment_of(std::initializer_list<int64_t> byte_offsets);
// Y[M, N] = X[M, K] W[K, N] (+ bias[N]), all row-major and dense: unirt.Linear and the GEMM of
// unirt.ConvNHWC.
GemmShape dense_gemm(DType type, int64_t M, int64_t N, int64_t K, bool bias);

// The cuBLASLt plans of one layer, one per row count M, each with its algorithm chosen once (the
// engine's recorded tactic when it names that M, else timed). Used from prepare(); run() finds.
class GemmPlans {
 public:
  // The plan for g.M rows, made now if new; returns the workspace its run needs.
  size_t prepare(const GemmShape& g, bool with_c);
  // The plan prepared for M rows; nullptr when prepare() never saw M.
  const LtGemm* find(int64_t M) const;
  std::string recorded;  // from the engine (use_tactic)
  std::string tactic;    // of the last prepared plan (tactic())

 private:
  struct Plan {
    LtGemm gemm;
    size_t workspace = 0;
  };
  std::map<int64_t, std::unique_ptr<Plan>> plans_;
};

}  // namespace cuda
}  // namespace unirt
