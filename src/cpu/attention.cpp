// unirt.Attention (from passes/fuse_attention.cpp): softmax(q k^T * scale) v per batch and head,
// q/k/v read in place from the packed [b, n, 3, heads, head_dim] qkv rows, output [b, n, heads*head_dim].
#include <cmath>

#include "backend/quantize_rule.h"
#include "cpu/blas.h"
#include "cpu/cpu_util.h"
#include "ir/fused_attrs.h"

namespace unirt {
namespace cpu {
namespace {

class AttentionKernel : public CpuKernel {
 public:
  explicit AttentionKernel(const KernelCreateArgs& a)
      : CpuKernel(a), attrs_(AttentionAttrs::of(a.node)), heads_(attrs_.num_heads), hd_(attrs_.head_dim), scale_(attrs_.scale) {}

  size_t prepare(const std::vector<TensorView>& in, const std::vector<TensorView>& out) override {
    check(in, out);
    const int64_t n = in[0].shape[1];
    return static_cast<size_t>(in[0].shape[0] * heads_ * n * n + (coded() ? out[0].numel() : 0)) * sizeof(float);
  }

  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    check(in, out);
    const int64_t B = in[0].shape[0], N = in[0].shape[1], C = heads_ * hd_;
    const float* qkv = in[0].as<float>();
    float* scores = static_cast<float*>(ctx.workspace);
    // q_scale: O in float32 after the scores, then its codes.
    float* y = coded() ? scores + B * heads_ * N * N : out[0].as<float>();
#pragma omp parallel for num_threads(ctx.threads) if (B * heads_ > 1)
    for (int64_t bh = 0; bh < B * heads_; ++bh) {
      const int64_t b = bh / heads_, h = bh % heads_;
      const float* q = qkv + b * N * 3 * C + h * hd_;
      const float* k = q + C;
      const float* v = q + 2 * C;
      float* s = scores + bh * N * N;
      sgemm(false, true, N, N, hd_, scale_, q, 3 * C, k, 3 * C, 0.f, s, N, 1);
      for (int64_t i = 0; i < N; ++i) {
        float* row = s + i * N;
        float mx = -INFINITY;
        for (int64_t j = 0; j < N; ++j) mx = std::max(mx, row[j]);
        float sum = 0.f;
        for (int64_t j = 0; j < N; ++j) sum += row[j] = std::exp(row[j] - mx);
        const float inv = 1.f / sum;
        for (int64_t j = 0; j < N; ++j) row[j] *= inv;
      }
      sgemm(false, false, N, hd_, N, 1.f, s, N, v, 3 * C, 0.f, y + b * N * C + h * hd_, C, 1);
    }
    if (!coded()) return;
    uint8_t* q = out[0].as<uint8_t>();
    const bool fp8 = attrs_.q_dtype == DType::Float8E4M3FN;
    const int64_t n = B * N * C;
    const float inv = 1.f / attrs_.q_scale;
    for (int64_t i = 0; i < n; ++i) q[i] = fused_code(fp8, y[i], inv);
  }

 private:
  void check(const std::vector<TensorView>& in, const std::vector<TensorView>& out) const {
    expect_float(in[0], "qkv");
    const auto& s = in[0].shape;
    if (s.size() != 3 || s[2] != 3 * heads_ * hd_)
      fail("qkv has shape " + dims_text(s) + ", expected [batch, tokens, " + std::to_string(3 * heads_ * hd_) + "]");
    expect_shape(out[0], {s[0], s[1], heads_ * hd_}, "output");
    if (coded() ? out[0].dtype != attrs_.q_dtype : out[0].dtype != DType::Float32)
      fail(std::string("output is ") + dtype_name(out[0].dtype) + ", " + dtype_name(coded() ? attrs_.q_dtype : DType::Float32) + " expected");
  }
  bool coded() const { return attrs_.q_scale > 0.f; }
  const AttentionAttrs attrs_;
  const int64_t heads_, hd_;
  const float scale_;
};
UNIRT_REGISTER_KERNEL(cpu, unirt.Attention, AttentionKernel, "float32 int8 float8e4m3fn",
                      "qkv 3-D [batch, tokens, 3*heads*head_dim]; int8 / float8e4m3fn output codes (q_scale)");

}  // namespace
}  // namespace cpu
}  // namespace unirt
