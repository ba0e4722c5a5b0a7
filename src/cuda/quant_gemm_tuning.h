// qgemm_autotune (quant_gemm.h) that also returns the fastest tile's time, and the timing both use:
// for layers that weigh an 8-bit GEMM pair against a fused kernel (quantized_mlp.cu).
#pragma once
#include <functional>

#include "cuda/quant_gemm.h"

namespace unirt {
namespace cuda {

int qgemm_autotune(QGemmType t, const QGemmArgs& a, std::string* report, float* best_us);
// Mean microseconds of device time of `reps` back-to-back calls of `launch(stream)`, captured into
// one CUDA graph and replayed (the caller has run it once already), so the host's launch cost (a
// CUTLASS launch encodes its TMA descriptors) is not timed in place of a small GEMM: in an
// engine's graph it is not paid either. Throws Error on a CUDA failure.
float time_launches_us(const std::function<void(cudaStream_t)>& launch, int reps);

}  // namespace cuda
}  // namespace unirt
