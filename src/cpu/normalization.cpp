// BatchNormalization (inference mode) and LayerNormalization (opset 17).
#include <cmath>

#include "backend/quantize_rule.h"
#include "cpu/cpu_util.h"
#include "ir/fused_attrs.h"

namespace unirt {
namespace cpu {
namespace {

class BatchNormalizationKernel : public CpuKernel {
 public:
  explicit BatchNormalizationKernel(const KernelCreateArgs& a) : CpuKernel(a), eps_(a.node.attr_f("epsilon", 1e-5f)) {
    if (a.node.attr_i("training_mode", 0) != 0)
      fail("training_mode=1 is not supported (inference only: running mean/var are used)");
    if (a.node.has_attr("is_test") && a.node.attr_i("is_test", 1) == 0) fail("is_test=0 (training) is not supported");
  }
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    if (in.size() < 5) fail("expects 5 inputs (X, scale, B, mean, var), got " + std::to_string(in.size()));
    for (size_t i = 1; i < out.size(); ++i)
      if (out[i].data) fail("training outputs (running mean/var) are not supported");
    static const char* names[5] = {"X", "scale", "B", "input_mean", "input_var"};
    for (int i = 0; i < 5; ++i) expect_float(in[i], names[i]);
    const auto& xs = in[0].shape;
    if (xs.size() < 2) fail("X must have rank >= 2, has shape " + dims_text(xs));
    expect_shape(out[0], xs, "output");
    const int64_t N = xs[0], C = xs[1], S = (N * C) != 0 ? in[0].numel() / (N * C) : 0;
    for (int i = 1; i < 5; ++i)
      if (in[i].numel() != C) fail(std::string(names[i]) + " has shape " + dims_text(in[i].shape) + ", expected [" + std::to_string(C) + "]");
    const float *x = in[0].as<float>(), *g = in[1].as<float>(), *b = in[2].as<float>(), *m = in[3].as<float>(), *v = in[4].as<float>();
    float* y = out[0].as<float>();
    const float eps = eps_;
#pragma omp parallel for num_threads(ctx.threads) if (N * C * S > 16384)
    for (int64_t nc = 0; nc < N * C; ++nc) {
      const int64_t c = nc % C;
      const float sc = g[c] / std::sqrt(v[c] + eps), sh = b[c] - m[c] * sc;
      const float* xr = x + nc * S;
      float* yr = y + nc * S;
      for (int64_t i = 0; i < S; ++i) yr[i] = xr[i] * sc + sh;
    }
  }

 private:
  float eps_;
};
UNIRT_REGISTER_KERNEL(cpu, BatchNormalization, BatchNormalizationKernel, "float32", "rank >= 2, channel at dim 1 (N, C, ...)");

// Normalises over the dims from `axis` on. Scale/B broadcast to those dims. Statistics are
// accumulated in double, which satisfies stash_type=1 (float32) with margin.
class LayerNormalizationKernel : public CpuKernel {
 public:
  explicit LayerNormalizationKernel(const KernelCreateArgs& a)
      : CpuKernel(a), axis_(a.node.attr_i("axis", -1)), eps_(a.node.attr_f("epsilon", 1e-5f)) {}
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_float(in[0], "X");
    expect_float(in[1], "Scale");
    const auto& xs = in[0].shape;
    const int64_t rank = static_cast<int64_t>(xs.size());
    const int64_t axis = norm_axis(axis_, rank);
    expect_shape(out[0], xs, "output");
    std::vector<int64_t> norm_shape(xs.begin() + axis, xs.end());
    int64_t D = 1;
    for (auto d : norm_shape) D *= d;
    const int64_t rows = D ? in[0].numel() / D : 0;
    const bool has_b = in.size() > 2 && in[2].data;
    if (has_b) expect_float(in[2], "B");
    std::vector<float> gbuf, bbuf;
    const float* g = expand(in[1], norm_shape, D, "Scale", gbuf);
    const float* b = has_b ? expand(in[2], norm_shape, D, "B", bbuf) : nullptr;
    std::vector<int64_t> stat_shape(xs.begin(), xs.begin() + axis);
    stat_shape.resize(xs.size(), 1);
    float* mean_out = nullptr;
    float* rstd_out = nullptr;
    if (out.size() > 1 && out[1].data) {
      expect_float(out[1], "Mean");
      expect_shape(out[1], stat_shape, "Mean output");
      mean_out = out[1].as<float>();
    }
    if (out.size() > 2 && out[2].data) {
      expect_float(out[2], "InvStdDev");
      expect_shape(out[2], stat_shape, "InvStdDev output");
      rstd_out = out[2].as<float>();
    }
    const float* x = in[0].as<float>();
    float* y = out[0].as<float>();
    const double eps = eps_;
#pragma omp parallel for num_threads(ctx.threads) if (rows * D > 16384)
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = x + r * D;
      double s = 0;
      for (int64_t i = 0; i < D; ++i) s += xr[i];
      const double mean = s / D;
      double ss = 0;
      for (int64_t i = 0; i < D; ++i) {
        const double d = xr[i] - mean;
        ss += d * d;
      }
      const float rstd = static_cast<float>(1.0 / std::sqrt(ss / D + eps));
      const float mf = static_cast<float>(mean);
      float* yr = y + r * D;
      if (b) {
        for (int64_t i = 0; i < D; ++i) yr[i] = (xr[i] - mf) * rstd * g[i] + b[i];
      } else {
        for (int64_t i = 0; i < D; ++i) yr[i] = (xr[i] - mf) * rstd * g[i];
      }
      if (mean_out) mean_out[r] = mf;
      if (rstd_out) rstd_out[r] = rstd;
    }
  }

