// ConvTranspose (1 to 3 spatial axes, group 1), float32 or float16: one batched cuBLASLt GEMM
// (its algorithm timed per shape) makes the columns W^T X[n] of every image into the workspace,
// then a gather kernel sums, for
// each output element, the kernel taps that land on it (plus the bias). Geometry and pads are
// backend/conv_transpose_geometry.h, shared with the CPU kernel.
#include <cstdint>
#include <map>
#include <memory>

#include "backend/conv_transpose_geometry.h"
#include "cuda/gemm.h"
#include "cuda/half_io.cuh"

namespace unirt {
namespace cuda {
namespace {

struct Col2ImArgs {
  int64_t n, cout, kvol, P;
  int64_t in[3], out[3], k[3], s[3], d[3], p[3];
};

template <typename T>
__global__ void col2im_gather(const T* col, const T* bias, T* y, Col2ImArgs a) {
  const int64_t total = a.n * a.cout * a.out[0] * a.out[1] * a.out[2];
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t r = i;
    const int64_t o2 = r % a.out[2];
    r /= a.out[2];
    const int64_t o1 = r % a.out[1];
    r /= a.out[1];
    const int64_t o0 = r % a.out[0];
    r /= a.out[0];
    const int64_t co = r % a.cout, n = r / a.cout;
    float acc = bias ? ld(bias, co) : 0.f;
    const T* cn = col + (n * a.cout + co) * a.kvol * a.P;
    for (int64_t k0 = 0; k0 < a.k[0]; ++k0) {
      const int64_t t0 = o0 + a.p[0] - k0 * a.d[0];
      if (t0 < 0 || t0 % a.s[0]) continue;
      const int64_t i0 = t0 / a.s[0];
      if (i0 >= a.in[0]) continue;
      for (int64_t k1 = 0; k1 < a.k[1]; ++k1) {
        const int64_t t1 = o1 + a.p[1] - k1 * a.d[1];
        if (t1 < 0 || t1 % a.s[1]) continue;
        const int64_t i1 = t1 / a.s[1];
        if (i1 >= a.in[1]) continue;
        for (int64_t k2 = 0; k2 < a.k[2]; ++k2) {
          const int64_t t2 = o2 + a.p[2] - k2 * a.d[2];
          if (t2 < 0 || t2 % a.s[2]) continue;
          const int64_t i2 = t2 / a.s[2];
          if (i2 >= a.in[2]) continue;
          const int64_t kk = (k0 * a.k[1] + k1) * a.k[2] + k2;
          acc += ld(cn, kk * a.P + (i0 * a.in[1] + i1) * a.in[2] + i2);
        }
      }
    }
    st(y, i, acc);
  }
}

// Kernel == stride, no padding or dilation (the mask head's 2x2 / 2 upsampling): every output
// takes exactly one tap, found with 32-bit arithmetic.
template <typename T>
__global__ void col2im_one_tap(const T* col, const T* bias, T* y, int total, int cout, int OH, int OW, int IW, int SH, int SW, int P) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
    const int ox = i % OW, t = i / OW, oy = t % OH, nc = t / OH;
    const int iy = oy / SH, ix = ox / SW, kk = (oy - iy * SH) * SW + (ox - ix * SW);
    st(y, i, ld(col, (static_cast<int64_t>(nc) * (SH * SW) + kk) * P + iy * IW + ix) + (bias ? ld(bias, nc % cout) : 0.f));
  }
}

struct Plan {
  ConvTransposeGeometry geo;
  LtGemm gemm;
  size_t col_bytes = 0, workspace = 0;
  std::string tactic;
};

class ConvTransposeKernel : public CudaKernel {
 public:
  using CudaKernel::CudaKernel;

