// Softmax. Opset >= 13: along one axis. Before 13: the input is coerced to 2-D at `axis`
// (default 1) and normalised over the flattened trailing dims.
#include <cmath>

#include "cpu/cpu_util.h"

namespace unirt {
namespace cpu {
namespace {

class SoftmaxKernel : public CpuKernel {
 public:
  explicit SoftmaxKernel(const KernelCreateArgs& a) : CpuKernel(a) {
    legacy_ = opset_ > 0 && opset_ < 13;
    axis_ = a.node.attr_i("axis", legacy_ ? 1 : -1);
  }
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_float(in[0], "input");
    expect_shape(out[0], in[0].shape, "output");
    const auto& xs = in[0].shape;
    const int64_t r = static_cast<int64_t>(xs.size());
    if (r == 0) fail("input must have rank >= 1");
    const int64_t axis = norm_axis(axis_, r);
    if (in[0].numel() == 0) return;  // an empty tensor may have no memory at all
    int64_t outer = 1, len = 1, inner = 1;
    for (int64_t i = 0; i < r; ++i) {
      if (i < axis) outer *= xs[i];
      else if (i == axis || legacy_) len *= xs[i];
      else inner *= xs[i];
    }
    const float* x = in[0].as<float>();
    float* y = out[0].as<float>();
    if (inner == 1) {  // the common case (attention scores over the last axis): contiguous rows
#pragma omp parallel for num_threads(ctx.threads) if (outer * len > 16384)
      for (int64_t o = 0; o < outer; ++o) {
        const float* xr = x + o * len;
        float* yr = y + o * len;
        float mx = -INFINITY;
        for (int64_t k = 0; k < len; ++k) mx = std::max(mx, xr[k]);
        float s = 0.f;
        for (int64_t k = 0; k < len; ++k) {
          const float e = std::exp(xr[k] - mx);
          yr[k] = e;
          s += e;
        }
        const float inv = 1.f / s;
        for (int64_t k = 0; k < len; ++k) yr[k] *= inv;
      }
      return;
    }
#pragma omp parallel for num_threads(ctx.threads) if (outer * len * inner > 16384)
    for (int64_t oi = 0; oi < outer * inner; ++oi) {
      const int64_t o = oi / inner, i = oi % inner;
      const float* xr = x + o * len * inner + i;
      float* yr = y + o * len * inner + i;
      float mx = -INFINITY;
      for (int64_t k = 0; k < len; ++k) mx = std::max(mx, xr[k * inner]);
      double s = 0;
      for (int64_t k = 0; k < len; ++k) {
        const float e = std::exp(xr[k * inner] - mx);
        yr[k * inner] = e;
        s += e;
      }
      const float inv = static_cast<float>(1.0 / s);
      for (int64_t k = 0; k < len; ++k) yr[k * inner] *= inv;
    }
  }

 private:
  bool legacy_ = false;
  int64_t axis_ = -1;
};
UNIRT_REGISTER_KERNEL(cpu, Softmax, SoftmaxKernel, "float32");

}  // namespace
}  // namespace cpu
}  // namespace unirt
