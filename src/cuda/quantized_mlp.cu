// unirt.QuantizedMlp (passes/fuse_quantized_mlp.cpp) on the GPU: Y = alpha2 (H W2^T) + bias2 + R
// with H = quantize(GELU(alpha1 (X W1^T) + bias1) / hidden_scale), X and the weights int8 or
// float8 E4M3, in one kernel whose H-wide hidden codes never leave the multiprocessor.
//
// As two 8-bit GEMMs, UniFormer's stage-1 MLP at batch 128 writes 103 MB of hidden codes and reads
// them back, and the fc1 GEMM is issue-bound on its GELU epilogue (docs/kernels.md). Here a
// persistent block keeps W1 [H, C] and W2 [C, H] in shared memory (at most 128 x 512 bytes each)
// and walks 128-row tiles of X, the next tile's rows loading (cp.async) while this one computes.
// Each warp takes 16 x MT rows: it multiplies them by a 32-wide chunk of W1 (mma.sync m16n8k32),
// turns the accumulators into the chunk's GELU codes in registers, and multiplies those straight
// into its C-wide output accumulators (int32 for int8, float32 for E4M3) with the matching slice of
// W2. The codes go from accumulator to A-fragment registers with no shuffle because W1's rows are
// stored permuted within each chunk (hidden_unit_of): the thread that holds accumulator columns
// 2t, 2t+1 of n-tiles 0-3 then holds exactly the hidden units its A fragment needs (k = 4t..4t+3
// and 16+4t..16+4t+3). Few rows (batch 1) leave most multiprocessors idle, so prepare() also
// times the two-GEMM form (quant_gemm.h) and keeps the faster.
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "cuda/cuda_context.h"
#include "cuda/mma.cuh"
#include "cuda/mma8.cuh"
#include "cuda/quant_gemm_tuning.h"
#include "ir/fused_attrs.h"

