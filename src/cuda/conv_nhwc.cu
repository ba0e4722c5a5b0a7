// unirt.ConvNHWC (passes/nhwc_wrap_convs.cpp): channels-last convolution, X [N, H, W, C], weights
// [kh, kw, C/group, Cout], optional bias [Cout] and residual R [N, OH, OW, Cout].
//  - depthwise (group == C): one thread per output pixel and 16-byte channel vector; the k x k
//    taps of neighbouring threads overlap, so the input is read from L1/L2, and bias and the
//    residual (UniFormer's x + pos_embed(x)) are applied before the single store.
//  - one group (patch embeddings, any k/stride/pad): im2col rows of kh*kw*C contiguous channels
//    into the workspace, then one cuBLASLt GEMM against the [kh*kw*C, Cout] weights with bias and
//    residual in its epilogue;
//  - one group with overlapping windows (the detector's 3x3 FPN, RPN and mask-head convs) in FP16
//    engines (UNIRT_CONV_NHWC=cudnn|gemm chooses): cuDNN's channels-last implicit GEMM (algorithm
//    measured per shape), the weights reordered to [Cout, kh, kw, C] in the workspace, residual as
//    beta, then the bias.
#include <cstdlib>
#include <map>
#include <memory>
#include <type_traits>

#include "backend/quantize_rule.h"
#include "cuda/gemm.h"
#include "cuda/half_io.cuh"
#include "cuda/mma.cuh"
#include "ir/fused_attrs.h"

