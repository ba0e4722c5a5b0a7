// The dispatch half of quant_gemm.h (no CUTLASS here: the instantiations live in the .cu files).
#include "cuda/quant_gemm.h"

#include "ir/graph.h"

namespace unirt {
namespace cuda {

std::string qgemm_unsupported(const QGemmArgs& a) {
  if (a.M > INT32_MAX || a.N > INT32_MAX || a.K > INT32_MAX) return "8-bit GEMM dimensions must fit in int32";
  if (a.K % 16) return "K = " + std::to_string(a.K) + " is not a multiple of 16 (the 8-bit GEMM reads 16-byte rows)";
  if (a.N % 16) return "N = " + std::to_string(a.N) + " is not a multiple of 16";
  if (a.out8 && !a.gelu) return "an 8-bit output is only built with the GELU epilogue";
  if (a.out8 && a.residual) return "an 8-bit output takes no residual";
  if (!a.out8 && a.gelu) return "GELU is only built with an 8-bit output";
  return "";
}

std::string qgemm_tile(QGemmType, const QGemmArgs& a) { return a.N <= 64 ? "128x64x128" : "128x128x128"; }

void qgemm_prepare(QGemmType t, const QGemmArgs& a) {
  if (t == QGemmType::Int8) qgemm_prepare_int8(a);
  else qgemm_prepare_fp8(a);
}

void qgemm_run(QGemmType t, const QGemmArgs& a, cudaStream_t s) {
  if (t == QGemmType::Int8) qgemm_run_int8(a, s);
  else qgemm_run_fp8(a, s);
}

}  // namespace cuda
}  // namespace unirt
