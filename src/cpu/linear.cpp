// unirt.Linear (passes/fuse_linear.cpp, and 1x1 convs from passes/nhwc_wrap_convs.cpp):
// Y[..., N] = act(X[..., K] W[K, N] (+ bias[N])) (+ R[..., N]), one sgemm over all leading dims;
// act is none or exact GELU (activation = "gelu", never together with R).
#include <cmath>

#include "cpu/blas.h"
#include "cpu/cpu_util.h"
#include "ir/fused_attrs.h"

namespace unirt {
namespace cpu {
namespace {

class LinearKernel : public CpuKernel {
 public:
  explicit LinearKernel(const KernelCreateArgs& a) : CpuKernel(a) {
    gelu_ = LinearAttrs::of(a.node).gelu;
  }
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_float(in[0], "X");
    expect_float(in[1], "W");
    const auto& xs = in[0].shape;
    if (xs.empty() || in[1].shape.size() != 2 || in[1].shape[0] != xs.back())
      fail("X " + dims_text(xs) + " and W " + dims_text(in[1].shape) + " do not form [..., K] x [K, N]");
    const int64_t K = xs.back(), N = in[1].shape[1], M = K ? in[0].numel() / K : 0;
    auto ys = xs;
    ys.back() = N;
    expect_shape(out[0], ys, "output");
    float* y = out[0].as<float>();
    const bool has_bias = present(in, 2), has_res = present(in, 3);
    if (has_bias) {
      expect_float(in[2], "bias");
      if (in[2].numel() != N) fail("bias has " + std::to_string(in[2].numel()) + " values, expected " + std::to_string(N));
    }
    if (has_res) {
      expect_float(in[3], "residual");
      expect_shape(in[3], ys, "residual");
    }
    if (M * N == 0) return;
    if (has_res) std::memcpy(y, in[3].data, out[0].bytes());
    if (K == 0) {
      if (!has_res) std::memset(y, 0, out[0].bytes());
    } else {
      sgemm(false, false, M, N, K, 1.f, in[0].as<float>(), K, in[1].as<float>(), N, has_res ? 1.f : 0.f, y, N, ctx.threads);
    }
    if (has_bias) {
      const float* b = in[2].as<float>();
#pragma omp parallel for num_threads(ctx.threads) if (M * N > 65536)
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) y[m * N + n] += b[n];
    }
    if (gelu_) {
#pragma omp parallel for num_threads(ctx.threads) if (M * N > 65536)
      for (int64_t i = 0; i < M * N; ++i) y[i] = 0.5f * y[i] * (1.f + std::erf(y[i] * 0.70710678f));
    }
  }

 private:
  bool gelu_ = false;
};
UNIRT_REGISTER_KERNEL(cpu, unirt.Linear, LinearKernel, "float32", "X [..., K], W [K, N]");

}  // namespace
}  // namespace cpu
}  // namespace unirt