namespace unirt {
namespace cuda {
namespace {

struct ConvGeom {
  int N, H, W, C, OH, OW, KH, KW, SH, SW, PT, PL;
  // Depthwise with q_scale: the 8-bit codes of Y (q_kind 1 int8, 2 float8 E4M3FN) into q; y may
  // then be null (codes only).
  uint8_t* q = nullptr;
  float q_inv = 1.f;  // 1 / q_scale
  int q_kind = 0;
};

template <typename T, int V>
struct Vec;
template <>
struct Vec<__half, 8> {
  using type = uint4;
};
template <>
struct Vec<float, 4> {
  using type = float4;
};

template <typename T, int V>
__device__ __forceinline__ void load_vec(const T* p, float (&f)[V]) {
  if constexpr (V == 1) {
    f[0] = ld(p, 0);
  } else {
    typename Vec<T, V>::type raw = *reinterpret_cast<const typename Vec<T, V>::type*>(p);
    if constexpr (std::is_same<T, __half>::value) {
      const __half2* h = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
      for (int i = 0; i < V / 2; ++i) {
        const float2 v = __half22float2(h[i]);
        f[2 * i] = v.x;
        f[2 * i + 1] = v.y;
      }
    } else {
      f[0] = raw.x, f[1] = raw.y, f[2] = raw.z, f[3] = raw.w;
    }
  }
}

template <typename T, int V>
__device__ __forceinline__ void store_vec(T* p, const float (&f)[V]) {
  if constexpr (V == 1) {
    st(p, 0, f[0]);
  } else {
    typename Vec<T, V>::type raw;
    if constexpr (std::is_same<T, __half>::value) {
      __half2* h = reinterpret_cast<__half2*>(&raw);
#pragma unroll
      for (int i = 0; i < V / 2; ++i) h[i] = __floats2half2_rn(f[2 * i], f[2 * i + 1]);
    } else {
      raw = make_float4(f[0], f[1], f[2], f[3]);
    }
    *reinterpret_cast<typename Vec<T, V>::type*>(p) = raw;
  }
}

// y[o] = acc (+ res[o]): the residual (UniFormer's x + pos_embed(x)) joins before the one store.
// With QK (= g.q_kind; a template parameter, so the float kernels stay as they were) the codes of
// y as stored (rounded to T first; the fused producers' rule of backend/quantize_rule.h) go to g.q
// as well, or instead when y is null.
template <typename T, int V, int QK>
__device__ __forceinline__ void store_with_residual(T* y, const T* res, int64_t o, float (&acc)[V], const ConvGeom& g) {
  if (res) {
    float rv[V];
    load_vec<T, V>(res + o, rv);
#pragma unroll
    for (int v = 0; v < V; ++v) acc[v] += rv[v];
  }
  if constexpr (QK != 0) {
    uint8_t c[V];
#pragma unroll
    for (int v = 0; v < V; ++v) {
      const float t = std::is_same<T, __half>::value ? __half2float(__float2half_rn(acc[v])) : acc[v];
      c[v] = fused_code(QK == 2, t, g.q_inv);
    }
    if constexpr (V == 8) *reinterpret_cast<uint2*>(g.q + o) = *reinterpret_cast<const uint2*>(c);
    else if constexpr (V == 4) *reinterpret_cast<uint32_t*>(g.q + o) = *reinterpret_cast<const uint32_t*>(c);
    else
#pragma unroll
      for (int v = 0; v < V; ++v) g.q[o + v] = c[v];
  }
  if (QK == 0 || y) store_vec<T, V>(y + o, acc);
}

// Every one of TW accumulator vectors starts at the bias (or zero).
template <typename T, int V, int TW>
__device__ __forceinline__ void init_from_bias(float (&acc)[TW][V], const T* bias) {
  float b[V];
  if (bias) load_vec<T, V>(bias, b);
  else
#pragma unroll
    for (int v = 0; v < V; ++v) b[v] = 0.f;
#pragma unroll
  for (int j = 0; j < TW; ++j)
#pragma unroll
    for (int v = 0; v < V; ++v) acc[j][v] = b[v];
}

template <typename T, int V, int QK = 0>
__global__ void depthwise_nhwc(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                               const T* __restrict__ res, T* __restrict__ y, ConvGeom g) {
  const int cv = g.C / V;
  const int64_t total = int64_t(g.N) * g.OH * g.OW * cv;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int c = static_cast<int>(i % cv) * V;
    int64_t r = i / cv;
    const int ow = static_cast<int>(r % g.OW);
    r /= g.OW;
    const int oh = static_cast<int>(r % g.OH);
    const int n = static_cast<int>(r / g.OH);
    float acc[V];
    if (bias) load_vec<T, V>(bias + c, acc);
    else
#pragma unroll
      for (int v = 0; v < V; ++v) acc[v] = 0.f;
    for (int kh = 0; kh < g.KH; ++kh) {
      const int ih = oh * g.SH - g.PT + kh;
      if (ih < 0 || ih >= g.H) continue;
      const T* xrow = x + (int64_t(n) * g.H + ih) * g.W * g.C + c;
      const T* wrow = w + kh * g.KW * g.C + c;
      for (int kw = 0; kw < g.KW; ++kw) {
        const int iw = ow * g.SW - g.PL + kw;
        if (iw < 0 || iw >= g.W) continue;
        float xv[V], wv[V];
        load_vec<T, V>(xrow + int64_t(iw) * g.C, xv);
        load_vec<T, V>(wrow + kw * g.C, wv);
#pragma unroll
        for (int v = 0; v < V; ++v) acc[v] = fmaf(xv[v], wv[v], acc[v]);
      }
    }
    store_with_residual<T, V, QK>(y, res, i * V, acc, g);  // output [N, OH, OW, C]: flat index times the vector width
  }
}

// Stride 1, k x k (3, 5, 7): each thread computes TW neighbouring outputs along W for one channel
// vector, so a row of TW + k - 1 input vectors serves TW * k taps (the 5x5 reads 8 vectors per row
// instead of 20) and the row's k weight vectors are loaded once.
template <typename T, int V, int K, int TW, int QK = 0>
__global__ void depthwise_nhwc_s1(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                                  const T* __restrict__ res, T* __restrict__ y, ConvGeom g) {
  const int cv = g.C / V, owb = (g.OW + TW - 1) / TW;
  const int64_t total = int64_t(g.N) * g.OH * owb * cv;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int c = static_cast<int>(i % cv) * V;
    int64_t r = i / cv;
    const int ow0 = static_cast<int>(r % owb) * TW;
    r /= owb;
    const int oh = static_cast<int>(r % g.OH);
    const int n = static_cast<int>(r / g.OH);
    float acc[TW][V];
    init_from_bias<T, V, TW>(acc, bias ? bias + c : nullptr);
    for (int kh = 0; kh < K; ++kh) {
      const int ih = oh - g.PT + kh;
      if (ih < 0 || ih >= g.H) continue;
      const T* xrow = x + (int64_t(n) * g.H + ih) * g.W * g.C + c;
      float wv[K][V];
#pragma unroll
      for (int kw = 0; kw < K; ++kw) load_vec<T, V>(w + (kh * K + kw) * g.C + c, wv[kw]);
#pragma unroll
      for (int col = 0; col < TW + K - 1; ++col) {
        const int iw = ow0 - g.PL + col;
        if (iw < 0 || iw >= g.W) continue;
        float xv[V];
        load_vec<T, V>(xrow + int64_t(iw) * g.C, xv);
#pragma unroll
        for (int j = 0; j < TW; ++j) {
          const int kw = col - j;
          if (kw < 0 || kw >= K) continue;
#pragma unroll
          for (int v = 0; v < V; ++v) acc[j][v] = fmaf(xv[v], wv[kw][v], acc[j][v]);
        }
      }
    }
#pragma unroll
    for (int j = 0; j < TW; ++j) {
      if (ow0 + j >= g.OW) break;
      store_with_residual<T, V, QK>(y, res, ((int64_t(n) * g.OH + oh) * g.OW + ow0 + j) * g.C + c, acc[j], g);
    }
  }
}

// Stride-1 depthwise on large maps (stages 1-2 at batch 8+): a block computes a kTileH x kTileW
// output tile for kSlab channel vectors (64 float16 / 32 float32 channels). The input tile with its
// halo and the K x K weights are staged once in shared memory as float32, so each input element
// is read from global memory ~1.5 times and converted once. The per-thread kernel above reloads
// every element through L1 for each thread whose window covers it; Nsight Compute showed it
// latency-bound on those loads (25% occupancy, 45% SM and 18% memory throughput) at batch 128.
constexpr int kTileH = 8, kTileW = 16, kSlab = 8;

template <int K, int V>
constexpr size_t tiled_smem_bytes() {
  return sizeof(float) * size_t(kSlab * V) * ((kTileH + K - 1) * (kTileW + K - 1) + K * K);
}

template <typename T, int V, int K, int QK = 0>
__global__ void __launch_bounds__(256) depthwise_nhwc_tiled(const T* __restrict__ x, const T* __restrict__ w,
                                                            const T* __restrict__ bias, const T* __restrict__ res,
                                                            T* __restrict__ y, ConvGeom g) {
  constexpr int IH = kTileH + K - 1, IW = kTileW + K - 1, CB = kSlab * V, TW = 4;
  extern __shared__ float4 smem4[];
  // Channels are stored as [V / 4][kSlab][4] per pixel: the 8 threads that share a pixel read one
  // contiguous 128-byte row per float4 (no bank conflicts), and a warp's 4 pixels take 4 wavefronts.
  float* sx = reinterpret_cast<float*>(smem4);  // [IH][IW][V / 4][kSlab][4]
  float* sw = sx + IH * IW * CB;                // [K * K][V / 4][kSlab][4]
  const int tiles_w = (g.OW + kTileW - 1) / kTileW;
  const int ow_t = (blockIdx.x % tiles_w) * kTileW, oh_t = (blockIdx.x / tiles_w) * kTileH;
  const int c0 = blockIdx.y * CB, n = blockIdx.z;
  for (int i = threadIdx.x; i < IH * IW * kSlab; i += 256) {
    const int cv = i % kSlab, p = i / kSlab, col = p % IW, row = p / IW;
    const int ih = oh_t - g.PT + row, iw = ow_t - g.PL + col;
    float v[V];
    if (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W) load_vec<T, V>(x + ((int64_t(n) * g.H + ih) * g.W + iw) * g.C + c0 + cv * V, v);
    else
#pragma unroll
      for (int j = 0; j < V; ++j) v[j] = 0.f;
    float4* d = reinterpret_cast<float4*>(sx + p * CB) + cv;
#pragma unroll
    for (int j = 0; j < V / 4; ++j) d[j * kSlab] = make_float4(v[4 * j], v[4 * j + 1], v[4 * j + 2], v[4 * j + 3]);
  }
  for (int i = threadIdx.x; i < K * K * kSlab; i += 256) {
    const int cv = i % kSlab, tap = i / kSlab;
    float v[V];
    load_vec<T, V>(w + int64_t(tap) * g.C + c0 + cv * V, v);
    float4* d = reinterpret_cast<float4*>(sw + tap * CB) + cv;
#pragma unroll
    for (int j = 0; j < V / 4; ++j) d[j * kSlab] = make_float4(v[4 * j], v[4 * j + 1], v[4 * j + 2], v[4 * j + 3]);
  }
  __syncthreads();
  // 256 threads = kSlab channel vectors x 32 positions (8 rows x 4 groups of TW columns).
  const int cv = threadIdx.x % kSlab, pos = threadIdx.x / kSlab, r = pos / 4, cg = (pos % 4) * TW;
  float acc[TW][V];
  init_from_bias<T, V, TW>(acc, bias ? bias + c0 + cv * V : nullptr);
#pragma unroll
  for (int kh = 0; kh < K; ++kh) {
    float wv[K][V];
#pragma unroll
    for (int kw = 0; kw < K; ++kw)
#pragma unroll
      for (int j = 0; j < V / 4; ++j) {
        const float4 f = reinterpret_cast<const float4*>(sw + (kh * K + kw) * CB)[j * kSlab + cv];
        wv[kw][4 * j] = f.x, wv[kw][4 * j + 1] = f.y, wv[kw][4 * j + 2] = f.z, wv[kw][4 * j + 3] = f.w;
      }
    const float* xrow = sx + ((r + kh) * IW + cg) * CB;
#pragma unroll
    for (int col = 0; col < TW + K - 1; ++col) {
      float xv[V];
#pragma unroll
      for (int j = 0; j < V / 4; ++j) {
        const float4 f = reinterpret_cast<const float4*>(xrow + col * CB)[j * kSlab + cv];
        xv[4 * j] = f.x, xv[4 * j + 1] = f.y, xv[4 * j + 2] = f.z, xv[4 * j + 3] = f.w;
      }
#pragma unroll
      for (int t = 0; t < TW; ++t) {
        const int kw = col - t;
        if (kw < 0 || kw >= K) continue;
#pragma unroll
        for (int j = 0; j < V; ++j) acc[t][j] = fmaf(xv[j], wv[kw][j], acc[t][j]);
      }
    }
  }
  const int oh = oh_t + r;
  if (oh >= g.OH) return;
#pragma unroll
  for (int t = 0; t < TW; ++t) {
    const int ow = ow_t + cg + t;
    if (ow >= g.OW) break;
    store_with_residual<T, V, QK>(y, res, ((int64_t(n) * g.OH + oh) * g.OW + ow) * g.C + c0 + cv * V, acc[t], g);
  }
}

// col[m, (kh*KW + kw)*C + c] for output pixel m, zero outside the padded input. NCHW: the input
// is still in the graph's layout (the first patch embedding reads the image without a reformat).
// I is the index type: 32-bit when the column buffer's element count allows, since this kernel is
// bound by its index arithmetic (five divisions per element; 64-bit ones cost several times more).
template <typename T, int V, bool NCHW, typename I>
__global__ void im2col_nhwc(const T* __restrict__ x, T* __restrict__ col, ConvGeom g) {
  const I cv = g.C / V, taps = g.KH * g.KW, OW = g.OW, OH = g.OH;
  const I total = I(g.N) * OH * OW * taps * cv;
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < total; i += I(gridDim.x) * blockDim.x) {
    const int c = static_cast<int>(i % cv) * V;
    const I r = i / cv;
    const int tap = static_cast<int>(r % taps);
    const I m = r / taps;
    const int ow = static_cast<int>(m % OW);
    const I q = m / OW;
    const int oh = static_cast<int>(q % OH);
    const int n = static_cast<int>(q / OH);
    const int ih = oh * g.SH - g.PT + tap / g.KW, iw = ow * g.SW - g.PL + tap % g.KW;
    float v[V];
    if (NCHW) {
      v[0] = (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W) ? ld(x, ((int64_t(n) * g.C + c) * g.H + ih) * g.W + iw) : 0.f;
    } else if (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W) load_vec<T, V>(x + ((int64_t(n) * g.H + ih) * g.W + iw) * g.C + c, v);
    else
#pragma unroll
      for (int k = 0; k < V; ++k) v[k] = 0.f;
    store_vec<T, V>(col + int64_t(i) * V, v);
  }
}

