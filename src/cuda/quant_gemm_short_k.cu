// The short-K 8-bit GEMM of quant_gemm.h (tile kQGemmShortKTile): UniFormer's stage-1/2 1x1 convs
// and MLPs have K = 64-256, so a CUTLASS tile does one or two k-blocks and then spends most of its
// time in the epilogue and its TMA store pipeline (docs/kernels.md: stage-1 conv1 55 us in INT8
// against 40 us for cuBLASLt's FP16 GEMM). Here a persistent block keeps the whole of B (N x K <=
// 512 x 256 bytes) in shared memory and walks row tiles of 128, the next tile's A loading while
// this one is computed; each warp multiplies 32 rows by 64 columns at a time with mma.sync
// m16n8k32 (int8 -> int32, or E4M3 -> float32), and the epilogue works on the accumulators in
// registers: alpha and bias, then the residual and float16 (plus the 8-bit copy), or GELU and the
// requantize. The warp's results pass through shared memory so that every global store is 16
// bytes of one row.
#include <cuda_fp16.h>

#include <algorithm>
#include <string>

#include "backend/quantize_rule.h"
#include "cuda/gelu.cuh"
#include "cuda/mma.cuh"
#include "cuda/mma8.cuh"
#include "cuda/quant_gemm.h"
#include "ir/graph.h"

