// sgemm split across OpenMP threads, each calling single-threaded OpenBLAS. The Debian OpenBLAS
// is the pthreads build: letting it spawn its own workers next to our OpenMP team makes the two
// pools spin against each other on small machines, so BLAS always runs on one thread per call.
#pragma once
#include <cblas.h>

#include <algorithm>
#include <cstdint>

namespace unirt {
namespace cpu {

inline void blas_single_thread() {
  static const bool once = [] {
    openblas_set_num_threads(1);
    return true;
  }();
  (void)once;
}

// Row-major C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C.
inline void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                  const float* B, int64_t ldb, float beta, float* C, int64_t ldc, int threads) {
  blas_single_thread();
  if (M == 0 || N == 0) return;
  const CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
  const double flops = 2.0 * M * N * K;
  int parts = threads > 1 && flops > 2e5 ? threads : 1;
  if (parts == 1) {
    cblas_sgemm(CblasRowMajor, TA, TB, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), alpha, A,
                static_cast<int>(lda), B, static_cast<int>(ldb), beta, C, static_cast<int>(ldc));
    return;
  }
  // Split the larger of M and N into blocks of 16 so every thread gets whole SIMD panels.
  const bool split_m = M >= N;
  const int64_t total = split_m ? M : N;
  const int64_t blocks = (total + 15) / 16;
  parts = static_cast<int>(std::min<int64_t>(parts, blocks));
#pragma omp parallel for num_threads(parts) schedule(static)
  for (int p = 0; p < parts; ++p) {
    const int64_t b0 = blocks * p / parts, b1 = blocks * (p + 1) / parts;
    const int64_t lo = b0 * 16, hi = std::min(total, b1 * 16);
    if (hi <= lo) continue;
    if (split_m) {
      const float* Ap = ta ? A + lo : A + lo * lda;
      cblas_sgemm(CblasRowMajor, TA, TB, static_cast<int>(hi - lo), static_cast<int>(N), static_cast<int>(K), alpha, Ap,
                  static_cast<int>(lda), B, static_cast<int>(ldb), beta, C + lo * ldc, static_cast<int>(ldc));
    } else {
      const float* Bp = tb ? B + lo * ldb : B + lo;
      cblas_sgemm(CblasRowMajor, TA, TB, static_cast<int>(M), static_cast<int>(hi - lo), static_cast<int>(K), alpha, A,
                  static_cast<int>(lda), Bp, static_cast<int>(ldb), beta, C + lo, static_cast<int>(ldc));
    }
  }
}

}  // namespace cpu
}  // namespace unirt