// The first patch embedding (UniFormer's 4x4 / stride-4 stem, 3 -> 64 channels) straight from the
// NCHW image, float16, on tensor cores: one block per output row segment of 64 pixels loads the k
// image rows of every channel it covers (16-byte coalesced loads), lays the 64 patches out as a
// [64][K] tile in shared memory, multiplies it by the [K][N] weights (mma.sync m16n8k16, one m16
// tile a warp) and stores the row segment, which is contiguous in NHWC, with 16-byte stores. C and
// k are template parameters: with runtime ones the index divisions dominated (0.235 ms at batch
// 128 on the H200, against 0.196 ms for the im2col + cuBLASLt form, which writes and re-reads a
// [pixels, K] column buffer with one thread and five divisions per element).
constexpr int kPatchPixels = 64;
template <int C, int KS, int N>
struct PatchStem {
  static constexpr int K = C * KS * KS, LDA = K + 8, LDW = N + 8, kCols = kPatchPixels * KS;
  static constexpr size_t kSmem = sizeof(__half) * (size_t(C) * KS * kCols + size_t(kPatchPixels) * LDA + size_t(K) * LDW + size_t(kPatchPixels) * LDW);
  static_assert(K % 16 == 0 && kSmem <= 48 * 1024, "a stem the kernel does not take");
};