namespace unirt {
namespace cuda {
namespace {

constexpr int kChunk = 32;  // hidden units per step: one m16n8k32 k-step of the second GEMM

// An accumulator as the first GEMM's epilogue reads it: int32 as its 1.5 * 2^23 bit pattern (exact
// for |acc| <= 2^22, C <= 128; the bias holds the offset), float32 as it is.
__device__ __forceinline__ float acc_bits(int x) { return __int_as_float(x + 0x4B400000); }
__device__ __forceinline__ float acc_bits(float x) { return x; }

// Row p of the shared-memory W1 holds hidden unit hidden_unit_of(p). Within a chunk, column c =
// 8a + 2t + e of the first GEMM's accumulators (n-tile a, thread t of its quad, element e) is
// hidden unit 16 (a / 2) + 4t + 2 (a % 2) + e: an m16n8k32 A fragment's k index for that thread.
__host__ __device__ inline int hidden_unit_of(int p) {
  const int c = p & (kChunk - 1), a = c >> 3, t = (c >> 1) & 3, e = c & 1;
  return (p & ~(kChunk - 1)) + 16 * (a >> 1) + 4 * t + 2 * (a & 1) + e;
}

// Warps and m16 row tiles per warp for C channels: 32 rows a warp at C <= 64, 16 above (the C-wide
// output accumulators stay at 64 registers a thread); 128 rows a block either way.
template <int C>
struct Geometry {
  static constexpr int kMT = C <= 64 ? 2 : 1;
  static constexpr int kWarps = C <= 64 ? 4 : 8;
  static constexpr int kRows = kWarps * 16 * kMT;
};
constexpr int kBlockRows = 128;
static_assert(Geometry<32>::kRows == kBlockRows && Geometry<128>::kRows == kBlockRows, "one row tile for every width");

// W1, W2 and X's rows with 16-byte-padded rows (the eight rows an ldmatrix reads fall in distinct
// banks), the float16 residual / output rows padded by 8 halves (conflict-free half2 access), then
// alpha and bias of both layers. One buffer of X: the next tile's rows load once every warp holds
// this one's fragments in registers. Stage 1 (64 -> 256): 67 KB, three blocks a multiprocessor.
size_t smem_bytes(int64_t C, int64_t H, int rows) {
  return static_cast<size_t>(H * (C + 16) + C * (H + 16) + rows * (C + 16) + rows * (C + 8) * 2) + sizeof(float) * 2 * static_cast<size_t>(H + C);
}

__device__ __forceinline__ uint32_t h2_bits(__half2 v) { return *reinterpret_cast<uint32_t*>(&v); }

// The GELU codes of two pre-activations, computed in packed float16: GELU's tanh form with the
// hardware tanh.approx.f16x2, times half the reciprocal hidden scale (so h (1 + tanh) is already in
// code units), then int8 through the 1.5 * 2^10 bit pattern (after the clamp, the low byte of
// g + 1536 is rint(g): the fp16 spacing there is 1) in bytes 0 and 2, or E4M3 through
// cvt.rn.satfinite.e4m3x2.f16x2 in bits 0-15. Half the instructions of the float32 epilogue
// (quant_gemm_short_k.cu's fc1 was issue-bound at 22 a code); float16's 2^-11 relative rounding
// on the way is the hardware tanh's own error, below a code's step (1/127 of the range, or E4M3's
// 2^-3 relative), and moves a code only where GELU lands next to a rounding boundary.
template <bool FP8>
__device__ __forceinline__ uint32_t gelu_code_pair(float z0, float z1, __half2 half_inv) {
  // Below -16 GELU is 0 to far below a code; the floor keeps h (1 + tanh) from inf - inf.
  const __half2 z = __hmax2(__floats2half2_rn(z0, z1), __float2half2_rn(-16.f));
  const __half2 u = __hmul2(z, __hfma2(__hmul2(z, z), __float2half2_rn(0.0356774081f), __float2half2_rn(0.7978845608f)));
  uint32_t t;
  asm("tanh.approx.f16x2 %0, %1;" : "=r"(t) : "r"(h2_bits(u)));
  const __half2 h = __hmul2(z, half_inv);
  __half2 g = __hfma2(h, *reinterpret_cast<const __half2*>(&t), h);
  if constexpr (FP8) {
    return __nv_cvt_halfraw2_to_fp8x2(static_cast<__half2_raw>(g), __NV_SATFINITE, __NV_E4M3);
  } else {
    g = __hmin2(__hmax2(g, __float2half2_rn(-128.f)), __float2half2_rn(127.f));
    return h2_bits(__hadd2(g, __float2half2_rn(1536.f)));
  }
}

// Four codes for one A-fragment register from two gelu_code_pair results (n-tiles j and j + 1).
template <bool FP8>
__device__ __forceinline__ uint32_t four_codes(uint32_t lo, uint32_t hi) {
  return FP8 ? __byte_perm(lo, hi, 0x5410) : __byte_perm(lo, hi, 0x6420);
}

template <bool FP8, int C>
__global__ void __launch_bounds__(Geometry<C>::kWarps * 32)
    qmlp_fused(const uint8_t* __restrict__ X, const uint8_t* __restrict__ W1, const float* __restrict__ alpha1,
               const float* __restrict__ bias1, const uint8_t* __restrict__ W2, const float* __restrict__ alpha2,
               const float* __restrict__ bias2, const __half* __restrict__ R, __half* __restrict__ Y, float inv_h, int M, int H) {
  using Acc = typename Mma8<FP8>::Acc;
  constexpr int MT = Geometry<C>::kMT, kThreads = Geometry<C>::kWarps * 32, kRows = Geometry<C>::kRows, kWarpRows = 16 * MT;
  constexpr int LDC = C + 16, KS = C / 32, kRowChunks = C / 16, LDY = C + 8;
  const int LDH = H + 16;
  extern __shared__ float4 smem_raw[];
  uint8_t* sw1 = reinterpret_cast<uint8_t*>(smem_raw);  // [H][LDC], permuted rows (hidden_unit_of)
  uint8_t* sw2 = sw1 + H * LDC;                         // [C][LDH]: W2 is [C, H], H-major like mma's B
  uint8_t* sx = sw2 + C * LDH;                          // [kRows][LDC]
  __half* sy = reinterpret_cast<__half*>(sx + kRows * LDC);  // [kRows][LDY]: residual in, output out
  float* s_a1 = reinterpret_cast<float*>(sy + kRows * LDY);  // [H], permuted like sw1
  float* s_b1 = s_a1 + H;
  float* s_a2 = s_b1 + H;  // [C]
  float* s_b2 = s_a2 + C;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int tiles = (M + kRows - 1) / kRows;
  auto load_x = [&](int tile) {
    const int64_t row0 = int64_t(tile) * kRows;
    for (int i = threadIdx.x; i < kRows * kRowChunks; i += kThreads) {
      const int r = i / kRowChunks, c = (i - r * kRowChunks) * 16;
      const bool ok = row0 + r < M;
      cp_async16(sx + r * LDC + c, ok ? X + (row0 + r) * C + c : X, ok);
    }
  };
  for (int i = threadIdx.x; i < H * kRowChunks; i += kThreads) {
    const int r = i / kRowChunks, c = (i - r * kRowChunks) * 16;
    cp_async16(sw1 + r * LDC + c, W1 + int64_t(hidden_unit_of(r)) * C + c, true);
  }
  const int h_chunks = H / 16;
  for (int i = threadIdx.x; i < C * h_chunks; i += kThreads) {
    const int r = i / h_chunks, c = (i - r * h_chunks) * 16;
    cp_async16(sw2 + r * LDH + c, W2 + int64_t(r) * H + c, true);
  }
  if (blockIdx.x < tiles) load_x(blockIdx.x);
  cp_async_commit();
  // int8: the bias absorbs the 1.5 * 2^23 of the accumulator's bit-pattern conversion, so z is one
  // FFMA of the raw pattern (acc_bits below); the product's rounding is worth 1 of the integer
  // accumulator, 1/200 of a hidden code's step for UniFormer's scales.
  for (int i = threadIdx.x; i < H; i += kThreads) {
    const int h = hidden_unit_of(i);
    s_a1[i] = alpha1[h];
    s_b1[i] = (bias1 ? bias1[h] : 0.f) - (FP8 ? 0.f : alpha1[h] * 12582912.f);
  }
  for (int i = threadIdx.x; i < C; i += kThreads) {
    s_a2[i] = alpha2[i];
    s_b2[i] = bias2 ? bias2[i] : 0.f;
  }
  // ldmatrix row addresses as in quant_gemm_short_k.cu: A's x4 is rows 0-7 / 8-15 at bytes 0 and
  // 16 of the k-step; B's is n-tiles j and j + 1 at bytes 0 and 16.
  const int a_row = (lane & 7) + ((lane >> 3) & 1) * 8, a_col = (lane >> 4) * 16;
  const int b_row = (lane & 7) + (lane >> 4) * 8, b_col = ((lane >> 3) & 1) * 16;
  const int wrow = warp * kWarpRows;
  __half* wy = sy + wrow * LDY;  // this warp's rows of the residual / output staging
  const __half2 half_inv = __float2half2_rn(0.5f * inv_h);
  for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int next = tile + gridDim.x;
    const int64_t row0 = int64_t(tile) * kRows;
    const int wrows = static_cast<int>(M - row0 - wrow < kWarpRows ? M - row0 - wrow : kWarpRows);  // <= 0: none
    cp_async_wait<0>();
    __syncthreads();  // X's tile has landed (every thread's copies); the staging rows are free
    // The warp's residual rows, into its own staging rows: they land during the hidden walk and
    // are read in the epilogue (waited on from global memory there, they were 41% of the stalls).
    if (R)
      for (int i = lane; i < wrows * (C / 8); i += 32) {
        const int r = i / (C / 8), c = (i - r * (C / 8)) * 8;
        cp_async16(wy + r * LDY + c, R + (row0 + wrow + r) * C + c, true);
      }
    cp_async_commit();
    uint32_t xa[KS][MT][4];
    if (wrows > 0) {
#pragma unroll
      for (int kk = 0; kk < KS; ++kk)
#pragma unroll
        for (int m = 0; m < MT; ++m) ldmatrix_x4(xa[kk][m], sx + (wrow + m * 16 + a_row) * LDC + kk * 32 + a_col);
    }
    __syncthreads();  // every warp holds its X fragments: the next tile's rows may replace them
    if (next < tiles) load_x(next);
    cp_async_commit();
    if (wrows > 0) {
      Acc y[MT][C / 8][4];
#pragma unroll
      for (int m = 0; m < MT; ++m)
#pragma unroll
        for (int j = 0; j < C / 8; ++j) y[m][j][0] = y[m][j][1] = y[m][j][2] = y[m][j][3] = Acc(0);
      for (int h0 = 0; h0 < H; h0 += kChunk) {
        Acc s[MT][4][4];
#pragma unroll
        for (int m = 0; m < MT; ++m)
#pragma unroll
          for (int j = 0; j < 4; ++j) s[m][j][0] = s[m][j][1] = s[m][j][2] = s[m][j][3] = Acc(0);
#pragma unroll
        for (int kk = 0; kk < KS; ++kk)
#pragma unroll
          for (int j = 0; j < 4; j += 2) {
            uint32_t b[4];
            ldmatrix_x4(b, sw1 + (h0 + j * 8 + b_row) * LDC + kk * 32 + b_col);
#pragma unroll
            for (int m = 0; m < MT; ++m) {
              Mma8<FP8>::run(s[m][j], xa[kk][m], b[0], b[1]);
              Mma8<FP8>::run(s[m][j + 1], xa[kk][m], b[2], b[3]);
            }
          }
        // Accumulator (m, j, 2h + e): row m*16 + g + 8h, chunk column 8j + 2t + e. Its GELU code goes
        // to byte 2(j % 2) + e of A register h + 2(j / 2): rows g / g + 8, k = 4t.. / 16 + 4t...
        uint32_t pa[MT][4];
#pragma unroll
        for (int m = 0; m < MT; ++m) {
          uint32_t codes[4][2];
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            const int col = h0 + j * 8 + 2 * t;
            const float2 al = *reinterpret_cast<const float2*>(s_a1 + col);
            const float2 bi = *reinterpret_cast<const float2*>(s_b1 + col);
#pragma unroll
            for (int h = 0; h < 2; ++h) {
              const float z0 = fmaf(al.x, acc_bits(s[m][j][2 * h]), bi.x);
              const float z1 = fmaf(al.y, acc_bits(s[m][j][2 * h + 1]), bi.y);
              codes[j][h] = gelu_code_pair<FP8>(z0, z1, half_inv);
            }
          }
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            pa[m][h] = four_codes<FP8>(codes[0][h], codes[1][h]);
            pa[m][h + 2] = four_codes<FP8>(codes[2][h], codes[3][h]);
          }
        }
#pragma unroll
        for (int j = 0; j < C / 8; j += 2) {
          uint32_t b[4];
          ldmatrix_x4(b, sw2 + (j * 8 + b_row) * LDH + h0 + b_col);
#pragma unroll
          for (int m = 0; m < MT; ++m) {
            Mma8<FP8>::run(y[m][j], pa[m], b[0], b[1]);
            Mma8<FP8>::run(y[m][j + 1], pa[m], b[2], b[3]);
          }
        }
      }
      // The residual: this thread's copies are the older of its two groups.
      if (next < tiles) cp_async_wait<1>();
      else cp_async_wait<0>();
      __syncwarp();
      // The second GEMM sums H <= 512 products: |acc| may pass 2^22, so the exact I2F here. Each
      // result replaces its residual in the staging rows, which then go out as 16-byte row stores.
#pragma unroll
      for (int j = 0; j < C / 8; ++j) {
        const int col = j * 8 + 2 * t;
        const float2 al = *reinterpret_cast<const float2*>(s_a2 + col);
        const float2 bi = *reinterpret_cast<const float2*>(s_b2 + col);
#pragma unroll
        for (int m = 0; m < MT; ++m)
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            __half2* at = reinterpret_cast<__half2*>(wy + (m * 16 + g + 8 * h) * LDY + col);
            float z0 = fmaf(al.x, static_cast<float>(y[m][j][2 * h]), bi.x);
            float z1 = fmaf(al.y, static_cast<float>(y[m][j][2 * h + 1]), bi.y);
            if (R) {
              const float2 rv = __half22float2(*at);
              z0 += rv.x;
              z1 += rv.y;
            }
            *at = __floats2half2_rn(z0, z1);
          }
      }
      __syncwarp();
      for (int i = lane; i < wrows * (C / 8); i += 32) {
        const int r = i / (C / 8), c = (i - r * (C / 8)) * 8;
        *reinterpret_cast<uint4*>(Y + (row0 + wrow + r) * C + c) = *reinterpret_cast<const uint4*>(wy + r * LDY + c);
      }
    }
  }
  cp_async_wait<0>();
}

