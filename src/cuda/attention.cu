// unirt.Attention (passes/fuse_attention.cpp): softmax(q k^T * scale) v for every batch and head,
// q/k/v read in place from packed [b, n, 3, heads, head_dim] rows, output [b, n, heads*head_dim].
//
// float16, head_dim 32/64: a flash-attention kernel on tensor cores (mma.sync m16n8k16, float32
// accumulation). A block owns 16-64 queries of one (batch, head), one warp per 16 queries; it
// streams 64-key tiles of K and V through double-buffered shared memory (cp.async, so the next
// tile loads while this one is multiplied) and keeps the running softmax (max, sum) and the output
// in registers, so the [n, n] score matrix never leaves the SM and any sequence length works (49
// and 196 tokens in the classifiers, thousands in the detector's global blocks). Key groups past
// the sequence end are skipped, not computed and masked.
// Other head sizes (<= 128) and float32 run a scalar online-softmax kernel: one thread per query.
#include <cfloat>

#include "backend/quantize_rule.h"
#include "cuda/cuda_context.h"
#include "cuda/half_io.cuh"
#include "cuda/mma.cuh"
#include "ir/fused_attrs.h"

namespace unirt {
namespace cuda {
namespace {

constexpr int kQueries = 64;  // per block of the scalar path (one thread each)
constexpr int kKeys = 64;     // per shared-memory tile
constexpr int kScalarKeys = 32;  // float tiles of up to 128 columns stay within 32 KiB
constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ float fast_exp2(float x) {  // arguments are <= 0 here: ftz is harmless
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// rows x D halves from token rows (row stride `ld` halves) into shared memory (row stride D + 8)
// with cp.async, zero-filling rows past `valid`, so the copy overlaps the previous tile's math.
template <int D, int ROWS, int THREADS>
__device__ __forceinline__ void load_tile_async(__half* dst, const __half* src, int64_t ld, int valid) {
  constexpr int kVec = D / 8;  // 16-byte pieces per row
#pragma unroll
  for (int i = threadIdx.x; i < ROWS * kVec; i += THREADS) {
    const int r = i / kVec, c = (i % kVec) * 8;
    const bool in = r < valid;
    cp_async16(dst + r * (D + 8) + c, in ? src + r * ld + c : src, in);
  }
}

// Where the output goes: float16 (QK 0), or the int8 (1) / float8 E4M3FN (2) codes of the float16
// value at q_inv = 1 / q_scale (the fused producers' rule, backend/quantize_rule.h).
template <int QK>
__device__ __forceinline__ void store_pair(void* out, int64_t at, float a, float b, float q_inv) {
  const __half2 h = __floats2half2_rn(a, b);
  if constexpr (QK == 0) {
    *reinterpret_cast<__half2*>(static_cast<__half*>(out) + at) = h;
  } else {
    const float2 f = __half22float2(h);
    const uint8_t c0 = fused_code(QK == 2, f.x, q_inv), c1 = fused_code(QK == 2, f.y, q_inv);
    *reinterpret_cast<uint16_t*>(static_cast<uint8_t*>(out) + at) = static_cast<uint16_t>(c0 | (c1 << 8));
  }
}

// WARPS warps per block, 16 queries each: the host picks fewer warps when batch x heads is small
// (batch 1) so that more blocks fill the GPU. K/V tiles are double-buffered.
template <int D, int WARPS, int QK>
__global__ void __launch_bounds__(32 * WARPS) flash_attention_f16(const __half* __restrict__ qkv, void* __restrict__ out,
                                                                   int N, int heads, float scale_log2, float q_inv) {
  constexpr int LD = D + 8;  // padded rows: the 8 rows a quad reads fall in different banks
  constexpr int Q = 16 * WARPS, T = 32 * WARPS;
  __shared__ __align__(16) __half sq[Q * LD];
  __shared__ __align__(16) __half sk[2][kKeys * LD];
  __shared__ __align__(16) __half sv[2][kKeys * LD];
  const int C = heads * D;
  const int64_t row_ld = 3 * int64_t(C);
  const int bh = blockIdx.y, b = bh / heads, h = bh % heads;
  const int q0 = blockIdx.x * Q;
  const __half* base = qkv + int64_t(b) * N * row_ld + h * D;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int tiles = (N + kKeys - 1) / kKeys;

  load_tile_async<D, Q, T>(sq, base + int64_t(q0) * row_ld, row_ld, N - q0);
  load_tile_async<D, kKeys, T>(sk[0], base + C, row_ld, N);
  load_tile_async<D, kKeys, T>(sv[0], base + 2 * C, row_ld, N);
  cp_async_commit();

  uint32_t qa[D / 16][4];
  float o[1][D / 8][4];  // one m16 row tile per warp
#pragma unroll
  for (int j = 0; j < D / 8; ++j) o[0][j][0] = o[0][j][1] = o[0][j][2] = o[0][j][3] = 0.f;
  float m0 = -FLT_MAX, m1 = -FLT_MAX, l0 = 0.f, l1 = 0.f;  // rows g and g + 8

  for (int tile = 0; tile < tiles; ++tile) {
    const int k0 = tile * kKeys, buf = tile & 1;
    if (tile + 1 < tiles) {  // prefetch the next tile into the other buffer (consumed one iteration ago)
      const int64_t next = int64_t(k0 + kKeys) * row_ld;
      load_tile_async<D, kKeys, T>(sk[buf ^ 1], base + next + C, row_ld, N - k0 - kKeys);
      load_tile_async<D, kKeys, T>(sv[buf ^ 1], base + next + 2 * C, row_ld, N - k0 - kKeys);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (tile == 0) {
      const __half* qw = sq + warp * 16 * LD;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const int c = kk * 16 + 2 * t;
        qa[kk][0] = *reinterpret_cast<const uint32_t*>(qw + g * LD + c);
        qa[kk][1] = *reinterpret_cast<const uint32_t*>(qw + (g + 8) * LD + c);
        qa[kk][2] = *reinterpret_cast<const uint32_t*>(qw + g * LD + c + 8);
        qa[kk][3] = *reinterpret_cast<const uint32_t*>(qw + (g + 8) * LD + c + 8);
      }
    }
    const __half* skb = sk[buf];
    const __half* svb = sv[buf];
    const int valid = N - k0;  // keys of this tile that exist (may exceed kKeys)
    float s[kKeys / 8][4];
#pragma unroll
    for (int j = 0; j < kKeys / 8; ++j) {
      s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
      if (j * 8 >= valid) continue;  // a whole 8-key group past N (warp-uniform): no math
      const __half* kr = skb + (j * 8 + g) * LD + 2 * t;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const uint32_t b0 = *reinterpret_cast<const uint32_t*>(kr + kk * 16);
        const uint32_t b1 = *reinterpret_cast<const uint32_t*>(kr + kk * 16 + 8);
        mma16816(s[j], qa[kk], b0, b1);
      }
    }
    // Scale into the exp2 domain, mask keys past N, update the running max and sum.
    float mx0 = m0, mx1 = m1;
#pragma unroll
    for (int j = 0; j < kKeys / 8; ++j) {
      const int key = j * 8 + 2 * t;
#pragma unroll
      for (int e = 0; e < 4; ++e) s[j][e] = key + (e & 1) < valid ? s[j][e] * scale_log2 : -FLT_MAX;
      mx0 = fmaxf(mx0, fmaxf(s[j][0], s[j][1]));
      mx1 = fmaxf(mx1, fmaxf(s[j][2], s[j][3]));
    }
#pragma unroll
    for (int off = 1; off < 4; off <<= 1) {
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, off));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, off));
    }
    const float c0 = fast_exp2(m0 - mx0), c1 = fast_exp2(m1 - mx1);
    m0 = mx0;
    m1 = mx1;
    float sum0 = 0.f, sum1 = 0.f;
#pragma unroll
    for (int j = 0; j < kKeys / 8; ++j) {
      s[j][0] = fast_exp2(s[j][0] - m0);
      s[j][1] = fast_exp2(s[j][1] - m0);
      s[j][2] = fast_exp2(s[j][2] - m1);
      s[j][3] = fast_exp2(s[j][3] - m1);
      sum0 += s[j][0] + s[j][1];
      sum1 += s[j][2] + s[j][3];
    }
    l0 = l0 * c0 + sum0;  // per-thread partial sums; the quad is reduced once at the end
    l1 = l1 * c1 + sum1;
#pragma unroll
    for (int j = 0; j < D / 8; ++j) {
      o[0][j][0] *= c0;
      o[0][j][1] *= c0;
      o[0][j][2] *= c1;
      o[0][j][3] *= c1;
    }
    // O += P V: the score accumulators of two key tiles are exactly one A fragment.
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; ++kk) {
      if (kk * 16 >= valid) break;  // the probabilities there are all zero
      uint32_t pa[1][4];
      accumulators_to_a(s[2 * kk], s[2 * kk + 1], pa[0]);
      mma_b_rowmajor<1, D / 8>(o, pa, svb + kk * 16 * LD, LD, lane);
    }
    __syncthreads();  // this buffer is refilled by the next iteration's prefetch
  }