template <int C, int KS, int N>
__global__ void __launch_bounds__(128) patch_embed_nchw(const __half* __restrict__ x, const __half* __restrict__ w,
                                                        const __half* __restrict__ bias, __half* __restrict__ y, ConvGeom g) {
  using P = PatchStem<C, KS, N>;
  constexpr int K = P::K, LDA = P::LDA, LDW = P::LDW, kCols = P::kCols;
  extern __shared__ float4 smem_raw[];
  __half* sx = reinterpret_cast<__half*>(smem_raw);  // [C][KS][kCols]: the image rows of this segment
  __half* sa = sx + C * KS * kCols;                   // [64][LDA]: the patches, k index (kh KS + kw) C + c
  __half* sw = sa + kPatchPixels * LDA;               // [K][LDW]
  __half* sy = sw + K * LDW;                          // [64][LDW]
  const int segs = (g.OW + kPatchPixels - 1) / kPatchPixels;
  const int seg = blockIdx.x % segs, oh = (blockIdx.x / segs) % g.OH, n = blockIdx.x / (segs * g.OH);
  const int ow0 = seg * kPatchPixels, pixels = min(kPatchPixels, g.OW - ow0), valid = pixels * KS;
  for (int i = threadIdx.x; i < K * (N / 8); i += blockDim.x) {
    const int r = i / (N / 8), c = (i % (N / 8)) * 8;
    *reinterpret_cast<uint4*>(sw + r * LDW + c) = *reinterpret_cast<const uint4*>(w + r * N + c);
  }
  const __half* img = x + (int64_t(n) * C * g.H + int64_t(oh) * KS) * g.W + int64_t(ow0) * KS;
  if (g.W % 8 == 0 && (reinterpret_cast<uintptr_t>(x) & 15) == 0) {
    // Row segments start at a multiple of 8 halves (ow0 KS = 256 seg): whole 16-byte vectors.
    for (int i = threadIdx.x; i < C * KS * (kCols / 8); i += blockDim.x) {
      const int col = (i % (kCols / 8)) * 8, row = i / (kCols / 8), c = row / KS, kh = row % KS;
      uint4 v = make_uint4(0, 0, 0, 0);
      if (col < valid) v = *reinterpret_cast<const uint4*>(img + (int64_t(c) * g.H + kh) * g.W + col);  // valid is a multiple of KS, not of 8:
      *reinterpret_cast<uint4*>(sx + row * kCols + col) = v;  // lanes past it read pixels no patch uses, inside the row
    }
  } else {
    for (int i = threadIdx.x; i < C * KS * kCols; i += blockDim.x) {
      const int col = i % kCols, row = i / kCols, c = row / KS, kh = row % KS;
      sx[i] = col < valid ? img[(int64_t(c) * g.H + kh) * g.W + col] : __float2half(0.f);
    }
  }
  __syncthreads();
  for (int i = threadIdx.x; i < kPatchPixels * KS * KS; i += blockDim.x) {
    const int p = i / (KS * KS), tap = i % (KS * KS), kh = tap / KS, kw = tap % KS;
#pragma unroll
    for (int c = 0; c < C; ++c) sa[p * LDA + tap * C + c] = sx[(c * KS + kh) * kCols + p * KS + kw];
  }
  __syncthreads();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gq = lane >> 2, t = lane & 3;
  float acc[1][N / 8][4];
#pragma unroll
  for (int j = 0; j < N / 8; ++j) acc[0][j][0] = acc[0][j][1] = acc[0][j][2] = acc[0][j][3] = 0.f;
#pragma unroll
  for (int k0 = 0; k0 < K; k0 += 16) {
    uint32_t a[1][4];
    ldmatrix_x4(a[0], sa + (warp * 16 + (lane & 15)) * LDA + k0 + (lane >> 4) * 8);
    mma_b_rowmajor<1, N / 8>(acc, a, sw + k0 * LDW, LDW, lane);
  }
#pragma unroll
  for (int j = 0; j < N / 8; ++j) {
    const int c = j * 8 + 2 * t;
    const float2 b = bias ? __half22float2(*reinterpret_cast<const __half2*>(bias + c)) : make_float2(0.f, 0.f);
#pragma unroll
    for (int h = 0; h < 2; ++h)
      *reinterpret_cast<__half2*>(sy + (warp * 16 + gq + 8 * h) * LDW + c) = __floats2half2_rn(acc[0][j][2 * h] + b.x, acc[0][j][2 * h + 1] + b.y);
  }
  __syncthreads();
  __half* out = y + ((int64_t(n) * g.OH + oh) * g.OW + ow0) * N;
  for (int i = threadIdx.x; i < pixels * (N / 8); i += blockDim.x) {
    const int p = i / (N / 8), c = (i % (N / 8)) * 8;
    *reinterpret_cast<uint4*>(out + p * N + c) = *reinterpret_cast<const uint4*>(sy + p * LDW + c);
  }
}

template <typename T, int V, bool NCHW>
void launch_im2col(const T* x, T* col, const ConvGeom& g, int64_t work, unsigned grid, cudaStream_t s) {
  if (work < INT32_MAX) im2col_nhwc<T, V, NCHW, int32_t><<<grid, 256, 0, s>>>(x, col, g);
  else im2col_nhwc<T, V, NCHW, int64_t><<<grid, 256, 0, s>>>(x, col, g);
}

// [kh, kw, C, Cout] -> [Cout, kh, kw, C] (cuDNN's channels-last filter layout).
template <typename T>
__global__ void weights_rsck_to_krsc(const T* w, T* o, int64_t rsc, int64_t cout) {
  const int64_t n = rsc * cout;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t k = i / rsc, r = i % rsc;
    o[i] = w[r * cout + k];
  }
}