struct FusedArgs {
  const void *x, *w1, *w2;
  const float *alpha1, *bias1, *alpha2, *bias2;
  const __half* r;
  __half* y;
  float inv_h;
  int64_t M, C, H;
  int64_t resident;  // blocks the device holds at once (fused_resident_blocks)
};

template <bool FP8, int C>
void launch_fused(const FusedArgs& a, cudaStream_t s, bool set_up) {
  auto* k = qmlp_fused<FP8, C>;
  constexpr int kRows = Geometry<C>::kRows, kThreads = Geometry<C>::kWarps * 32;
  const size_t smem = smem_bytes(C, a.H, kRows);
  if (set_up) {
    const cudaError_t e = cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (e != cudaSuccess) throw Error(std::string("fused 8-bit MLP set-up: ") + cudaGetErrorString(e));
    return;
  }
  // Persistent: as many blocks as the device holds at once, each walking every grid-th row tile.
  const int64_t tiles = (a.M + kRows - 1) / kRows;
  const unsigned grid = static_cast<unsigned>(std::max<int64_t>(1, std::min(tiles, a.resident)));
  k<<<grid, kThreads, smem, s>>>(static_cast<const uint8_t*>(a.x), static_cast<const uint8_t*>(a.w1), a.alpha1, a.bias1,
                                 static_cast<const uint8_t*>(a.w2), a.alpha2, a.bias2, a.r, a.y, a.inv_h, static_cast<int>(a.M),
                                 static_cast<int>(a.H));
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw Error(std::string("fused 8-bit MLP launch (grid ") + std::to_string(grid) + ", " + std::to_string(smem) +
                " bytes of shared memory): " + cudaGetErrorString(e));
}

