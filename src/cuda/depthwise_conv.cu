// Depthwise convolution kernels (see depthwise_conv.h). A block covers TR output rows of PP whole
// planes (PP > 1 only for small planes, so 7x7 and 14x14 maps still fill a block). The input rows
// the tile needs, zero-padded, are staged in shared memory as float; each thread then produces VY
// vertically adjacent outputs, so neighbouring threads read neighbouring shared-memory words
// (no bank conflicts at stride 1) and every loaded input row feeds up to VY outputs.
#include "cuda/depthwise_conv.h"
#include "cuda/half_io.cuh"

namespace unirt {
namespace cuda {
namespace {

constexpr int kVY = 4;
constexpr int kThreads = 256;
constexpr size_t kSmemCap = 48 * 1024;

struct Tiling {
  int TR = 1;    // output rows per block
  int PP = 1;    // planes per block
  int GR = 1;    // row groups of kVY per plane tile (generic kernel: rows)
  int IR = 1;    // staged input rows per plane
  int IC = 1;    // staged input columns
  int threads = 32;
  size_t smem = 0;
  int vy = kVY;
};

Tiling tiling_for(const DepthwiseShape& s, int vy) {
  Tiling t;
  t.vy = vy;
  const int OW = static_cast<int>(s.OW), OH = static_cast<int>(s.OH);
  t.IC = (OW - 1) * s.stride_w + s.kw;
  const int gr_target = std::max(1, kThreads / std::max(1, OW));
  t.GR = std::min(gr_target, (OH + vy - 1) / vy);
  t.TR = std::min(OH, t.GR * vy);
  t.IR = (t.GR * vy - 1) * s.stride_h + s.kh;
  const size_t plane_smem = static_cast<size_t>(t.IR) * t.IC * sizeof(float) + static_cast<size_t>(s.kh) * s.kw * sizeof(float);
  if (t.TR == OH) {  // whole planes: pack several when one leaves most of the block idle
    const int items = t.GR * OW;
    t.PP = std::max(1, std::min<int>(kThreads / std::max(1, items), static_cast<int>(kSmemCap / plane_smem)));
    t.PP = static_cast<int>(std::min<int64_t>(t.PP, s.N * s.C));
  }
  t.smem = plane_smem * t.PP;
  const int items = t.PP * t.GR * OW;
  t.threads = std::min(kThreads, (items + 31) / 32 * 32);
  return t;
}

template <typename T>
__device__ __forceinline__ void stage(const T* __restrict__ x, const T* __restrict__ w, float* sx, float* sw, int plane0, int planes, int C,
                                      int H, int W, int iy0, int ix0, int IR, int IC, int KK) {
  const int per = IR * IC;
  for (int i = threadIdx.x; i < planes * per; i += blockDim.x) {
    const int p = i / per, rem = i - p * per;
    const int r = rem / IC, c = rem - r * IC;
    const int iy = iy0 + r, ix = ix0 + c;
    float v = 0.f;
    if (iy >= 0 && iy < H && ix >= 0 && ix < W) v = ld(x, (static_cast<int64_t>(plane0 + p) * H + iy) * W + ix);
    sx[i] = v;
  }
  for (int i = threadIdx.x; i < planes * KK; i += blockDim.x) {
    const int p = i / KK;
    sw[i] = ld(w, static_cast<int64_t>((plane0 + p) % C) * KK + (i - p * KK));
  }
}

template <typename T, int KH, int KW, int S>
__global__ void __launch_bounds__(kThreads) dw_fixed(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                                                     T* __restrict__ y, int NC, int C, int H, int W, int OH, int OW, int pt, int pl,
                                                     int TR, int PP, int GR, int IR, int IC) {
  extern __shared__ float smem[];
  const int plane0 = blockIdx.x * PP;
  const int planes = min(PP, NC - plane0);
  const int oy0 = blockIdx.y * TR;
  const int rows = min(TR, OH - oy0);
  float* sx = smem;
  float* sw = smem + PP * IR * IC;
  stage(x, w, sx, sw, plane0, planes, C, H, W, oy0 * S - pt, -pl, IR, IC, KH * KW);
  __syncthreads();
  const int per_plane = GR * OW;
  for (int item = threadIdx.x; item < planes * per_plane; item += blockDim.x) {
    const int p = item / per_plane, rem = item - p * per_plane;
    const int gr = rem / OW, ox = rem - gr * OW;
    const int r0 = gr * kVY;
    if (r0 >= rows) continue;
    float wr[KH * KW];
#pragma unroll
    for (int k = 0; k < KH * KW; ++k) wr[k] = sw[p * KH * KW + k];
    const float b = bias ? ld(bias, (plane0 + p) % C) : 0.f;
    float acc[kVY];
#pragma unroll
    for (int v = 0; v < kVY; ++v) acc[v] = b;
    const float* base = sx + (p * IR + r0 * S) * IC + ox * S;
#pragma unroll
    for (int rr = 0; rr < (kVY - 1) * S + KH; ++rr) {
      float in[KW];
#pragma unroll
      for (int kx = 0; kx < KW; ++kx) in[kx] = base[rr * IC + kx];
#pragma unroll
      for (int v = 0; v < kVY; ++v) {
        const int ky = rr - v * S;
        if (ky >= 0 && ky < KH) {
#pragma unroll
          for (int kx = 0; kx < KW; ++kx) acc[v] = fmaf(in[kx], wr[ky * KW + kx], acc[v]);
        }
      }
    }
    T* yp = y + (static_cast<int64_t>(plane0 + p) * OH + oy0 + r0) * OW + ox;
#pragma unroll
    for (int v = 0; v < kVY; ++v)
      if (r0 + v < rows) st(yp, static_cast<int64_t>(v) * OW, acc[v]);
  }
}

// Any kernel size and stride: one output per item, filter read from shared memory.
template <typename T>
__global__ void __launch_bounds__(kThreads) dw_generic(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                                                       T* __restrict__ y, int NC, int C, int H, int W, int OH, int OW, int KH, int KW,
                                                       int SH, int SW, int pt, int pl, int TR, int PP, int IR, int IC) {
  extern __shared__ float smem[];
  const int plane0 = blockIdx.x * PP;
  const int planes = min(PP, NC - plane0);
  const int oy0 = blockIdx.y * TR;
  const int rows = min(TR, OH - oy0);
  float* sx = smem;
  float* sw = smem + PP * IR * IC;
  stage(x, w, sx, sw, plane0, planes, C, H, W, oy0 * SH - pt, -pl, IR, IC, KH * KW);
  __syncthreads();
  const int per_plane = rows * OW;
  for (int item = threadIdx.x; item < planes * per_plane; item += blockDim.x) {
    const int p = item / per_plane, rem = item - p * per_plane;
    const int r = rem / OW, ox = rem - r * OW;
    float acc = bias ? ld(bias, (plane0 + p) % C) : 0.f;
    const float* base = sx + (p * IR + r * SH) * IC + ox * SW;
    const float* wp = sw + p * KH * KW;
    for (int ky = 0; ky < KH; ++ky)
      for (int kx = 0; kx < KW; ++kx) acc = fmaf(base[ky * IC + kx], wp[ky * KW + kx], acc);
    st(y, (static_cast<int64_t>(plane0 + p) * OH + oy0 + r) * OW + ox, acc);
  }
}

template <typename T>
void launch(const DepthwiseShape& s, const T* x, const T* w, const T* b, T* y, cudaStream_t stream) {
  const int NC = static_cast<int>(s.N * s.C);
  const bool square = s.kh == s.kw && s.stride_h == s.stride_w && (s.stride_h == 1 || s.stride_h == 2) &&
                      (s.kh == 3 || s.kh == 5 || s.kh == 7);
  const Tiling t = tiling_for(s, square ? kVY : 1);
  const dim3 grid(static_cast<unsigned>((NC + t.PP - 1) / t.PP), static_cast<unsigned>((s.OH + t.TR - 1) / t.TR));
  const int C = static_cast<int>(s.C), H = static_cast<int>(s.H), W = static_cast<int>(s.W), OH = static_cast<int>(s.OH),
            OW = static_cast<int>(s.OW);
#define UNIRT_DW(K, S)                                                                                                            \
  if (s.kh == K && s.stride_h == S)                                                                                               \
    return dw_fixed<T, K, K, S><<<grid, t.threads, t.smem, stream>>>(x, w, b, y, NC, C, H, W, OH, OW, s.pad_top, s.pad_left, t.TR, \
                                                                     t.PP, t.GR, t.IR, t.IC);
  if (square) {
    UNIRT_DW(3, 1) UNIRT_DW(3, 2) UNIRT_DW(5, 1) UNIRT_DW(5, 2) UNIRT_DW(7, 1) UNIRT_DW(7, 2)
  }
#undef UNIRT_DW
  dw_generic<T><<<grid, t.threads, t.smem, stream>>>(x, w, b, y, NC, C, H, W, OH, OW, s.kh, s.kw, s.stride_h, s.stride_w, s.pad_top,
                                                     s.pad_left, t.TR, t.PP, t.IR, t.IC);
}

}  // namespace

bool depthwise_supported(const DepthwiseShape& s) {
  if (s.N * s.C >= (int64_t{1} << 31) || s.H * s.W >= (int64_t{1} << 31) || s.OH > 65535 * 4) return false;
  if (s.kh <= 0 || s.kw <= 0 || s.stride_h <= 0 || s.stride_w <= 0) return false;
  return tiling_for(s, 1).smem <= kSmemCap && tiling_for(s, kVY).smem <= kSmemCap;
}

void depthwise_conv(DType t, const DepthwiseShape& s, const void* x, const void* w, const void* bias, void* y, cudaStream_t stream) {
  if (s.N * s.C * s.OH * s.OW == 0) return;
  if (t == DType::Float16)
    launch(s, static_cast<const __half*>(x), static_cast<const __half*>(w), static_cast<const __half*>(bias), static_cast<__half*>(y), stream);
  else
    launch(s, static_cast<const float*>(x), static_cast<const float*>(w), static_cast<const float*>(bias), static_cast<float*>(y), stream);
}

}  // namespace cuda
}  // namespace unirt
