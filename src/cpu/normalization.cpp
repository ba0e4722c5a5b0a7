// BatchNormalization (inference), LayerNormalization, Softmax.
#include <cmath>

#include "cpu/cpu_util.h"

namespace unirt {
namespace cpu {
namespace {

class BatchNormalizationKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    for (int i = 0; i < 5; ++i) expect_float(in[i], "input");
    const auto& xs = in[0].shape;
    const int64_t N = xs[0], C = xs[1], S = in[0].numel() / std::max<int64_t>(1, N * C);
    for (int i = 1; i < 5; ++i)
      if (in[i].numel() != C) fail("parameter " + std::to_string(i) + " has " + std::to_string(in[i].numel()) + " values, expected " + std::to_string(C));
    const float eps = node_.attr_f("epsilon", 1e-5f);
    const float *x = in[0].as<float>(), *g = in[1].as<float>(), *b = in[2].as<float>(), *m = in[3].as<float>(), *v = in[4].as<float>();
    float* y = out[0].as<float>();
#pragma omp parallel for num_threads(ctx.threads)
    for (int64_t nc = 0; nc < N * C; ++nc) {
      const int64_t c = nc % C;
      const float sc = g[c] / std::sqrt(v[c] + eps), sh = b[c] - m[c] * sc;
      for (int64_t i = 0; i < S; ++i) y[nc * S + i] = x[nc * S + i] * sc + sh;
    }
  }
};
UNIRT_REGISTER_KERNEL(cpu, BatchNormalization, BatchNormalizationKernel);

class LayerNormalizationKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_float(in[0], "X");
    expect_float(in[1], "Scale");
    const auto& xs = in[0].shape;
    int64_t axis = node_.attr_i("axis", -1);
    if (axis < 0) axis += static_cast<int64_t>(xs.size());
    int64_t D = 1;
    for (size_t i = axis; i < xs.size(); ++i) D *= xs[i];
    const int64_t rows = D ? in[0].numel() / D : 0;
    if (in[1].numel() != D && in[1].numel() != 1) fail("Scale has " + std::to_string(in[1].numel()) + " values, expected " + std::to_string(D));
    const bool has_b = in.size() > 2 && in[2].data;
    const float eps = node_.attr_f("epsilon", 1e-5f);
    const float *x = in[0].as<float>(), *g = in[1].as<float>(), *b = has_b ? in[2].as<float>() : nullptr;
    const bool gs = in[1].numel() == 1, bsc = has_b && in[2].numel() == 1;
    float* y = out[0].as<float>();
    float* mean_out = out.size() > 1 && out[1].data ? out[1].as<float>() : nullptr;
    float* rstd_out = out.size() > 2 && out[2].data ? out[2].as<float>() : nullptr;
#pragma omp parallel for num_threads(ctx.threads)
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = x + r * D;
      double s = 0;
      for (int64_t i = 0; i < D; ++i) s += xr[i];
      const double mean = s / D;
      double ss = 0;
      for (int64_t i = 0; i < D; ++i) ss += (xr[i] - mean) * (xr[i] - mean);
      const float rstd = static_cast<float>(1.0 / std::sqrt(ss / D + eps));
      float* yr = y + r * D;
      for (int64_t i = 0; i < D; ++i)
        yr[i] = static_cast<float>(xr[i] - mean) * rstd * g[gs ? 0 : i] + (b ? b[bsc ? 0 : i] : 0.f);
      if (mean_out) mean_out[r] = static_cast<float>(mean);
      if (rstd_out) rstd_out[r] = rstd;
    }
  }
};
UNIRT_REGISTER_KERNEL(cpu, LayerNormalization, LayerNormalizationKernel);

class SoftmaxKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_float(in[0], "input");
    const auto& xs = in[0].shape;
    const int64_t r = static_cast<int64_t>(xs.size());
    int64_t axis = node_.attr_i("axis", opset_ >= 13 ? -1 : 1);
    if (axis < 0) axis += r;
    if (axis < 0 || axis >= std::max<int64_t>(r, 1)) fail("axis out of range for rank " + std::to_string(r));
    // opset >= 13: softmax along one axis; before: over the flattened dims from `axis` on.
    int64_t outer = 1, len = 1, inner = 1;
    for (int64_t i = 0; i < r; ++i) {
      if (i < axis) outer *= xs[i];
      else if (i == axis || opset_ < 13) len *= xs[i];
      else inner *= xs[i];
    }
    const float* x = in[0].as<float>();
    float* y = out[0].as<float>();
#pragma omp parallel for num_threads(ctx.threads)
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
};
UNIRT_REGISTER_KERNEL(cpu, Softmax, SoftmaxKernel);

}  // namespace
}  // namespace cpu
}  // namespace unirt