template <typename T>
__global__ void add_channel_bias_nhwc(T* y, const T* b, int64_t n, int64_t c) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    st(y, i, ld(y, i) + ld(b, i % c));
}

struct CudnnNhwc {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnConvolutionFwdAlgo_t algo{};
  size_t workspace = 0, weight_bytes = 0;
  ~CudnnNhwc() {
    if (x) cudnnDestroyTensorDescriptor(x);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
  }
};

// Measured on the detector's 3x3 convs (H200, 800x1344, docs/results/bench_detector_h200.md):
// cuDNN's implicit GEMM beats im2col + cuBLASLt in float16 (8.8 vs 9.3 ms for the whole detector)
// and loses in float32 (35.6 vs 32.6 ms). UNIRT_CONV_NHWC=cudnn|gemm overrides.
bool conv_nhwc_forced_gemm() {
  const char* e = std::getenv("UNIRT_CONV_NHWC");
  return e && std::string(e) == "gemm";
}
bool conv_nhwc_via_cudnn(Precision p) {
  const char* e = std::getenv("UNIRT_CONV_NHWC");
  if (e && std::string(e) == "cudnn") return true;
  if (conv_nhwc_forced_gemm()) return false;
  return p == Precision::FP16;
}

unsigned blocks_for(int64_t n) { return static_cast<unsigned>(std::min<int64_t>((n + 255) / 256, int64_t{1} << 20)); }

class ConvNhwcKernel : public CudaKernel {
 public:
  // The tiled depthwise kernels need more than the default 48 KiB of dynamic shared memory.
  template <typename T, int V, int QK>
  static void allow_tiled_smem_for() {
    UNIRT_CUDA(cudaFuncSetAttribute(depthwise_nhwc_tiled<T, V, 3, QK>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(tiled_smem_bytes<3, V>())));
    UNIRT_CUDA(cudaFuncSetAttribute(depthwise_nhwc_tiled<T, V, 5, QK>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(tiled_smem_bytes<5, V>())));
    UNIRT_CUDA(cudaFuncSetAttribute(depthwise_nhwc_tiled<T, V, 7, QK>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(tiled_smem_bytes<7, V>())));
  }
  static void allow_tiled_smem() {
    static const bool done = [] {
      allow_tiled_smem_for<__half, 8, 0>();
      allow_tiled_smem_for<__half, 8, 1>();
      allow_tiled_smem_for<__half, 8, 2>();
      allow_tiled_smem_for<float, 4, 0>();
      allow_tiled_smem_for<float, 4, 1>();
      allow_tiled_smem_for<float, 4, 2>();
      return true;
    }();
    (void)done;
  }
  explicit ConvNhwcKernel(const KernelCreateArgs& a)
      : CudaKernel(a),
        attrs_(ConvNhwcAttrs::of(a.node)),
        k_(attrs_.kernel),
        s_(attrs_.strides),
        p_(attrs_.pads),
        group_(attrs_.group),
        nchw_(attrs_.nchw_input),
        cudnn_(conv_nhwc_via_cudnn(a.precision)),
        patch_kernel_(!conv_nhwc_forced_gemm()) {}