  size_t prepare(const std::vector<TensorView>& in, const std::vector<TensorView>& out) override {
    auto it = plans_.find(in[0].shape);
    if (it != plans_.end()) return it->second->workspace;
    expect_floatish(in[0], "X");
    if (in[1].dtype != in[0].dtype) fail(std::string("W is ") + dtype_name(in[1].dtype) + ", X " + dtype_name(in[0].dtype) + "; they must match");
    if (has(2) && in[2].dtype != in[0].dtype) fail("bias B type differs from the input type");
    auto p = std::make_unique<Plan>();
    p->geo = ConvTransposeGeometry::of(node_, in[0].shape, in[1].shape, out[0].shape);
    const ConvTransposeGeometry& G = p->geo;
    if (G.group != 1) fail("group " + std::to_string(G.group) + " is not supported on CUDA (group 1)");
    const int64_t rows = G.cout * G.kernel_volume(), P = G.in_pixels();
    p->col_bytes = (static_cast<size_t>(G.batch * rows * P) * dtype_size(in[0].dtype) + 255) / 256 * 256;
    p->workspace = p->col_bytes;
    if (G.batch * P > 0) {
      GemmShape g;  // col[n] (rows x P) = W^T (rows x Cin) X[n] (Cin x P); W is stored Cin x rows
      g.type = in[0].dtype;
      g.trans_a = true;
      g.M = rows;
      g.N = P;
      g.K = G.cin;
      g.lda = rows;
      g.ldb = P;
      g.ldc = P;
      g.batch = G.batch;
      g.stride_a = 0;
      g.stride_b = G.cin * P;
      g.stride_c = rows * P;
      size_t gws = 0;
      guarded("cuBLASLt ConvTranspose GEMM plan", [&] {
        p->gemm.setup(g, kGemmCandidates);
        p->tactic = p->gemm.autotune(false);  // timed once per shape, on scratch buffers
        gws = p->gemm.run_workspace();
      });
      p->workspace += gws;
    }
    const size_t ws = p->workspace;
    plans_.emplace(in[0].shape, std::move(p));
    return ws;
  }

  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    auto it = plans_.find(in[0].shape);
    if (it == plans_.end()) fail("run() for an input shape prepare() never saw");
    const Plan& p = *it->second;
    if (ctx.workspace_bytes < p.workspace) fail("workspace of " + std::to_string(ctx.workspace_bytes) + " bytes, needs " + std::to_string(p.workspace));
    const ConvTransposeGeometry& G = p.geo;
    const int64_t total = out[0].numel();
    if (total == 0) return;
    cudaStream_t s = stream_of(ctx);
    char* col = static_cast<char*>(ctx.workspace);
    if (G.batch * G.in_pixels() > 0)
      guarded("cuBLASLt ConvTranspose GEMM", [&] {
        p.gemm.run(1.f, in[1].data, in[0].data, 0.f, nullptr, col, nullptr, col + p.col_bytes, p.workspace - p.col_bytes, s);
      });
    Col2ImArgs a{G.batch, G.cout, G.kernel_volume(), G.in_pixels(), {}, {}, {}, {}, {}, {}};
    for (int i = 0; i < 3; ++i) {
      a.in[i] = G.in[i], a.out[i] = G.out[i], a.k[i] = G.k[i], a.s[i] = G.s[i], a.d[i] = G.d[i], a.p[i] = G.p[i];
    }
    const void* bias = has(2) ? in[2].data : nullptr;
    const bool one_tap = G.nsp == 2 && G.k[0] == G.s[0] && G.k[1] == G.s[1] && G.d[0] == 1 && G.d[1] == 1 && G.p[0] == 0 && G.p[1] == 0 &&
                         G.out[0] == G.in[0] * G.s[0] && G.out[1] == G.in[1] * G.s[1] && total < INT32_MAX &&
                         G.batch * G.cout * G.kernel_volume() * G.in_pixels() < INT32_MAX;
    if (one_tap) {
      const int t = static_cast<int>(total);
      auto i32 = [](int64_t v) { return static_cast<int>(v); };
      if (in[0].dtype == DType::Float16)
        col2im_one_tap<<<grid_for(total), 256, 0, s>>>(reinterpret_cast<const __half*>(col), static_cast<const __half*>(bias), out[0].as<__half>(), t,
                                                       i32(G.cout), i32(G.out[0]), i32(G.out[1]), i32(G.in[1]), i32(G.s[0]), i32(G.s[1]),
                                                       i32(G.in_pixels()));
      else
        col2im_one_tap<<<grid_for(total), 256, 0, s>>>(reinterpret_cast<const float*>(col), static_cast<const float*>(bias), out[0].as<float>(), t,
                                                       i32(G.cout), i32(G.out[0]), i32(G.out[1]), i32(G.in[1]), i32(G.s[0]), i32(G.s[1]),
                                                       i32(G.in_pixels()));
      check_launch(node_);
      return;
    }
    if (in[0].dtype == DType::Float16)
      col2im_gather<<<grid_for(total), 256, 0, s>>>(reinterpret_cast<const __half*>(col), static_cast<const __half*>(bias), out[0].as<__half>(), a);
    else
      col2im_gather<<<grid_for(total), 256, 0, s>>>(reinterpret_cast<const float*>(col), static_cast<const float*>(bias), out[0].as<float>(), a);
    check_launch(node_);
  }

 private:
  std::map<std::vector<int64_t>, std::unique_ptr<Plan>> plans_;
};

}  // namespace
UNIRT_REGISTER_KERNEL(cuda, ConvTranspose, ConvTransposeKernel, "float32 float16", "N x C x 1..3 spatial dims, group 1");

}  // namespace cuda
}  // namespace unirt