 private:
  // Scale/B as D contiguous values; broadcast ones ([1], [C] over [H, C], ...) are expanded.
  const float* expand(const TensorView& t, const std::vector<int64_t>& norm_shape, int64_t D, const char* what,
                      std::vector<float>& buf) const {
    if (t.shape == norm_shape || (t.numel() == D && t.shape.size() <= norm_shape.size())) return t.as<float>();
    if (!broadcastable_to(t.shape, norm_shape))
      fail(std::string(what) + " has shape " + dims_text(t.shape) + ", which does not broadcast to the normalised shape " +
           dims_text(norm_shape));
    buf.resize(static_cast<size_t>(D));
    const std::vector<int64_t>* s[1] = {&t.shape};
    BroadcastPlan<1> p(norm_shape, s);
    for (int64_t r = 0; r < p.rows; ++r) {
      int64_t off[1];
      p.row_offsets(r, off);
      for (int64_t i = 0; i < p.inner; ++i) buf[r * p.inner + i] = t.as<float>()[off[0] + i * p.inner_stride(0)];
    }
    return buf.data();
  }
  int64_t axis_;
  float eps_;
};
UNIRT_REGISTER_KERNEL(cpu, LayerNormalization, LayerNormalizationKernel, "float32");

}  // namespace
}  // namespace cpu
}  // namespace unirt

namespace unirt {
namespace cpu {
namespace {

// unirt.LayerNormQuantize: LayerNorm over the last axis (statistics in double, as above), each
// value then quantized by the fused producers' rule at y_scale (backend/quantize_rule.h).
class LayerNormQuantizeKernel : public CpuKernel {
 public:
  explicit LayerNormQuantizeKernel(const KernelCreateArgs& a) : CpuKernel(a), attrs_(LayerNormQuantizeAttrs::of(a.node)) {}
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_float(in[0], "X");
    expect_float(in[1], "Scale");
    const bool has_b = present(in, 2);
    if (has_b) expect_float(in[2], "B");
    const int64_t D = in[0].shape.empty() ? 0 : in[0].shape.back();
    if (in[1].numel() != D || (has_b && in[2].numel() != D)) fail("Scale and B must hold " + std::to_string(D) + " values");
    expect_shape(out[0], in[0].shape, "output");
    if (out[0].dtype != attrs_.output_dtype) fail(std::string("output is ") + dtype_name(out[0].dtype) + ", expected " + dtype_name(attrs_.output_dtype));
    const int64_t rows = D ? in[0].numel() / D : 0;
    const float *x = in[0].as<float>(), *g = in[1].as<float>(), *b = has_b ? in[2].as<float>() : nullptr;
    uint8_t* y = out[0].as<uint8_t>();
    const bool fp8 = attrs_.output_dtype == DType::Float8E4M3FN;
    const float inv = 1.f / attrs_.y_scale;
    const double eps = attrs_.epsilon;
#pragma omp parallel for num_threads(ctx.threads) if (rows * D > 16384)
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = x + r * D;
      double s = 0, ss = 0;
      for (int64_t i = 0; i < D; ++i) s += xr[i];
      const double mean = s / D;
      for (int64_t i = 0; i < D; ++i) ss += (xr[i] - mean) * (xr[i] - mean);
      const float rstd = static_cast<float>(1.0 / std::sqrt(ss / D + eps)), mf = static_cast<float>(mean);
      for (int64_t i = 0; i < D; ++i) {
        const float v = (xr[i] - mf) * rstd * g[i] + (b ? b[i] : 0.f);
        y[r * D + i] = fused_code(fp8, v, inv);
      }
    }
  }

 private:
  LayerNormQuantizeAttrs attrs_;
};
UNIRT_REGISTER_KERNEL(cpu, unirt.LayerNormQuantize, LayerNormQuantizeKernel, "float32 int8 float8e4m3fn", "last axis");

}  // namespace
}  // namespace cpu
}  // namespace unirt
