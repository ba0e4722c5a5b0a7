// unirt.ConvNHWC (passes/nhwc_wrap_convs.cpp): channels-last convolution, X [N, H, W, C], weights
// [kh, kw, C/group, Cout], optional bias [Cout] and residual R [N, OH, OW, Cout].
// group 1: per-image im2col rows (kh*kw*C columns) times the weight matrix; depthwise: direct,
// optionally also quantized (q_scale: the codes of Y, backend/quantize_rule.h's fused rule).
#include "backend/quantize_rule.h"
#include "cpu/blas.h"
#include "cpu/cpu_util.h"
#include "ir/fused_attrs.h"

namespace unirt {
namespace cpu {
namespace {

class ConvNhwcKernel : public CpuKernel {
 public:
  explicit ConvNhwcKernel(const KernelCreateArgs& a)
      : CpuKernel(a),
        attrs_(ConvNhwcAttrs::of(a.node)),
        k_(attrs_.kernel),
        s_(attrs_.strides),
        p_(attrs_.pads),
        group_(attrs_.group),
        nchw_(attrs_.nchw_input) {}

  size_t prepare(const std::vector<TensorView>& in, const std::vector<TensorView>& out) override {
    check(in, out);
    if (group_ != 1) return attrs_.codes_only ? static_cast<size_t>(out[0].numel()) * sizeof(float) : 0;
    return static_cast<size_t>(out[0].shape[1] * out[0].shape[2] * k_[0] * k_[1] * nhwc(in[0].shape)[3]) * sizeof(float);
  }

  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    check(in, out);
    const auto xs = nhwc(in[0].shape);
    const int64_t N = xs[0], H = xs[1], W = xs[2], C = xs[3];
    const int64_t OH = out[0].shape[1], OW = out[0].shape[2], CO = out[0].shape[3];
    const float* x = in[0].as<float>();
    const float* w = in[1].as<float>();
    const float* b = present(in, 2) ? in[2].as<float>() : nullptr;
    const float* r = present(in, 3) ? in[3].as<float>() : nullptr;
    // Codes only: Y in float32 in the workspace first.
    float* y = attrs_.codes_only ? static_cast<float*>(ctx.workspace) : out[0].as<float>();
    if (group_ == 1) {
      const int64_t K = k_[0] * k_[1] * C, rows = OH * OW;
      float* col = static_cast<float*>(ctx.workspace);
      for (int64_t n = 0; n < N; ++n) {
#pragma omp parallel for num_threads(ctx.threads) if (rows * K > 65536)
        for (int64_t row = 0; row < rows; ++row) {
          const int64_t oh = row / OW, ow = row % OW;
          float* dst = col + row * K;
          for (int64_t i = 0; i < k_[0]; ++i)
            for (int64_t j = 0; j < k_[1]; ++j) {
              const int64_t ih = oh * s_[0] - p_[0] + i, iw = ow * s_[1] - p_[1] + j;
              float* d = dst + (i * k_[1] + j) * C;
              if (ih < 0 || ih >= H || iw < 0 || iw >= W) std::memset(d, 0, C * sizeof(float));
              else if (nchw_)
                for (int64_t c = 0; c < C; ++c) d[c] = x[((n * C + c) * H + ih) * W + iw];
              else std::memcpy(d, x + ((n * H + ih) * W + iw) * C, C * sizeof(float));
            }
        }
        sgemm(false, false, rows, CO, K, 1.f, col, K, w, CO, 0.f, y + n * rows * CO, CO, ctx.threads);
      }
    } else {
#pragma omp parallel for num_threads(ctx.threads) if (N * OH > 1)
      for (int64_t nh = 0; nh < N * OH; ++nh) {
        const int64_t n = nh / OH, oh = nh % OH;
        for (int64_t ow = 0; ow < OW; ++ow) {
          float* yo = y + ((n * OH + oh) * OW + ow) * C;
          for (int64_t c = 0; c < C; ++c) yo[c] = 0.f;
          for (int64_t i = 0; i < k_[0]; ++i) {
            const int64_t ih = oh * s_[0] - p_[0] + i;
            if (ih < 0 || ih >= H) continue;
            for (int64_t j = 0; j < k_[1]; ++j) {
              const int64_t iw = ow * s_[1] - p_[1] + j;
              if (iw < 0 || iw >= W) continue;
              const float* xi = x + ((n * H + ih) * W + iw) * C;
              const float* wt = w + (i * k_[1] + j) * C;
              for (int64_t c = 0; c < C; ++c) yo[c] += xi[c] * wt[c];
            }
          }
        }
      }
    }
    const int64_t total = N * OH * OW;
    if (b || r) {
#pragma omp parallel for num_threads(ctx.threads) if (total * CO > 65536)
      for (int64_t m = 0; m < total; ++m)
        for (int64_t c = 0; c < CO; ++c) y[m * CO + c] += (b ? b[c] : 0.f) + (r ? r[m * CO + c] : 0.f);
    }
    if (attrs_.q_scale > 0.f) {
      uint8_t* q = out[attrs_.codes_only ? 0 : 1].as<uint8_t>();
      const float inv = 1.f / attrs_.q_scale;
      const bool fp8 = attrs_.q_dtype == DType::Float8E4M3FN;
      const int64_t n = total * CO;
#pragma omp parallel for num_threads(ctx.threads) if (n > 65536)
      for (int64_t i = 0; i < n; ++i)
        q[i] = fused_code(fp8, y[i], inv);
    }
  }