namespace unirt {
namespace cuda {
namespace {

constexpr int kWarps = 4, kWarpRows = 32, kRows = kWarps * kWarpRows, kCols = 64;
constexpr int kMaxK = 256, kMaxN = 512;
constexpr int kHalfLd = kCols + 8;   // staged float16 row: 144 bytes, conflict-free half2 writes
constexpr int kCodeLd = kCols + 16;  // staged code row: 80 bytes
constexpr int kStageBytes = kWarpRows * kHalfLd * 2 + kWarpRows * kCodeLd;

enum class Out { Half, HalfResidual, HalfResidualCodes, GeluCodes };

// B, alpha and bias once per block, two buffers of A's rows (the next tile's load overlaps this
// one's work), and each warp's staging tile.
size_t smem_bytes(int64_t N, int64_t K) {
  const size_t ld = static_cast<size_t>(K) + 16;
  return (2 * kRows + static_cast<size_t>(N)) * ld + 2 * sizeof(float) * static_cast<size_t>(N) + kWarps * size_t(kStageBytes);
}

template <bool FP8, Out OUT>
__global__ void __launch_bounds__(kWarps * 32) qgemm_short_k(const uint8_t* __restrict__ A, const uint8_t* __restrict__ B,
                                                             const float* __restrict__ alpha, const float* __restrict__ bias,
                                                             const __half* __restrict__ R, void* __restrict__ D,
                                                             uint8_t* __restrict__ aux, float inv, int M, int N, int K) {
  using Acc = typename Mma8<FP8>::Acc;
  constexpr bool kCodes = OUT == Out::GeluCodes;
  constexpr bool kResidual = OUT == Out::HalfResidual || OUT == Out::HalfResidualCodes;
  constexpr bool kAux = OUT == Out::HalfResidualCodes;
  extern __shared__ float4 smem_raw[];
  const int ld = K + 16;  // padded rows: the eight rows an ldmatrix reads fall in distinct banks
  uint8_t* sb = reinterpret_cast<uint8_t*>(smem_raw);  // [N][ld]: B is [N, K], K-major like mma's B
  uint8_t* sa0 = sb + N * ld;                          // 2 x [kRows][ld]
  float* s_alpha = reinterpret_cast<float*>(sa0 + 2 * kRows * ld);
  float* s_bias = s_alpha + N;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  uint8_t* stage = reinterpret_cast<uint8_t*>(s_bias + N) + warp * kStageBytes;
  __half* sh = reinterpret_cast<__half*>(stage);  // [32][kHalfLd]
  uint8_t* sc = stage + kWarpRows * kHalfLd * 2;  // [32][kCodeLd]
  const int chunks = K / 16;
  const int tiles = (M + kRows - 1) / kRows;
  auto load_a = [&](int tile, uint8_t* sa) {
    const int64_t row0 = int64_t(tile) * kRows;
    for (int i = threadIdx.x; i < kRows * chunks; i += blockDim.x) {
      const int r = i / chunks, c = (i - r * chunks) * 16;
      const bool ok = row0 + r < M;
      cp_async16(sa + r * ld + c, ok ? A + (row0 + r) * K + c : A, ok);
    }
  };
  for (int i = threadIdx.x; i < N * chunks; i += blockDim.x) {
    const int r = i / chunks, c = (i - r * chunks) * 16;
    cp_async16(sb + r * ld + c, B + int64_t(r) * K + c, true);
  }
  if (blockIdx.x < tiles) load_a(blockIdx.x, sa0);
  cp_async_commit();
  for (int i = threadIdx.x; i < N; i += blockDim.x) {
    s_alpha[i] = alpha[i];
    s_bias[i] = bias ? bias[i] : 0.f;
  }
  const int wrow = warp * kWarpRows;
  // ldmatrix row addresses: A's x4 is rows 0-7 / 8-15 at bytes 0 and 16 of the k-step (the a0-a3
  // fragments of m16n8k32); B's is n-tiles j and j + 1 at bytes 0 and 16 (b0, b1 of each).
  const int a_row = (lane & 7) + ((lane >> 3) & 1) * 8, a_col = (lane >> 4) * 16;
  const int b_row = (lane & 7) + (lane >> 4) * 8, b_col = ((lane >> 3) & 1) * 16;
  int buf = 0;
  for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x, buf ^= 1) {
    const int next = tile + gridDim.x;
    if (next < tiles) {
      load_a(next, sa0 + (buf ^ 1) * kRows * ld);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const uint8_t* sa = sa0 + buf * kRows * ld;
    const int64_t row0 = int64_t(tile) * kRows;
    if (row0 + wrow < M) {
      for (int n0 = 0; n0 < N; n0 += kCols) {
        Acc acc[2][8][4];
#pragma unroll
        for (int m = 0; m < 2; ++m)
#pragma unroll
          for (int j = 0; j < 8; ++j) acc[m][j][0] = acc[m][j][1] = acc[m][j][2] = acc[m][j][3] = Acc(0);
#pragma unroll 2
        for (int k0 = 0; k0 < K; k0 += 32) {
          uint32_t a[2][4];
#pragma unroll
          for (int m = 0; m < 2; ++m) ldmatrix_x4(a[m], sa + (wrow + m * 16 + a_row) * ld + k0 + a_col);
#pragma unroll
          for (int j = 0; j < 8; j += 2) {
            uint32_t b[4];
            ldmatrix_x4(b, sb + (n0 + j * 8 + b_row) * ld + k0 + b_col);
#pragma unroll
            for (int m = 0; m < 2; ++m) {
              Mma8<FP8>::run(acc[m][j], a[m], b[0], b[1]);
              Mma8<FP8>::run(acc[m][j + 1], a[m], b[2], b[3]);
            }
          }
        }
        // Accumulator (m, j, 2h + e) is row m*16 + g + 8h, column n0 + 8j + 2t + e of the warp's tile.
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          const int col = j * 8 + 2 * t;
          const float2 al = *reinterpret_cast<const float2*>(s_alpha + n0 + col);
          const float2 bi = *reinterpret_cast<const float2*>(s_bias + n0 + col);
#pragma unroll
          for (int m = 0; m < 2; ++m)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
              const int r = m * 16 + g + 8 * h;
              float z0 = fmaf(al.x, acc_to_float(acc[m][j][2 * h]), bi.x);
              float z1 = fmaf(al.y, acc_to_float(acc[m][j][2 * h + 1]), bi.y);
              if constexpr (kCodes) {
                *reinterpret_cast<uint16_t*>(sc + r * kCodeLd + col) = two_codes(FP8, gelu_tanh_approx(z0), gelu_tanh_approx(z1), inv);
              } else {
                if constexpr (kResidual) {
                  const int64_t row = row0 + wrow + r;
                  if (row < M) {
                    const float2 rv = __half22float2(*reinterpret_cast<const __half2*>(R + row * N + n0 + col));
                    z0 += rv.x;
                    z1 += rv.y;
                  }
                }
                const __half2 hv = __floats2half2_rn(z0, z1);
                *reinterpret_cast<__half2*>(sh + r * kHalfLd + col) = hv;
                if constexpr (kAux)
                  *reinterpret_cast<uint16_t*>(sc + r * kCodeLd + col) = two_codes(FP8, __low2float(hv), __high2float(hv), inv);
              }
            }
        }
        __syncwarp();
        if constexpr (!kCodes) {
          __half* d = static_cast<__half*>(D);
          for (int i = lane; i < kWarpRows * (kCols / 8); i += 32) {
            const int r = i / (kCols / 8), c = (i % (kCols / 8)) * 8;
            const int64_t row = row0 + wrow + r;
            if (row < M) *reinterpret_cast<uint4*>(d + row * N + n0 + c) = *reinterpret_cast<const uint4*>(sh + r * kHalfLd + c);
          }
        }
        if constexpr (kCodes || kAux) {
          uint8_t* d = kCodes ? static_cast<uint8_t*>(D) : aux;
          for (int i = lane; i < kWarpRows * (kCols / 16); i += 32) {
            const int r = i / (kCols / 16), c = (i % (kCols / 16)) * 16;
            const int64_t row = row0 + wrow + r;
            if (row < M) *reinterpret_cast<uint4*>(d + row * N + n0 + c) = *reinterpret_cast<const uint4*>(sc + r * kCodeLd + c);
          }
        }
        __syncwarp();  // the staging tile is rewritten by the next column chunk
      }
    }
    __syncthreads();  // this buffer is refilled by the next iteration's prefetch
  }
}

template <bool FP8, Out OUT>
void launch(const QGemmArgs& a, cudaStream_t s, bool set_up) {
  const size_t smem = smem_bytes(a.N, a.K);
  auto* k = qgemm_short_k<FP8, OUT>;
  if (set_up) {
    const cudaError_t e = cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (e != cudaSuccess) throw Error(std::string("short-K 8-bit GEMM set-up: ") + cudaGetErrorString(e));
    return;
  }
  // Persistent: as many blocks as fit on the device at once, each walking every grid-th row tile.
  int dev = 0, sms = 0, per_sm = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, k, kWarps * 32, smem);
  const int64_t tiles = (a.M + kRows - 1) / kRows;
  const unsigned grid = static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(tiles, int64_t(std::max(1, per_sm)) * sms)));
  k<<<grid, kWarps * 32, smem, s>>>(static_cast<const uint8_t*>(a.a), static_cast<const uint8_t*>(a.b), a.alpha, a.bias, a.residual, a.d,
                                     static_cast<uint8_t*>(a.aux), a.out8 ? a.inv_out_scale : a.aux_inv_scale, static_cast<int>(a.M),
                                     static_cast<int>(a.N), static_cast<int>(a.K));
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw Error(std::string("short-K 8-bit GEMM launch (grid ") + std::to_string(grid) + ", " + std::to_string(smem) +
                " bytes of shared memory): " + cudaGetErrorString(e));
}