#pragma unroll
  for (int off = 1; off < 4; off <<= 1) {
    l0 += __shfl_xor_sync(0xffffffffu, l0, off);
    l1 += __shfl_xor_sync(0xffffffffu, l1, off);
  }
  const float inv0 = 1.f / l0, inv1 = 1.f / l1;
  const int r0 = q0 + warp * 16 + g, r1 = r0 + 8;
  const int64_t ob = int64_t(b) * N * C + h * D + 2 * t;
#pragma unroll
  for (int j = 0; j < D / 8; ++j) {
    if (r0 < N) store_pair<QK>(out, ob + int64_t(r0) * C + j * 8, o[0][j][0] * inv0, o[0][j][1] * inv0, q_inv);
    if (r1 < N) store_pair<QK>(out, ob + int64_t(r1) * C + j * 8, o[0][j][2] * inv1, o[0][j][3] * inv1, q_inv);
  }
}

// Scalar path: one thread per query, K/V tiles staged in shared memory as float.
// q_kind 1 / 2: out holds the int8 / float8 E4M3FN codes (q_inv = 1 / q_scale) of the value rounded to T.
template <typename T, int DMAX>
__global__ void __launch_bounds__(kQueries) attention_scalar(const T* __restrict__ qkv, void* __restrict__ out, int N, int heads,
                                                             int D, float scale_log2, int q_kind, float q_inv) {
  __shared__ float sk[kScalarKeys * DMAX];
  __shared__ float sv[kScalarKeys * DMAX];
  const int C = heads * D;
  const int64_t row_ld = 3 * int64_t(C);
  const int bh = blockIdx.y, b = bh / heads, h = bh % heads;
  const int q = blockIdx.x * kQueries + threadIdx.x;
  const T* base = qkv + int64_t(b) * N * row_ld + h * D;
  float qr[DMAX], acc[DMAX];
#pragma unroll
  for (int d = 0; d < DMAX; ++d) {
    qr[d] = (d < D && q < N) ? ld(base, int64_t(q) * row_ld + d) * scale_log2 : 0.f;
    acc[d] = 0.f;
  }
  float m = -FLT_MAX, l = 0.f;
  for (int k0 = 0; k0 < N; k0 += kScalarKeys) {
    __syncthreads();
    const int nk = min(kScalarKeys, N - k0);
    for (int i = threadIdx.x; i < nk * D; i += blockDim.x) {
      const int r = i / D, d = i % D;
      sk[r * DMAX + d] = ld(base, int64_t(k0 + r) * row_ld + C + d);
      sv[r * DMAX + d] = ld(base, int64_t(k0 + r) * row_ld + 2 * C + d);
    }
    __syncthreads();
    for (int j = 0; j < nk; ++j) {
      float s = 0.f;
#pragma unroll
      for (int d = 0; d < DMAX; ++d)
        if (d < D) s += qr[d] * sk[j * DMAX + d];
      const float mn = fmaxf(m, s), c = exp2f(m - mn), p = exp2f(s - mn);
      l = l * c + p;
      m = mn;
#pragma unroll
      for (int d = 0; d < DMAX; ++d)
        if (d < D) acc[d] = acc[d] * c + p * sv[j * DMAX + d];
    }
  }
  if (q >= N) return;
  const float inv = 1.f / l;
  const int64_t at = (int64_t(b) * N + q) * C + h * D;
  if (q_kind == 0) {
#pragma unroll
    for (int d = 0; d < DMAX; ++d)
      if (d < D) st(static_cast<T*>(out) + at, d, acc[d] * inv);
    return;
  }
  uint8_t* orow = static_cast<uint8_t*>(out) + at;
#pragma unroll
  for (int d = 0; d < DMAX; ++d) {
    if (d >= D) continue;
    T v;
    st(&v, 0, acc[d] * inv);  // the value as a T tensor would hold it
    const float f = ld(&v, 0);
    orow[d] = fused_code(q_kind == 2, f, q_inv);
  }
}

