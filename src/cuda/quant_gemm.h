// 8-bit GEMMs on Hopper tensor cores (CUTLASS 3 warp-specialised TMA/WGMMA kernels, instantiated
// in quant_gemm_int8.cu and quant_gemm_fp8.cu, and a hand-written mma.sync kernel for short K in
// quant_gemm_short_k.cu) for unirt.QuantizedLinear:
//   Z[m, n] = alpha[n] * sum_k A[m, k] B[n, k] + bias[n]      (int32 or float32 accumulation)
//   D = Z + R (float16, R optional)          or          D = quantize(act(Z) * inv_out_scale)
//   and, with a residual, optionally also Aux = quantize(D * aux_inv_scale) (A's 8-bit type)
// A int8 or float8 E4M3FN row-major [M, K]; B the same type [N, K] (K-major: what WGMMA needs for
// 8-bit operands); alpha = activation scale x per-output-channel weight scale. cuBLASLt has no
// 8-bit kernel with a per-channel alpha and a float16 output (docs/kernels.md), hence these.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace unirt {
namespace cuda {

enum class QGemmType { Int8, Fp8 };

struct QGemmArgs {
  int64_t M = 0, N = 0, K = 0;
  const void* a = nullptr;
  const void* b = nullptr;
  const float* alpha = nullptr;   // [N]
  const float* bias = nullptr;    // [N] or null
  const __half* residual = nullptr;  // [M, N] (float16 output only) when has_residual
  void* d = nullptr;
  bool out8 = false;              // D is the 8-bit type of A (else float16)
  bool gelu = false;              // act = GELU (tanh form); 8-bit output only
  float inv_out_scale = 1.f;      // 8-bit output: D = quantize(act(Z) * inv_out_scale)
  void* aux = nullptr;            // float16 output with a residual: also quantize(D * aux_inv_scale), A's type [M, N]
  float aux_inv_scale = 1.f;
  // Which kernel: set from the layer, not from the pointers above, which prepare() may not have yet.
  bool has_residual = false;
  bool has_aux = false;
};

// Why these operands cannot run (empty when they can): alignment, shape, variant.
std::string qgemm_unsupported(const QGemmArgs& a);
// The kernels (tile shape and schedule) a layer chooses from, by index: four CUTLASS tiles, then
// the hand-written short-K kernel (quant_gemm_short_k.cu; K <= 256).
constexpr int kQGemmTiles = 5;
constexpr int kQGemmShortKTile = 4;
const char* qgemm_tile_name(int tile);
// One-time host set-up (kernel attributes) of one tile; from prepare(), never during capture.
void qgemm_prepare(QGemmType t, const QGemmArgs& a, int tile);
// Enqueues the GEMM with that tile; throws Error on a CUTLASS failure.
void qgemm_run(QGemmType t, const QGemmArgs& a, int tile, cudaStream_t s);
// Times every tile on scratch operands of a's shape (allocated and freed here: prepare() only),
// returns the fastest and describes the timings in *report.
int qgemm_autotune(QGemmType t, const QGemmArgs& a, std::string* report);

// Per element type (quant_gemm_int8.cu / quant_gemm_fp8.cu).
void qgemm_prepare_int8(const QGemmArgs& a, int tile);
void qgemm_run_int8(const QGemmArgs& a, int tile, cudaStream_t s);
void qgemm_prepare_fp8(const QGemmArgs& a, int tile);
void qgemm_run_fp8(const QGemmArgs& a, int tile, cudaStream_t s);
// The short-K kernel (quant_gemm_short_k.cu): why it cannot run these operands (empty if it can).
std::string qgemm_short_k_unsupported(const QGemmArgs& a);
void qgemm_prepare_short_k(QGemmType t, const QGemmArgs& a);
void qgemm_run_short_k(QGemmType t, const QGemmArgs& a, cudaStream_t s);

}  // namespace cuda
}  // namespace unirt
