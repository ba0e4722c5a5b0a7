// qgemm_autotune (quant_gemm.h) that also returns the fastest tile's time: for layers that
// weigh an 8-bit GEMM pair against a fused kernel (quantized_mlp.cu).
#pragma once
#include "cuda/quant_gemm.h"

namespace unirt {
namespace cuda {

int qgemm_autotune(QGemmType t, const QGemmArgs& a, std::string* report, float* best_us);

}  // namespace cuda
}  // namespace unirt