 private:
  void check(const std::vector<TensorView>& in, const std::vector<TensorView>& out) const {
    expect_float(in[0], "X");
    expect_float(in[1], "W");
    const auto xs = nhwc(in[0].shape);
    const auto& ws = in[1].shape;
    if (xs.size() != 4 || ws.size() != 4) fail("expects X [N, H, W, C] and W [kh, kw, C/group, Cout]");
    if (ws[0] != k_[0] || ws[1] != k_[1]) fail("weights " + dims_text(ws) + " do not match kernel_shape");
    if (group_ == 1 ? ws[2] != xs[3] : (group_ != xs[3] || ws[2] != 1 || ws[3] != xs[3]))
      fail("X " + dims_text(xs) + " and W " + dims_text(ws) + " with group " + std::to_string(group_) +
           ": only one group or depthwise (group == channels) are supported");
    const int64_t oh = (xs[1] + p_[0] + p_[2] - k_[0]) / s_[0] + 1, ow = (xs[2] + p_[1] + p_[3] - k_[1]) / s_[1] + 1;
    expect_shape(out[0], {xs[0], oh, ow, ws[3]}, "output");
    if (attrs_.q_scale > 0.f) {
      if (group_ == 1) fail("a quantized output (q_scale) needs a depthwise convolution");
      const TensorView& q = out[attrs_.codes_only ? 0 : 1];
      if (q.dtype != attrs_.q_dtype) fail(std::string("quantized output is ") + dtype_name(q.dtype) + ", " + dtype_name(attrs_.q_dtype) + " expected");
      expect_shape(q, out[0].shape, "quantized output");
      if (!attrs_.codes_only) expect_float(out[0], "output");
    } else {
      expect_float(out[0], "output");
    }
    if (present(in, 2) && in[2].numel() != ws[3]) fail("bias must hold one value per output channel");
    if (present(in, 3)) expect_shape(in[3], out[0].shape, "residual");
  }
  std::vector<int64_t> nhwc(const std::vector<int64_t>& s) const {
    if (!nchw_ || s.size() != 4) return s;
    return {s[0], s[2], s[3], s[1]};
  }
  const ConvNhwcAttrs attrs_;
  const std::vector<int64_t>&k_, &s_, &p_;  // kernel, strides, pads of attrs_
  const int64_t group_;
  const bool nchw_;
};
UNIRT_REGISTER_KERNEL(cpu, unirt.ConvNHWC, ConvNhwcKernel, "float32 int8 float8e4m3fn",
                      "channels-last X [N, H, W, C] 4-D, W [kh, kw, C/group, Cout]; NCHW input accepted with input_layout=NCHW (group 1 "
                      "only); depthwise: int8 / float8e4m3fn codes of Y (q_scale)");

}  // namespace
}  // namespace cpu
}  // namespace unirt
