// unirt.Mlp (passes/fuse_mlp.cpp): Y = GELU(X W1 + b1) W2 + b2 + R in one kernel, float16 in and
// out, float32 accumulation on tensor cores (mma.sync m16n8k16), GELU in float32 (tanh form).
//
// A warp owns 32 token rows (two m16 tiles, so each weight fragment read from shared memory feeds
// two MMAs), a block 1-4 warps. X's rows are staged once in shared memory; the hidden dimension
// is walked in chunks of 32: per chunk a warp computes its 32 x 32 slice of GELU(X W1 + b1) in
// registers, turns the accumulators straight into A fragments (the layout of an m16n8k16
// accumulator pair is that of an A fragment) and multiplies them into its 32 x C output tile,
// which stays in registers until the epilogue adds b2 and the residual. W1/W2 chunks are
// double-buffered with cp.async. The 4C-wide hidden activation never reaches memory: for
// UniFormer's stage-1 MLP at batch 128 that is 205 MB written and read back by the two-GEMM form
// (0.163 ms fused against 0.208 ms for the two cuBLASLt GEMMs on the H100). Small row counts run
// the two GEMMs instead (see fused_min_rows).
#include <map>
#include <memory>

#include "cuda/gemm.h"
#include "cuda/gelu.cuh"
#include "cuda/mma.cuh"
#include "ir/fused_attrs.h"

