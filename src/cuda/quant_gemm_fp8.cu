// The fp8 instantiations of quant_gemm.cuh (a file per element type: each takes minutes to compile).
#include "cuda/quant_gemm.cuh"

namespace unirt {
namespace cuda {

void qgemm_prepare_fp8(const QGemmArgs& a) {
  if (a.out8) qgemm::prepare_for<cutlass::float_e4m3_t, true>(a);
  else qgemm::prepare_for<cutlass::float_e4m3_t, false>(a);
}

void qgemm_run_fp8(const QGemmArgs& a, cudaStream_t s) {
  if (a.out8) qgemm::run_for<cutlass::float_e4m3_t, true>(a, s);
  else qgemm::run_for<cutlass::float_e4m3_t, false>(a, s);
}

}  // namespace cuda
}  // namespace unirt
