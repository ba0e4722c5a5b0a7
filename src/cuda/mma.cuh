// Tensor-core and async-copy building blocks shared by the hand-written float16 kernels
// (attention.cu, mlp.cu): mma.sync m16n8k16 with float32 accumulation, ldmatrix, cp.async.
#pragma once
#include <cuda_fp16.h>

#include <cstdint>

namespace unirt {
namespace cuda {

// d += a (16x16, row-major fragment) * b (16x8, column-major fragment b0/b1).
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Four 8x8 half tiles from shared memory: the A fragment of a row-major 16x16 tile when lanes 0-15
// address rows 0-15 at column 0 and lanes 16-31 rows 0-15 at column 8.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem_row) {
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(smem_row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// Four 8x8 half tiles from shared memory, transposed: B fragments of a row-major [k][n] matrix.
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* smem_row) {
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(smem_row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// acc[m][n] += A[m] B for MT row tiles (16x16 A fragments) and NT n-tiles of 8: B is the 16-row
// slice of a row-major [k][n] float16 tile in shared memory starting at b_rows (row stride ldb).
template <int MT, int NT>
__device__ __forceinline__ void mma_b_rowmajor(float (&acc)[MT][NT][4], const uint32_t (&a)[MT][4], const __half* b_rows, int ldb,
                                               int lane) {
  const int krow = ((lane >> 3) & 1) * 8 + (lane & 7), nblk = lane >> 4;
#pragma unroll
  for (int nt = 0; nt < NT; nt += 2) {
    uint32_t b[4];
    ldmatrix_x4_trans(b, b_rows + krow * ldb + (nt + nblk) * 8);
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      mma16816(acc[m][nt], a[m], b[0], b[1]);
      mma16816(acc[m][nt + 1], a[m], b[2], b[3]);
    }
  }
}

__device__ __forceinline__ uint32_t pack_half2(float lo, float hi) {
  __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&h);
}

// The accumulators of two neighbouring n-tiles (16 x 16 of C = A B) rounded to float16 are exactly
// the A fragment of that 16 x 16 block: how P feeds P V and GELU(X W1) feeds (...) W2 on chip.
__device__ __forceinline__ void accumulators_to_a(const float (&left)[4], const float (&right)[4], uint32_t (&a)[4]) {
  a[0] = pack_half2(left[0], left[1]);
  a[1] = pack_half2(left[2], left[3]);
  a[2] = pack_half2(right[0], right[1]);
  a[3] = pack_half2(right[2], right[3]);
}

// 16 bytes global -> shared without passing through registers; zero-filled when !valid.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

}  // namespace cuda
}  // namespace unirt