  size_t prepare(const std::vector<TensorView>& in, const std::vector<TensorView>& out) override {
    expect_floatish(in[0], "X");
    const auto xs = nhwc_shape(in[0].shape);
    const auto& ws = in[1].shape;
    if (xs.size() != 4 || ws.size() != 4 || ws[0] != k_[0] || ws[1] != k_[1]) fail("expects X [N, H, W, C] and W [kh, kw, C/group, Cout]");
    const TensorView& y = attrs_.codes_only ? in[0] : out[0];  // the float output, when there is one
    if (in[1].dtype != in[0].dtype || y.dtype != in[0].dtype) fail("X, W and the output must share one float type");
    if (attrs_.q_scale > 0.f) {
      const TensorView& q = out[attrs_.codes_only ? 0 : 1];
      if (q.dtype != attrs_.q_dtype)
        fail(std::string("quantized output is ") + dtype_name(q.dtype) + ", " + dtype_name(attrs_.q_dtype) + " expected");
      if (!attrs_.codes_only && q.shape != out[0].shape) fail("quantized output shape differs from the output");
    }
    const bool dw = group_ == xs[3] && ws[2] == 1 && ws[3] == xs[3];
    if (group_ != 1 && !dw) fail("only one group or depthwise (group == channels) are supported");
    if (attrs_.q_scale > 0.f && (!dw || group_ == 1)) fail("a quantized output (q_scale) needs a depthwise convolution");
    if (group_ == 1 && ws[2] != xs[3]) fail("W expects " + std::to_string(ws[2]) + " input channels, X has " + std::to_string(xs[3]));
    const int64_t oh = (xs[1] + p_[0] + p_[2] - k_[0]) / s_[0] + 1, ow = (xs[2] + p_[1] + p_[3] - k_[1]) / s_[1] + 1;
    if (out[0].shape != std::vector<int64_t>{xs[0], oh, ow, ws[3]}) fail("output shape does not follow from X and W");
    if (has(2) && in[2].numel() != ws[3]) fail("bias must hold one value per output channel");
    if (has(3) && in[3].shape != out[0].shape) fail("residual shape differs from the output");
    if (dw) allow_tiled_smem();
    if (dw || out[0].numel() == 0) return 0;
    if (use_cudnn()) return prepare_cudnn(in[0].dtype, xs, out[0].shape, ws[3]);
    if (patch_path(in[0].dtype, xs[3], ws[3])) return 0;
    const int64_t M = xs[0] * oh * ow, K = k_[0] * k_[1] * xs[3], N = ws[3];
    const int64_t es = static_cast<int64_t>(dtype_size(in[0].dtype));
    const size_t col = static_cast<size_t>((M * K * es + 255) / 256 * 256);
    size_t gemm_ws = 0;
    guarded("cuBLASLt plan", [&] { gemm_ws = plans_.prepare(dense_gemm(in[0].dtype, M, N, K, has(2)), has(3)); });
    return col + gemm_ws;
  }

  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    if (out[0].numel() == 0) return;
    const auto xs = nhwc_shape(in[0].shape);
    ConvGeom g{static_cast<int>(xs[0]), static_cast<int>(xs[1]), static_cast<int>(xs[2]), static_cast<int>(xs[3]),
               static_cast<int>(out[0].shape[1]), static_cast<int>(out[0].shape[2]), static_cast<int>(k_[0]), static_cast<int>(k_[1]),
               static_cast<int>(s_[0]), static_cast<int>(s_[1]), static_cast<int>(p_[0]), static_cast<int>(p_[1])};
    cudaStream_t s = stream_of(ctx);
    const bool f16 = in[0].dtype == DType::Float16;
    const void* bias = has(2) ? in[2].data : nullptr;
    const void* res = has(3) ? in[3].data : nullptr;
    void* yp = attrs_.codes_only ? nullptr : out[0].data;
    if (attrs_.q_scale > 0.f) {
      g.q = out[attrs_.codes_only ? 0 : 1].as<uint8_t>();
      g.q_inv = 1.f / attrs_.q_scale;
      g.q_kind = attrs_.q_dtype == DType::Int8 ? 1 : 2;
    }
    if (group_ != 1) {
      const uintptr_t qa = reinterpret_cast<uintptr_t>(g.q);
      bool vec = g.C % (f16 ? 8 : 4) == 0 && aligned16(in[0].data) && aligned16(in[1].data) && (!yp || aligned16(yp)) &&
                 (!bias || aligned16(bias)) && (!res || aligned16(res)) && qa % (f16 ? 8 : 4) == 0;
      const int64_t work = int64_t(g.N) * g.OH * g.OW * g.C / (vec ? (f16 ? 8 : 4) : 1);
      const bool s1 = vec && g.SH == 1 && g.SW == 1 && g.KH == g.KW && (g.KH == 3 || g.KH == 5 || g.KH == 7);
      auto launch = [&](auto qk) {
        constexpr int QK = decltype(qk)::value;
        if (f16) {
          auto x = in[0].as<__half>();
          auto w = in[1].as<__half>();
          auto b = static_cast<const __half*>(bias);
          auto r = static_cast<const __half*>(res);
          auto y = static_cast<__half*>(yp);
          if (s1) launch_s1<__half, 8, QK>(x, w, b, r, y, g, s);
          else if (vec) depthwise_nhwc<__half, 8, QK><<<blocks_for(work), 256, 0, s>>>(x, w, b, r, y, g);
          else depthwise_nhwc<__half, 1, QK><<<blocks_for(work), 256, 0, s>>>(x, w, b, r, y, g);
        } else {
          auto x = in[0].as<float>();
          auto w = in[1].as<float>();
          auto b = static_cast<const float*>(bias);
          auto r = static_cast<const float*>(res);
          auto y = static_cast<float*>(yp);
          if (s1) launch_s1<float, 4, QK>(x, w, b, r, y, g, s);
          else if (vec) depthwise_nhwc<float, 4, QK><<<blocks_for(work), 256, 0, s>>>(x, w, b, r, y, g);
          else depthwise_nhwc<float, 1, QK><<<blocks_for(work), 256, 0, s>>>(x, w, b, r, y, g);
        }
      };
      if (g.q_kind == 0) launch(std::integral_constant<int, 0>{});
      else if (g.q_kind == 1) launch(std::integral_constant<int, 1>{});
      else launch(std::integral_constant<int, 2>{});
      check_launch(node_);
      return;
    }
    if (use_cudnn()) return run_cudnn(in, out, bias, res, ctx);
    if (patch_path(in[0].dtype, g.C, out[0].shape[3])) {
      if (!aligned16(out[0].data) || (bias && reinterpret_cast<uintptr_t>(bias) % 4)) fail("the patch-embedding output is not 16-byte aligned");
      const int64_t N = out[0].shape[3];
      const int64_t blocks = int64_t(g.N) * g.OH * ((g.OW + kPatchPixels - 1) / kPatchPixels);
      if (blocks > INT32_MAX) fail("too many output rows for the patch-embedding kernel");
      auto x = in[0].as<__half>();
      auto w = in[1].as<__half>();
      auto b = static_cast<const __half*>(bias);
      auto y = out[0].as<__half>();
      if (!aligned16(in[1].data)) fail("the patch-embedding weights are not 16-byte aligned");
      if (N == 32) patch_embed_nchw<3, 4, 32><<<static_cast<unsigned>(blocks), 128, PatchStem<3, 4, 32>::kSmem, s>>>(x, w, b, y, g);
      else patch_embed_nchw<3, 4, 64><<<static_cast<unsigned>(blocks), 128, PatchStem<3, 4, 64>::kSmem, s>>>(x, w, b, y, g);
      check_launch(node_);
      return;
    }
    const int64_t M = int64_t(g.N) * g.OH * g.OW, K = int64_t(g.KH) * g.KW * g.C;
    const size_t es = dtype_size(in[0].dtype);
    const size_t col_bytes = static_cast<size_t>((M * K * static_cast<int64_t>(es) + 255) / 256 * 256);
    const LtGemm* gemm = plans_.find(M);
    if (!gemm) fail("run() for an input shape prepare() never saw");
    if (ctx.workspace_bytes < col_bytes) fail("workspace smaller than prepare() asked for");
    void* col = ctx.workspace;
    const bool vec = !nchw_ && g.C % (f16 ? 8 : 4) == 0 && aligned16(in[0].data) && aligned16(col);
    const int64_t work = M * g.KH * g.KW * g.C / (vec ? (f16 ? 8 : 4) : 1);
    const unsigned grid = blocks_for(work);
    if (f16) {
      auto x = in[0].as<__half>();
      auto c = static_cast<__half*>(col);
      if (nchw_) launch_im2col<__half, 1, true>(x, c, g, work, grid, s);
      else if (vec) launch_im2col<__half, 8, false>(x, c, g, work, grid, s);
      else launch_im2col<__half, 1, false>(x, c, g, work, grid, s);
    } else {
      auto x = in[0].as<float>();
      auto c = static_cast<float*>(col);
      if (nchw_) launch_im2col<float, 1, true>(x, c, g, work, grid, s);
      else if (vec) launch_im2col<float, 4, false>(x, c, g, work, grid, s);
      else launch_im2col<float, 1, false>(x, c, g, work, grid, s);
    }
    check_launch(node_);
    guarded("cuBLASLt conv GEMM", [&] {
      gemm->run(1.f, col, in[1].data, res ? 1.f : 0.f, res, out[0].data, bias, static_cast<char*>(ctx.workspace) + col_bytes,
                           ctx.workspace_bytes - col_bytes, s);
    });
  }

 private:
  // Four outputs per thread (TW) share input loads; when that leaves fewer than ~4 blocks per SM
  // (batch 1: 56x56x64 is 6272 threads) one output per thread in 128-thread blocks spreads wider.
  template <typename T, int V, int QK>
  static void launch_s1(const T* x, const T* w, const T* b, const T* r, T* y, const ConvGeom& g, cudaStream_t s) {
    const int64_t tiled = int64_t(g.N) * g.OH * ((g.OW + 3) / 4) * (g.C / V);
    const bool large = tiled >= int64_t(4) * 256 * context().props.multiProcessorCount;
    if (large && g.C % (kSlab * V) == 0 && g.OH >= kTileH && g.OW >= kTileW && g.N <= 65535) {
      const dim3 grid(static_cast<unsigned>(((g.OH + kTileH - 1) / kTileH) * ((g.OW + kTileW - 1) / kTileW)),
                      static_cast<unsigned>(g.C / (kSlab * V)), static_cast<unsigned>(g.N));
      if (g.KH == 3) depthwise_nhwc_tiled<T, V, 3, QK><<<grid, 256, tiled_smem_bytes<3, V>(), s>>>(x, w, b, r, y, g);
      else if (g.KH == 5) depthwise_nhwc_tiled<T, V, 5, QK><<<grid, 256, tiled_smem_bytes<5, V>(), s>>>(x, w, b, r, y, g);
      else depthwise_nhwc_tiled<T, V, 7, QK><<<grid, 256, tiled_smem_bytes<7, V>(), s>>>(x, w, b, r, y, g);
    } else if (large) {
      const unsigned grid = blocks_for(tiled);
      if (g.KH == 3) depthwise_nhwc_s1<T, V, 3, 4, QK><<<grid, 256, 0, s>>>(x, w, b, r, y, g);
      else if (g.KH == 5) depthwise_nhwc_s1<T, V, 5, 4, QK><<<grid, 256, 0, s>>>(x, w, b, r, y, g);
      else depthwise_nhwc_s1<T, V, 7, 4, QK><<<grid, 256, 0, s>>>(x, w, b, r, y, g);
    } else {
      const int64_t work = int64_t(g.N) * g.OH * g.OW * (g.C / V);
      const unsigned grid = static_cast<unsigned>((work + 127) / 128);
      if (g.KH == 3) depthwise_nhwc_s1<T, V, 3, 1, QK><<<grid, 128, 0, s>>>(x, w, b, r, y, g);
      else if (g.KH == 5) depthwise_nhwc_s1<T, V, 5, 1, QK><<<grid, 128, 0, s>>>(x, w, b, r, y, g);
      else depthwise_nhwc_s1<T, V, 7, 1, QK><<<grid, 128, 0, s>>>(x, w, b, r, y, g);
    }
  }
  // The tensor-core stem (patch_embed_nchw): the image in NCHW float16 (3 channels), 4x4 patches
  // at stride 4 without padding, 32 or 64 output channels, no residual. UNIRT_CONV_NHWC=gemm keeps
  // im2col + cuBLASLt (to compare).
  bool patch_path(DType t, int64_t c, int64_t cout) const {
    return patch_kernel_ && t == DType::Float16 && nchw_ && group_ == 1 && c == 3 && k_[0] == 4 && k_[1] == 4 && s_[0] == 4 && s_[1] == 4 && !p_[0] &&
           !p_[1] && !p_[2] && !p_[3] && (cout == 32 || cout == 64) && !has(3);
  }
  bool use_cudnn() const {
    const bool overlapping = k_[0] * k_[1] > 1 && (k_[0] != s_[0] || k_[1] != s_[1] || p_[0] || p_[1] || p_[2] || p_[3]);
    // Measured at stride 1 only (the detector's 3x3 convs); strided stems keep the GEMM path.
    return cudnn_ && group_ == 1 && !nchw_ && overlapping && s_[0] == 1 && s_[1] == 1 && p_[0] == p_[2] && p_[1] == p_[3];
  }

  size_t prepare_cudnn(DType t, const std::vector<int64_t>& xs, const std::vector<int64_t>& ys, int64_t cout) {
    auto it = cudnn_plans_.find(xs);
    if (it != cudnn_plans_.end()) return it->second->weight_bytes + it->second->workspace;
    auto c = std::make_unique<CudnnNhwc>();
    const cudnnDataType_t dt = t == DType::Float16 ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT;
    auto i32 = [](int64_t v) { return static_cast<int>(v); };
    guarded("cuDNN channels-last convolution setup", [&] {
      UNIRT_CUDNN(cudnnCreateTensorDescriptor(&c->x));
      UNIRT_CUDNN(cudnnCreateTensorDescriptor(&c->y));
      UNIRT_CUDNN(cudnnCreateFilterDescriptor(&c->w));
      UNIRT_CUDNN(cudnnCreateConvolutionDescriptor(&c->conv));
      UNIRT_CUDNN(cudnnSetTensor4dDescriptor(c->x, CUDNN_TENSOR_NHWC, dt, i32(xs[0]), i32(xs[3]), i32(xs[1]), i32(xs[2])));
      UNIRT_CUDNN(cudnnSetTensor4dDescriptor(c->y, CUDNN_TENSOR_NHWC, dt, i32(ys[0]), i32(ys[3]), i32(ys[1]), i32(ys[2])));
      UNIRT_CUDNN(cudnnSetFilter4dDescriptor(c->w, dt, CUDNN_TENSOR_NHWC, i32(cout), i32(xs[3]), i32(k_[0]), i32(k_[1])));
      const int pad_h = i32(p_[0]), pad_w = i32(p_[1]), stride_h = i32(s_[0]), stride_w = i32(s_[1]);  // the macro names its status s_
      UNIRT_CUDNN(cudnnSetConvolution2dDescriptor(c->conv, pad_h, pad_w, stride_h, stride_w, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
      // float32 stays true FP32 (no TF32) so FP32 engines match the CPU reference.
      UNIRT_CUDNN(cudnnSetConvolutionMathType(c->conv, dt == CUDNN_DATA_HALF ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH));
      cudnnHandle_t h = context().cudnn;
      UNIRT_CUDNN(cudnnSetStream(h, nullptr));
      cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
      int found = 0;
      if (xs[0] > 0 && cudnnFindConvolutionForwardAlgorithm(h, c->x, c->w, c->conv, c->y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &found, perf) !=
                           CUDNN_STATUS_SUCCESS) {
        cudaGetLastError();
        found = 0;
      }
      if (!found) UNIRT_CUDNN(cudnnGetConvolutionForwardAlgorithm_v7(h, c->x, c->w, c->conv, c->y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &found, perf));
      bool ok = false;
      for (int i = 0; i < found && !ok; ++i) {
        size_t ws = 0;
        if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > (size_t{256} << 20) ||
            cudnnGetConvolutionForwardWorkspaceSize(h, c->x, c->w, c->conv, c->y, perf[i].algo, &ws) != CUDNN_STATUS_SUCCESS)
          continue;
        c->algo = perf[i].algo;
        c->workspace = ws;
        ok = true;
      }
      if (!ok) throw Error("no cuDNN forward algorithm for this channels-last convolution");
    });
    c->weight_bytes = (static_cast<size_t>(k_[0] * k_[1] * xs[3] * cout) * dtype_size(t) + 255) / 256 * 256;
    const size_t ws = c->weight_bytes + c->workspace;
    cudnn_plans_.emplace(xs, std::move(c));
    return ws;
  }

  void run_cudnn(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const void* bias, const void* res,
                 const RunContext& ctx) {
    auto it = cudnn_plans_.find(in[0].shape);
    if (it == cudnn_plans_.end()) fail("run() for an input shape prepare() never saw");
    const CudnnNhwc& c = *it->second;
    if (ctx.workspace_bytes < c.weight_bytes + c.workspace) fail("workspace smaller than prepare() asked for");
    cudaStream_t s = stream_of(ctx);
    const bool f16 = in[0].dtype == DType::Float16;
    const int64_t cout = in[1].shape[3], rsc = in[1].numel() / cout, n = out[0].numel();
    void* w = ctx.workspace;
    if (f16) weights_rsck_to_krsc<<<grid_for(rsc * cout), 256, 0, s>>>(in[1].as<__half>(), static_cast<__half*>(w), rsc, cout);
    else weights_rsck_to_krsc<<<grid_for(rsc * cout), 256, 0, s>>>(in[1].as<float>(), static_cast<float*>(w), rsc, cout);
    check_launch(node_);
    if (res) UNIRT_CUDA(cudaMemcpyAsync(out[0].data, res, out[0].bytes(), cudaMemcpyDeviceToDevice, s));
    const float one = 1.f, beta = res ? 1.f : 0.f;
    guarded("cuDNN channels-last convolution", [&] {
      cudnnHandle_t h = context().cudnn;
      UNIRT_CUDNN(cudnnSetStream(h, s));
      UNIRT_CUDNN(cudnnConvolutionForward(h, &one, c.x, in[0].data, c.w, w, c.conv, c.algo, static_cast<char*>(ctx.workspace) + c.weight_bytes,
                                          c.workspace, &beta, c.y, out[0].data));
    });
    if (bias) {
      if (f16) add_channel_bias_nhwc<<<grid_for(n), 256, 0, s>>>(out[0].as<__half>(), static_cast<const __half*>(bias), n, cout);
      else add_channel_bias_nhwc<<<grid_for(n), 256, 0, s>>>(out[0].as<float>(), static_cast<const float*>(bias), n, cout);
      check_launch(node_);
    }
  }

  // The input as [N, H, W, C] whatever layout it arrives in.
  std::vector<int64_t> nhwc_shape(const std::vector<int64_t>& s) const {
    if (!nchw_ || s.size() != 4) return s;
    return {s[0], s[2], s[3], s[1]};
  }
  const ConvNhwcAttrs attrs_;
  const std::vector<int64_t>&k_, &s_, &p_;  // kernel, strides, pads of attrs_
  const int64_t group_;
  const bool nchw_;
  const bool cudnn_;
  const bool patch_kernel_;  // the tensor-core stem unless UNIRT_CONV_NHWC=gemm
  GemmPlans plans_;
  std::map<std::vector<int64_t>, std::unique_ptr<CudnnNhwc>> cudnn_plans_;

 public:
  std::string tactic() const override { return plans_.tactic; }
  void use_tactic(const std::string& t) override { plans_.recorded = t; }
};
UNIRT_REGISTER_KERNEL(cuda, unirt.ConvNHWC, ConvNhwcKernel, "float32 float16 int8 float8e4m3fn",
                      "channels-last X [N, H, W, C] 4-D, W [kh, kw, C/group, Cout]; NCHW input accepted with input_layout=NCHW (group 1 "
                      "only); depthwise: int8 / float8e4m3fn codes of Y (q_scale)");

}  // namespace
}  // namespace cuda
}  // namespace unirt