template <bool FP8>
void dispatch_fused(const FusedArgs& a, cudaStream_t s, bool set_up) {
  switch (a.C) {
    case 32: launch_fused<FP8, 32>(a, s, set_up); break;
    case 64: launch_fused<FP8, 64>(a, s, set_up); break;
    case 96: launch_fused<FP8, 96>(a, s, set_up); break;
    case 128: launch_fused<FP8, 128>(a, s, set_up); break;
    default: throw Error("the fused 8-bit MLP takes 32, 64, 96 or 128 channels, not " + std::to_string(a.C));
  }
}

void run_fused(bool fp8, const FusedArgs& a, cudaStream_t s, bool set_up = false) {
  if (fp8) dispatch_fused<true>(a, s, set_up);
  else dispatch_fused<false>(a, s, set_up);
}

template <bool FP8, int C>
int64_t resident_blocks(int64_t H) {
  int per_sm = 0;
  cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, qmlp_fused<FP8, C>, Geometry<C>::kWarps * 32, smem_bytes(C, H, kBlockRows));
  return int64_t(std::max(1, per_sm)) * context().props.multiProcessorCount;
}

// Blocks of the fused kernel the device holds at once (after its set-up: the shared-memory limit).
int64_t fused_resident_blocks(bool fp8, int64_t C, int64_t H) {
  switch (C) {
    case 32: return fp8 ? resident_blocks<true, 32>(H) : resident_blocks<false, 32>(H);
    case 64: return fp8 ? resident_blocks<true, 64>(H) : resident_blocks<false, 64>(H);
    case 96: return fp8 ? resident_blocks<true, 96>(H) : resident_blocks<false, 96>(H);
    default: return fp8 ? resident_blocks<true, 128>(H) : resident_blocks<false, 128>(H);
  }
}