template <bool FP8>
void dispatch(const QGemmArgs& a, cudaStream_t s, bool set_up) {
  if (a.out8) launch<FP8, Out::GeluCodes>(a, s, set_up);
  else if (a.has_aux) launch<FP8, Out::HalfResidualCodes>(a, s, set_up);
  else if (a.has_residual) launch<FP8, Out::HalfResidual>(a, s, set_up);
  else launch<FP8, Out::Half>(a, s, set_up);
}

}  // namespace

std::string qgemm_short_k_unsupported(const QGemmArgs& a) {
  if (a.K % 32 || a.K > kMaxK) return "the short-K kernel takes K a multiple of 32 up to " + std::to_string(kMaxK);
  if (a.N % kCols || a.N > kMaxN) return "the short-K kernel takes N a multiple of 64 up to " + std::to_string(kMaxN);
  if (a.M > INT32_MAX) return "the short-K kernel takes M below 2^31";
  int dev = 0, optin = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  if (smem_bytes(a.N, a.K) > static_cast<size_t>(optin)) return "the short-K kernel's shared memory exceeds the device's";
  return "";
}

void qgemm_prepare_short_k(QGemmType t, const QGemmArgs& a) {
  const std::string why = qgemm_short_k_unsupported(a);
  if (!why.empty()) throw Error(why);
  if (t == QGemmType::Int8) dispatch<false>(a, nullptr, true);
  else dispatch<true>(a, nullptr, true);
}

void qgemm_run_short_k(QGemmType t, const QGemmArgs& a, cudaStream_t s) {
  if (t == QGemmType::Int8) dispatch<false>(a, s, false);
  else dispatch<true>(a, s, false);
}

}  // namespace cuda
}  // namespace unirt
