// qgemm_autotune (quant_gemm.h) that also returns the fastest tile's time, and the timing both use:
// for layers that weigh an 8-bit GEMM pair against a fused kernel (quantized_mlp.cu).
#pragma once
#include <functional>

#include "cuda/quant_gemm.h"

namespace unirt {
namespace cuda {

int qgemm_autotune(QGemmType t, const QGemmArgs& a, std::string* report, float* best_us);
// Mean microseconds of `reps` calls of `launch` on the default stream (CUDA events; the caller has
// run it once already). Throws Error on a CUDA failure.
float time_launches_us(const std::function<void()>& launch, int reps);

}  // namespace cuda
}  // namespace unirt