// 0.5 / hidden_scale must stay below 2048 so that h = z / (2 hidden_scale) fits float16 for z >= -16.
constexpr float kMinHiddenScale = 0.5f / 2047.f;

// Why the fused kernel cannot run these shapes here (empty when it can).
std::string fused_unsupported(int64_t C, int64_t H, float hidden_scale) {
  if (C != 32 && C != 64 && C != 96 && C != 128) return "the fused kernel takes 32, 64, 96 or 128 channels";
  if (H % kChunk || H <= 0) return "the fused kernel takes a hidden width that is a multiple of 32";
  if (context().props.major * 10 + context().props.minor < 89) return "the fused kernel's float8 mma.sync needs sm_89 or newer";
  if (!(hidden_scale >= kMinHiddenScale)) return "the fused kernel's float16 GELU takes a hidden scale of at least 2.5e-4";
  if (smem_bytes(C, H, kBlockRows) > context().props.sharedMemPerBlockOptin) return "W1 and W2 do not fit in shared memory";
  return "";
}

class QuantizedMlpKernel : public CudaKernel {
 public:
  explicit QuantizedMlpKernel(const KernelCreateArgs& a) : CudaKernel(a), attrs_(QuantizedMlpAttrs::of(a.node)) {}

  size_t prepare(const std::vector<TensorView>& in, const std::vector<TensorView>& out) override {
    const DType t = in[0].dtype;
    if (t != DType::Int8 && t != DType::Float8E4M3FN) fail(std::string("X is ") + dtype_name(t) + ": int8 or float8e4m3fn expected");
    for (size_t i : {size_t(1), size_t(4)})
      if (in[i].dtype != t) fail(std::string(i == 1 ? "W1" : "W2") + " is " + dtype_name(in[i].dtype) + ", X is " + dtype_name(t));
    const auto& xs = in[0].shape;
    if (xs.empty() || in[1].shape.size() != 2 || in[4].shape.size() != 2 || in[1].shape[1] != xs.back() ||
        in[4].shape != std::vector<int64_t>{xs.back(), in[1].shape[0]})
      fail("X, W1 and W2 do not form [..., C] x [H, C] x [C, H]");
    const int64_t C = xs.back(), H = in[1].shape[0], M = C ? in[0].numel() / C : 0;
    for (size_t i : {size_t(2), size_t(3), size_t(5), size_t(6)}) {
      const int64_t n = i < 4 ? H : C;
      if ((i == 2 || i == 5 || has(i)) && (in[i].dtype != DType::Float32 || in[i].numel() != n))
        fail("input " + std::to_string(i) + " (alpha or bias) must be float32 [" + std::to_string(n) + "]");
    }
    if (out[0].dtype != DType::Float16 || out[0].shape != xs) fail(std::string("output must be float16 of X's shape"));
    if (has(7) && (in[7].dtype != DType::Float16 || in[7].shape != xs)) fail("residual must be float16 of X's shape");
    if (M == 0) return 0;
    if (M > INT32_MAX || H > INT32_MAX) fail("more than 2^31 rows");
    const bool fp8 = t == DType::Float8E4M3FN;
    Plan p;
    const std::string fused_why = fused_unsupported(C, H, attrs_.hidden_scale);
    // The plan: the engine's recorded one for this M (no re-timing on load), else timed now.
    long long m = -1;
    char form_text[16] = "";
    int t1 = -1, t2 = -1;
    const bool parsed = std::sscanf(recorded_.c_str(), "M=%lld qmlp %15s", &m, form_text) == 2 && m == M;
    const std::string form = parsed ? form_text : "";
    const bool recorded = form == "fused" || (form == "pair" && std::sscanf(recorded_.c_str(), "M=%*lld qmlp pair tiles %d %d", &t1, &t2) == 2 &&
                                              t1 >= 0 && t1 < kQGemmTiles && t2 >= 0 && t2 < kQGemmTiles);
    const QGemmType qt = fp8 ? QGemmType::Fp8 : QGemmType::Int8;
    QGemmArgs g1 = fc1_args(in, nullptr), g2 = fc2_args(in, out, nullptr);
    g1.M = g2.M = M;
    const std::string pair_why = qgemm_unsupported(g1).empty() ? qgemm_unsupported(g2) : qgemm_unsupported(g1);
    if (recorded && ((form == "fused" && !fused_why.empty()) || (form == "pair" && !pair_why.empty())))
      fail("the engine's recorded plan '" + recorded_ + "' cannot run here");
    if (!fused_why.empty() && !pair_why.empty()) fail(fused_why + "; " + pair_why);
    const char* force = std::getenv("UNIRT_QMLP");  // "fused" or "pair": tests and kernel comparisons
    const std::string forced = force ? force : "";
    if (!forced.empty() && forced != "fused" && forced != "pair") fail("UNIRT_QMLP='" + forced + "': expected fused or pair");
    guarded("fused 8-bit MLP tuning", [&] {
      if (recorded) {
        p.fused = form == "fused";
        p.tile1 = t1, p.tile2 = t2;
        tactic_ = recorded_;
      } else {
        // What UNIRT_QMLP asks for, where that form can run; both forms otherwise, the faster taken.
        bool want_fused = fused_why.empty() && forced != "pair";
        const bool want_pair = pair_why.empty() && (forced != "fused" || !want_fused);
        if (!want_fused && !want_pair) want_fused = true;  // UNIRT_QMLP=pair where only the fused kernel runs
        float fused_us = -1.f, us1 = -1.f, us2 = -1.f;
        std::string r1, r2;
        if (want_fused) fused_us = time_fused(fp8, C, H, M, has(7));
        if (want_pair) {
          p.tile1 = qgemm_autotune(qt, g1, &r1, &us1);
          p.tile2 = qgemm_autotune(qt, g2, &r2, &us2);
        }
        p.fused = want_fused && (!want_pair || fused_us <= us1 + us2);
        char b[96];
        std::string fused_text = fused_why.empty() ? (forced == "pair" ? "UNIRT_QMLP=pair" : "") : fused_why;
        if (want_fused) {
          std::snprintf(b, sizeof b, "fused %.1f us", fused_us);
          fused_text = b;
        }
        std::string pair_text = pair_why.empty() ? (forced == "fused" ? "UNIRT_QMLP=fused" : "") : pair_why;
        if (want_pair) {
          std::snprintf(b, sizeof b, "two GEMMs %.1f + %.1f us: ", us1, us2);
          pair_text = b + r1 + "; " + r2;
        }
        std::snprintf(b, sizeof b, "M=%lld qmlp ", static_cast<long long>(M));
        tactic_ = b;
        tactic_ += p.fused ? "fused (" : "pair tiles " + std::to_string(p.tile1) + " " + std::to_string(p.tile2) + " (";
        tactic_ += fused_text + "; " + pair_text + ")";
      }
      if (p.fused) {
        run_fused(fp8, FusedArgs{nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 1.f, M, C, H, 0}, nullptr, true);
        p.resident = fused_resident_blocks(fp8, C, H);
      } else {
        qgemm_prepare(qt, g1, p.tile1);
        qgemm_prepare(qt, g2, p.tile2);
      }
    });
    p.hidden_bytes = p.fused ? 0 : static_cast<size_t>((M * H + 255) / 256 * 256);
    plans_[M] = p;
    return p.hidden_bytes;
  }

  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const int64_t C = in[0].shape.back(), H = in[1].shape[0], M = C ? in[0].numel() / C : 0;
    if (M == 0) return;
    for (size_t i = 0; i < in.size(); ++i)
      if (has(i) && !aligned16(in[i].data)) fail("input " + std::to_string(i) + " is not 16-byte aligned");
    if (!aligned16(out[0].data)) fail("the output is not 16-byte aligned");
    auto it = plans_.find(M);
    if (it == plans_.end()) fail("run() for an input shape prepare() never saw");
    const Plan& p = it->second;
    const bool fp8 = in[0].dtype == DType::Float8E4M3FN;
    cudaStream_t s = stream_of(ctx);
    if (p.fused) {
      guarded("fused 8-bit MLP", [&] {
        run_fused(fp8, FusedArgs{in[0].data, in[1].data, in[4].data, in[2].as<float>(), has(3) ? in[3].as<float>() : nullptr, in[5].as<float>(),
                                 has(6) ? in[6].as<float>() : nullptr, has(7) ? in[7].as<__half>() : nullptr, out[0].as<__half>(),
                                 1.f / attrs_.hidden_scale, M, C, H, p.resident},
                  s);
      });
    } else {
      if (ctx.workspace_bytes < p.hidden_bytes) fail("workspace smaller than prepare() asked for");
      QGemmArgs g1 = fc1_args(in, ctx.workspace), g2 = fc2_args(in, out, ctx.workspace);
      const QGemmType qt = fp8 ? QGemmType::Fp8 : QGemmType::Int8;
      guarded("8-bit MLP as two GEMMs", [&] {
        qgemm_run(qt, g1, p.tile1, s);
        qgemm_run(qt, g2, p.tile2, s);
      });
    }
    check_launch(node_);
  }
  std::string tactic() const override { return tactic_; }
  void use_tactic(const std::string& t) override { recorded_ = t; }

 private:
  struct Plan {
    bool fused = true;
    int tile1 = -1, tile2 = -1;
    size_t hidden_bytes = 0;
    int64_t resident = 0;  // the fused kernel's persistent grid limit
  };
  // fc1: X [M, C] x W1 [H, C] -> GELU codes [M, H] in `hidden`; fc2: codes x W2 [C, H] + residual.
  QGemmArgs fc1_args(const std::vector<TensorView>& in, void* hidden) const {
    QGemmArgs q;
    q.K = in[0].shape.back();
    q.N = in[1].shape[0];
    q.M = q.K ? in[0].numel() / q.K : 0;
    q.a = in[0].data;
    q.b = in[1].data;
    q.alpha = in[2].as<float>();
    q.bias = has(3) ? in[3].as<float>() : nullptr;
    q.d = hidden;
    q.out8 = true;
    q.gelu = true;
    q.inv_out_scale = 1.f / attrs_.hidden_scale;
    return q;
  }
  QGemmArgs fc2_args(const std::vector<TensorView>& in, const std::vector<TensorView>& out, void* hidden) const {
    QGemmArgs q;
    q.K = in[1].shape[0];
    q.N = in[0].shape.back();
    q.M = q.N ? in[0].numel() / q.N : 0;
    q.a = hidden;
    q.b = in[4].data;
    q.alpha = in[5].as<float>();
    q.bias = has(6) ? in[6].as<float>() : nullptr;
    q.residual = has(7) ? in[7].as<__half>() : nullptr;
    q.has_residual = has(7);
    q.d = out[0].data;
    return q;
  }
  // The fused kernel on scratch operands of this shape (zeros: no NaN path is timed), microseconds.
  static float time_fused(bool fp8, int64_t C, int64_t H, int64_t M, bool residual) {
    const size_t xb = static_cast<size_t>(M * C), wb = static_cast<size_t>(H * C), vb = static_cast<size_t>(2 * (H + C)) * sizeof(float);
    void *X = nullptr, *W = nullptr, *V = nullptr, *R = nullptr, *Y = nullptr;
    auto release = [&] {
      for (void* p : {X, W, V, R, Y})
        if (p) cudaFree(p);
    };
    auto check = [](cudaError_t e, const char* what) {
      if (e != cudaSuccess) throw Error(std::string(what) + ": " + cudaGetErrorString(e));
    };
    float us = 0.f;
    try {
      check(cudaMalloc(&X, xb), "cudaMalloc");
      check(cudaMalloc(&W, 2 * wb), "cudaMalloc");
      check(cudaMalloc(&V, vb), "cudaMalloc");
      check(cudaMalloc(&Y, 2 * xb), "cudaMalloc");
      if (residual) check(cudaMalloc(&R, 2 * xb), "cudaMalloc");
      check(cudaMemset(X, 0, xb), "cudaMemset");
      check(cudaMemset(W, 0, 2 * wb), "cudaMemset");
      check(cudaMemset(V, 0, vb), "cudaMemset");
      if (R) check(cudaMemset(R, 0, 2 * xb), "cudaMemset");
      const float* v = static_cast<const float*>(V);
      FusedArgs a{X, W, static_cast<uint8_t*>(W) + wb, v, v + H, v + 2 * H, v + 2 * H + C, static_cast<const __half*>(R),
                  static_cast<__half*>(Y), 1.f, M, C, H, 0};
      run_fused(fp8, a, nullptr, true);
      a.resident = fused_resident_blocks(fp8, C, H);
      run_fused(fp8, a, nullptr);
      us = time_launches_us([&](cudaStream_t st) { run_fused(fp8, a, st); }, 10);
    } catch (...) {
      release();
      throw;
    }
    release();
    return us;
  }
  QuantizedMlpAttrs attrs_;
  std::string tactic_, recorded_;
  std::map<int64_t, Plan> plans_;  // M -> how it runs
};
UNIRT_REGISTER_KERNEL(cuda, unirt.QuantizedMlp, QuantizedMlpKernel, "int8 float8e4m3fn float16",
                      "X [..., C], W1 [H, C], W2 [C, H]; C 32-128, H a multiple of 32 (fused), else K, N multiples of 16 (two GEMMs)");

}  // namespace
}  // namespace cuda
}  // namespace unirt
