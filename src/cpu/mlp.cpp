// unirt.Mlp (passes/fuse_mlp.cpp): Y = GELU(X W1 + b1) W2 + b2 (+ R), X [..., C], W1 [C, hidden],
// W2 [hidden, Cout]; b1, b2 and R optional. The hidden activation lives in the workspace.
#include <cmath>
#include <cstring>

#include "cpu/blas.h"
#include "cpu/cpu_util.h"
#include "ir/fused_attrs.h"

namespace unirt {
namespace cpu {
namespace {

class MlpKernel : public CpuKernel {
 public:
  explicit MlpKernel(const KernelCreateArgs& a) : CpuKernel(a) {
    MlpAttrs::of(a.node);
  }
  size_t prepare(const std::vector<TensorView>& in, const std::vector<TensorView>& out) override {
    const auto& xs = in[0].shape;
    if (xs.empty() || in[1].shape.size() != 2) return 0;  // run() names the problem
    const int64_t C = xs.back(), M = C ? in[0].numel() / C : 0;
    return static_cast<size_t>(M * in[1].shape[1]) * sizeof(float);
  }
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    for (size_t i : {size_t(0), size_t(1), size_t(3)}) expect_float(in[i], i == 0 ? "X" : i == 1 ? "W1" : "W2");
    const auto& xs = in[0].shape;
    const auto& w1 = in[1].shape;
    const auto& w2 = in[3].shape;
    if (xs.empty() || w1.size() != 2 || w2.size() != 2 || w1[0] != xs.back() || w2[0] != w1[1])
      fail("X " + dims_text(xs) + ", W1 " + dims_text(w1) + " and W2 " + dims_text(w2) +
           " do not form [..., C] x [C, hidden] x [hidden, Cout]");
    const int64_t C = xs.back(), H = w1[1], N = w2[1], M = C ? in[0].numel() / C : 0;
    auto ys = xs;
    ys.back() = N;
    expect_shape(out[0], ys, "output");
    for (size_t i : {size_t(2), size_t(4)}) {
      if (!present(in, i)) continue;
      expect_float(in[i], i == 2 ? "b1" : "b2");
      const int64_t want = i == 2 ? H : N;
      if (in[i].numel() != want) fail(std::string(i == 2 ? "b1" : "b2") + " must hold " + std::to_string(want) + " values");
    }
    const bool has_res = present(in, 5);
    if (has_res) {
      expect_float(in[5], "residual");
      expect_shape(in[5], ys, "residual");
    }
    if (M * N == 0) return;
    if (ctx.workspace_bytes < static_cast<size_t>(M * H) * sizeof(float)) fail("workspace smaller than prepare() asked for");
    float* h = static_cast<float*>(ctx.workspace);
    sgemm(false, false, M, H, C, 1.f, in[0].as<float>(), C, in[1].as<float>(), H, 0.f, h, H, ctx.threads);
    const float* b1 = present(in, 2) ? in[2].as<float>() : nullptr;
#pragma omp parallel for num_threads(ctx.threads) if (M * H > 65536)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t k = 0; k < H; ++k) {
        const float v = h[m * H + k] + (b1 ? b1[k] : 0.f);
        h[m * H + k] = 0.5f * v * (1.f + std::erf(v * 0.70710678f));
      }
    float* y = out[0].as<float>();
    if (has_res) std::memcpy(y, in[5].data, out[0].bytes());
    sgemm(false, false, M, N, H, 1.f, h, H, in[3].as<float>(), N, has_res ? 1.f : 0.f, y, N, ctx.threads);
    if (present(in, 4)) {
      const float* b2 = in[4].as<float>();
#pragma omp parallel for num_threads(ctx.threads) if (M * N > 65536)
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) y[m * N + n] += b2[n];
    }
  }
};
UNIRT_REGISTER_KERNEL(cpu, unirt.Mlp, MlpKernel, "float32", "X [..., C], W1 [C, hidden], W2 [hidden, Cout]");

}  // namespace
}  // namespace cpu
}  // namespace unirt
