// The fp8 instantiations of quant_gemm.cuh (a file per element type: each takes minutes to compile).
#include "cuda/quant_gemm.cuh"

namespace unirt {
namespace cuda {

void qgemm_prepare_fp8(const QGemmArgs& a, int tile) { qgemm::prepare_for<cutlass::float_e4m3_t>(a, tile); }
void qgemm_run_fp8(const QGemmArgs& a, int tile, cudaStream_t s) { qgemm::run_for<cutlass::float_e4m3_t>(a, tile, s); }

}  // namespace cuda
}  // namespace unirt