namespace unirt {
namespace cuda {
namespace {

constexpr int kChunk = 32;           // hidden units per step (divides passes/fusions.h's kMlpHiddenChunk)
constexpr int kMT = 2;               // m16 row tiles per warp
constexpr int kWarpRows = 16 * kMT;  // rows per warp

// 38 KiB at C = 64 with 4 warps: within the default dynamic shared memory limit.
template <int C, int WARPS>
constexpr size_t mlp_smem_bytes() {
  return sizeof(__half) * (size_t(kWarpRows * WARPS) * (C + 8) + 2 * size_t(C) * (kChunk + 8) + 2 * size_t(kChunk) * (C + 8));
}

template <int C, int WARPS>
__global__ void __launch_bounds__(32 * WARPS) mlp_gelu_f16(const __half* __restrict__ X, const __half* __restrict__ W1,
                                                         const __half* __restrict__ b1, const __half* __restrict__ W2,
                                                         const __half* __restrict__ b2, const __half* __restrict__ R,
                                                         __half* __restrict__ Y, int64_t M, int H) {
  constexpr int LDX = C + 8, LDW1 = kChunk + 8, LDW2 = C + 8;  // padded rows: conflict-free fragment loads
  constexpr int kRows = kWarpRows * WARPS, kThreads = 32 * WARPS;
  extern __shared__ float4 smem_raw[];
  __half* sx = reinterpret_cast<__half*>(smem_raw);  // [kRows][LDX]
  __half* sw1 = sx + kRows * LDX;                      // 2 x [C][LDW1]: W1[:, h0:h0+kChunk]
  __half* sw2 = sw1 + 2 * C * LDW1;                    // 2 x [kChunk][LDW2]: W2[h0:h0+kChunk, :]
  const int64_t row0 = int64_t(blockIdx.x) * kRows;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int chunks = H / kChunk;

  for (int i = threadIdx.x; i < kRows * (C / 8); i += kThreads) {
    const int r = i / (C / 8), c = (i % (C / 8)) * 8;
    const bool ok = row0 + r < M;
    cp_async16(sx + r * LDX + c, ok ? X + (row0 + r) * C + c : X, ok);
  }
  auto load_chunk = [&](int ch, int buf) {
    const int h0 = ch * kChunk;
    __half* d1 = sw1 + buf * C * LDW1;
    for (int i = threadIdx.x; i < C * (kChunk / 8); i += kThreads) {
      const int k = i / (kChunk / 8), c = (i % (kChunk / 8)) * 8;
      cp_async16(d1 + k * LDW1 + c, W1 + int64_t(k) * H + h0 + c, true);
    }
    __half* d2 = sw2 + buf * kChunk * LDW2;
    for (int i = threadIdx.x; i < kChunk * (C / 8); i += kThreads) {
      const int k = i / (C / 8), c = (i % (C / 8)) * 8;
      cp_async16(d2 + k * LDW2 + c, W2 + int64_t(h0 + k) * C + c, true);
    }
  };
  load_chunk(0, 0);
  cp_async_commit();

  // Per warp: kMT m16 row tiles, so every weight fragment read from shared memory feeds kMT MMAs.
  float y[kMT][C / 8][4];
  uint32_t xa[C / 16][kMT][4];  // the warp's X fragments, loaded once
#pragma unroll
  for (int m = 0; m < kMT; ++m)
#pragma unroll
    for (int j = 0; j < C / 8; ++j) y[m][j][0] = y[m][j][1] = y[m][j][2] = y[m][j][3] = 0.f;

  for (int ch = 0; ch < chunks; ++ch) {
    const int buf = ch & 1;
    if (ch + 1 < chunks) {
      load_chunk(ch + 1, buf ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (ch == 0) {
#pragma unroll
      for (int m = 0; m < kMT; ++m)
#pragma unroll
        for (int kk = 0; kk < C / 16; ++kk)
          ldmatrix_x4(xa[kk][m], sx + (warp * kWarpRows + m * 16 + (lane & 15)) * LDX + kk * 16 + (lane >> 4) * 8);
    }
    const __half* w1 = sw1 + buf * C * LDW1;
    const __half* w2 = sw2 + buf * kChunk * LDW2;
    float s[kMT][kChunk / 8][4];
#pragma unroll
    for (int m = 0; m < kMT; ++m)
#pragma unroll
      for (int j = 0; j < kChunk / 8; ++j) s[m][j][0] = s[m][j][1] = s[m][j][2] = s[m][j][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < C / 16; ++kk) mma_b_rowmajor<kMT, kChunk / 8>(s, xa[kk], w1 + kk * 16 * LDW1, LDW1, lane);
    const int h0 = ch * kChunk;
#pragma unroll
    for (int nt = 0; nt < kChunk / 8; ++nt) {
      float2 bb = make_float2(0.f, 0.f);
      if (b1) bb = __half22float2(*reinterpret_cast<const __half2*>(b1 + h0 + nt * 8 + 2 * t));
#pragma unroll
      for (int m = 0; m < kMT; ++m) {
        s[m][nt][0] = gelu_tanh_form(s[m][nt][0] + bb.x);
        s[m][nt][1] = gelu_tanh_form(s[m][nt][1] + bb.y);
        s[m][nt][2] = gelu_tanh_form(s[m][nt][2] + bb.x);
        s[m][nt][3] = gelu_tanh_form(s[m][nt][3] + bb.y);
      }
    }
#pragma unroll
    for (int kk = 0; kk < kChunk / 16; ++kk) {
      uint32_t pa[kMT][4];
#pragma unroll
      for (int m = 0; m < kMT; ++m) accumulators_to_a(s[m][2 * kk], s[m][2 * kk + 1], pa[m]);
      mma_b_rowmajor<kMT, C / 8>(y, pa, w2 + kk * 16 * LDW2, LDW2, lane);
    }
    __syncthreads();  // this buffer is refilled by the next iteration's prefetch
  }

#pragma unroll
  for (int m = 0; m < kMT; ++m) {
    const int64_t r0 = row0 + warp * kWarpRows + m * 16 + g, r1 = r0 + 8;
#pragma unroll
    for (int nt = 0; nt < C / 8; ++nt) {
      const int c = nt * 8 + 2 * t;
      float2 bb = make_float2(0.f, 0.f);
      if (b2) bb = __half22float2(*reinterpret_cast<const __half2*>(b2 + c));
      float2 v0 = make_float2(y[m][nt][0] + bb.x, y[m][nt][1] + bb.y), v1 = make_float2(y[m][nt][2] + bb.x, y[m][nt][3] + bb.y);
      if (r0 < M) {
        if (R) {
          const float2 rr = __half22float2(*reinterpret_cast<const __half2*>(R + r0 * C + c));
          v0.x += rr.x, v0.y += rr.y;
        }
        *reinterpret_cast<__half2*>(Y + r0 * C + c) = __floats2half2_rn(v0.x, v0.y);
      }
      if (r1 < M) {
        if (R) {
          const float2 rr = __half22float2(*reinterpret_cast<const __half2*>(R + r1 * C + c));
          v1.x += rr.x, v1.y += rr.y;
        }
        *reinterpret_cast<__half2*>(Y + r1 * C + c) = __floats2half2_rn(v1.x, v1.y);
      }
    }
  }
}

template <int C, int WARPS>
void launch_rows(const __half* x, const __half* w1, const __half* b1, const __half* w2, const __half* b2, const __half* r,
                 __half* y, int64_t M, int H, cudaStream_t s) {
  const unsigned grid = static_cast<unsigned>((M + kWarpRows * WARPS - 1) / (kWarpRows * WARPS));
  mlp_gelu_f16<C, WARPS><<<grid, 32 * WARPS, mlp_smem_bytes<C, WARPS>(), s>>>(x, w1, b1, w2, b2, r, y, M, H);
}

// Four warps (128 rows) per block while that still gives every SM two blocks, else fewer.
template <int C>
void launch_mlp(const __half* x, const __half* w1, const __half* b1, const __half* w2, const __half* b2, const __half* r,
                __half* y, int64_t M, int H, cudaStream_t s) {
  const int64_t want = 2 * int64_t(context().props.multiProcessorCount);
  int warps = 4;
  while (warps > 1 && (M + kWarpRows * warps - 1) / (kWarpRows * warps) < want) warps /= 2;
  switch (warps) {
    case 4: launch_rows<C, 4>(x, w1, b1, w2, b2, r, y, M, H, s); break;
    case 2: launch_rows<C, 2>(x, w1, b1, w2, b2, r, y, M, H, s); break;
    default: launch_rows<C, 1>(x, w1, b1, w2, b2, r, y, M, H, s); break;
  }
}

// Below this many rows the fused kernel cannot give every SM two 4-warp blocks, and its serial
// walk over the hidden chunks makes it slower than two cuBLASLt GEMMs (UniFormer-S stage 1 at
// batch 1, 3136 rows: 18.6 us fused against 14.6 us for the pair); there the node runs as
// GEMM (bias + GELU epilogue) -> workspace -> GEMM (bias + residual epilogue).
int64_t fused_min_rows() { return int64_t(kWarpRows) * 4 * 2 * context().props.multiProcessorCount; }

class MlpKernel : public CudaKernel {
 public:
  explicit MlpKernel(const KernelCreateArgs& a) : CudaKernel(a) {
    MlpAttrs::of(a.node);
  }
  size_t prepare(const std::vector<TensorView>& in, const std::vector<TensorView>& out) override {
    for (size_t i = 0; i < in.size(); ++i)
      if (has(i) && in[i].dtype != DType::Float16)
        fail("input " + std::to_string(i) + " is " + dtype_name(in[i].dtype) +
             ": the CUDA MLP kernel is float16 (float32 engines keep two unirt.Linear layers)");
    if (out[0].dtype != DType::Float16) fail("output must be float16");
    const auto& xs = in[0].shape;
    const auto& w1 = in[1].shape;
    const auto& w2 = in[3].shape;
    if (xs.empty() || w1.size() != 2 || w2.size() != 2 || w1[0] != xs.back() || w2[0] != w1[1] || w2[1] != xs.back())
      fail("expects X [..., C], W1 [C, hidden], W2 [hidden, C]");
    const int64_t C = xs.back(), H = w1[1], M = C ? in[0].numel() / C : 0;
    if (C != 32 && C != 64) fail("C = " + std::to_string(C) + ": the fused kernel takes 32 or 64 channels");
    if (H % kChunk != 0 || H > INT32_MAX) fail("hidden width " + std::to_string(H) + " is not a multiple of " + std::to_string(kChunk));
    if (has(2) && in[2].numel() != H) fail("b1 must hold " + std::to_string(H) + " values");
    if (has(4) && in[4].numel() != C) fail("b2 must hold " + std::to_string(C) + " values");
    if (has(5) && in[5].shape != out[0].shape) fail("residual shape differs from the output");
    if (M == 0 || M >= fused_min_rows()) {
      tactic_ = "fused";
      return 0;
    }
    auto it = gemms_.find(M);
    if (it == gemms_.end()) {
      auto p = std::make_unique<GemmPair>();
      GemmShape a;
      a.type = DType::Float16;
      a.M = M, a.N = H, a.K = C, a.lda = C, a.ldb = H, a.ldc = H;
      a.bias = has(2);
      a.gelu = true;
      GemmShape b;
      b.type = DType::Float16;
      b.M = M, b.N = C, b.K = H, b.lda = H, b.ldb = C, b.ldc = C;
      b.bias = has(4);
      std::string t1, t2;
      guarded("cuBLASLt plan", [&] {
        p->fc1.setup(a, kGemmCandidates);
        p->fc2.setup(b, kGemmCandidates);
        p->workspace = std::max(choose_gemm(p->fc1, M, "", false, &t1), choose_gemm(p->fc2, M, "", has(5), &t2));
      });
      p->hidden_bytes = static_cast<size_t>((M * H * 2 + 255) / 256 * 256);
      tactic_ = "two GEMMs below " + std::to_string(fused_min_rows()) + " rows (" + t1 + "; " + t2 + ")";
      it = gemms_.emplace(M, std::move(p)).first;
    }
    return it->second->hidden_bytes + it->second->workspace;
  }
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const int64_t C = in[0].shape.back(), M = C ? in[0].numel() / C : 0;
    const int H = static_cast<int>(in[1].shape[1]);
    if (M == 0) return;
    for (size_t i = 0; i < in.size(); ++i)
      if (has(i) && !aligned16(in[i].data)) fail("input " + std::to_string(i) + " is not 16-byte aligned");
    const auto* x = in[0].as<__half>();
    const auto* w1 = in[1].as<__half>();
    const auto* w2 = in[3].as<__half>();
    const auto* b1 = has(2) ? in[2].as<__half>() : nullptr;
    const auto* b2 = has(4) ? in[4].as<__half>() : nullptr;
    const auto* r = has(5) ? in[5].as<__half>() : nullptr;
    auto* y = out[0].as<__half>();
    cudaStream_t s = stream_of(ctx);
    if (M < fused_min_rows()) {
      auto it = gemms_.find(M);
      if (it == gemms_.end()) fail("run() for an input shape prepare() never saw");
      const GemmPair& p = *it->second;
      if (ctx.workspace_bytes < p.hidden_bytes + p.workspace) fail("workspace smaller than prepare() asked for");
      char* ws = static_cast<char*>(ctx.workspace);
      guarded("cuBLASLt MLP", [&] {
        p.fc1.run(1.f, x, w1, 0.f, nullptr, ws, b1, ws + p.hidden_bytes, p.workspace, s);
        p.fc2.run(1.f, ws, w2, r ? 1.f : 0.f, r, y, b2, ws + p.hidden_bytes, p.workspace, s);
      });
      return;
    }
    if (C == 32) launch_mlp<32>(x, w1, b1, w2, b2, r, y, M, H, s);
    else launch_mlp<64>(x, w1, b1, w2, b2, r, y, M, H, s);
    check_launch(node_);
  }
  std::string tactic() const override { return tactic_; }

 private:
  struct GemmPair {
    LtGemm fc1, fc2;
    size_t workspace = 0, hidden_bytes = 0;
  };
  std::map<int64_t, std::unique_ptr<GemmPair>> gemms_;
  std::string tactic_;
};
UNIRT_REGISTER_KERNEL(cuda, unirt.Mlp, MlpKernel, "float16", "X [..., C], W1 [C, hidden], W2 [hidden, C]");

}  // namespace
}  // namespace cuda
}  // namespace unirt