class AttentionKernel : public CudaKernel {
 public:
  explicit AttentionKernel(const KernelCreateArgs& a)
      : CudaKernel(a), attrs_(AttentionAttrs::of(a.node)), heads_(attrs_.num_heads), hd_(attrs_.head_dim), scale_(attrs_.scale) {
    if (heads_ <= 0 || hd_ <= 0 || hd_ > 128)
      fail("num_heads " + std::to_string(heads_) + " and head_dim " + std::to_string(hd_) +
           ": the CUDA attention kernel supports head_dim 1..128");
  }
  size_t prepare(const std::vector<TensorView>& in, const std::vector<TensorView>& out) override {
    expect_floatish(in[0], "qkv");
    const auto& s = in[0].shape;
    if (s.size() != 3 || s[2] != 3 * heads_ * hd_)
      fail("qkv has " + std::to_string(s.size() == 3 ? s[2] : -1) + " channels, expected [batch, tokens, " +
           std::to_string(3 * heads_ * hd_) + "]");
    if (out[0].shape != std::vector<int64_t>{s[0], s[1], heads_ * hd_}) fail("output shape does not match qkv");
    const DType want = attrs_.q_scale > 0.f ? attrs_.q_dtype : in[0].dtype;
    if (out[0].dtype != want) fail(std::string("output is ") + dtype_name(out[0].dtype) + ", " + dtype_name(want) + " expected");
    if (s[1] > INT32_MAX || s[0] * heads_ > 65535) fail("more than 65535 batch x heads or 2^31 tokens");
    return 0;
  }
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const int64_t B = in[0].shape[0], N = in[0].shape[1];
    if (B * N == 0) return;
    const dim3 grid(static_cast<unsigned>((N + kQueries - 1) / kQueries), static_cast<unsigned>(B * heads_));
    const float sl2 = scale_ * kLog2e;
    const int n = static_cast<int>(N), h = static_cast<int>(heads_), d = static_cast<int>(hd_);
    cudaStream_t s = stream_of(ctx);
    const int qk = attrs_.q_scale > 0.f ? (attrs_.q_dtype == DType::Int8 ? 1 : 2) : 0;
    void* y = out[0].data;
    if (in[0].dtype == DType::Float16) {
      const auto* x = in[0].as<__half>();
      const bool vec = aligned16(x) && aligned16(y);
      if (vec && (d == 32 || d == 64)) {
        if (qk == 0) launch_flash<0>(x, y, B, n, h, d, sl2, s);
        else if (qk == 1) launch_flash<1>(x, y, B, n, h, d, sl2, s);
        else launch_flash<2>(x, y, B, n, h, d, sl2, s);
      } else {
        launch_scalar(x, y, grid, n, h, d, sl2, qk, s);
      }
    } else {
      launch_scalar(in[0].as<float>(), y, grid, n, h, d, sl2, qk, s);
    }
    check_launch(node_);
  }

 private:
  // Four warps (64 queries) per block when that still gives every SM two blocks, else fewer: at
  // batch 1 a 196-token stage has only 5 heads, and 64-query blocks would leave most SMs idle.
  template <int QK>
  void launch_flash(const __half* x, void* y, int64_t B, int n, int h, int d, float sl2, cudaStream_t s) {
    const int64_t want = 2 * int64_t(context().props.multiProcessorCount);
    int warps = 4;
    while (warps > 1 && (n + 16 * warps - 1) / (16 * warps) * B * h < want) warps /= 2;
    const dim3 grid(static_cast<unsigned>((n + 16 * warps - 1) / (16 * warps)), static_cast<unsigned>(B * h));
    if (d == 32) {
      if (warps == 4) flash_attention_f16<32, 4, QK><<<grid, 128, 0, s>>>(x, y, n, h, sl2, q_inv_);
      else if (warps == 2) flash_attention_f16<32, 2, QK><<<grid, 64, 0, s>>>(x, y, n, h, sl2, q_inv_);
      else flash_attention_f16<32, 1, QK><<<grid, 32, 0, s>>>(x, y, n, h, sl2, q_inv_);
    } else {
      if (warps == 4) flash_attention_f16<64, 4, QK><<<grid, 128, 0, s>>>(x, y, n, h, sl2, q_inv_);
      else if (warps == 2) flash_attention_f16<64, 2, QK><<<grid, 64, 0, s>>>(x, y, n, h, sl2, q_inv_);
      else flash_attention_f16<64, 1, QK><<<grid, 32, 0, s>>>(x, y, n, h, sl2, q_inv_);
    }
  }
  template <typename T>
  void launch_scalar(const T* x, void* y, dim3 grid, int n, int h, int d, float sl2, int qk, cudaStream_t s) {
    if (d <= 32) attention_scalar<T, 32><<<grid, kQueries, 0, s>>>(x, y, n, h, d, sl2, qk, q_inv_);
    else if (d <= 64) attention_scalar<T, 64><<<grid, kQueries, 0, s>>>(x, y, n, h, d, sl2, qk, q_inv_);
    else attention_scalar<T, 128><<<grid, kQueries, 0, s>>>(x, y, n, h, d, sl2, qk, q_inv_);
  }
  const AttentionAttrs attrs_;
  const int64_t heads_, hd_;
  const float scale_;
  const float q_inv_ = attrs_.q_scale > 0.f ? 1.f / attrs_.q_scale : 1.f;  // the codes' multiplier (q_scale)
};
UNIRT_REGISTER_KERNEL(cuda, unirt.Attention, AttentionKernel, "float32 float16 int8 float8e4m3fn",
                      "qkv 3-D [batch, tokens, 3*heads*head_dim]; int8 / float8e4m3fn output codes (q_scale)");

}  // namespace
}  // namespace cuda
}  // namespace unirt
