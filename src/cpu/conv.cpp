// Conv: depthwise convs run a direct loop (UniFormer's 3x3/5x5 position and attention convs);
// everything else is im2col + OpenBLAS sgemm per group (1x1 stride-1 convs skip im2col).
#include <algorithm>

#include "cpu/blas.h"
#include "cpu/cpu_util.h"

namespace unirt {
namespace cpu {
namespace {

class ConvKernel : public CpuKernel {
 public:
  explicit ConvKernel(const KernelCreateArgs& a) : CpuKernel(a) {
    group_ = a.node.attr_i("group", 1);
    auto_pad_ = a.node.attr_s("auto_pad", "NOTSET");
  }

  size_t prepare(const std::vector<TensorView>& in, const std::vector<TensorView>& out) override {
    setup(in, out);
    if (depthwise_ || pointwise_) return 0;
    return static_cast<size_t>(ckk_ * ohw_) * sizeof(float);
  }

  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_float(in[0], "input");
    expect_float(in[1], "weight");
    setup(in, out);
    const float* x = in[0].as<float>();
    const float* w = in[1].as<float>();
    const float* b = in.size() > 2 && in[2].data ? in[2].as<float>() : nullptr;
    float* y = out[0].as<float>();
    if (depthwise_) return run_depthwise(x, w, b, y, ctx);
    std::vector<float> scratch;
    float* col = static_cast<float*>(ctx.workspace);
    if (!pointwise_ && (!col || ctx.workspace_bytes < static_cast<size_t>(ckk_ * ohw_) * sizeof(float))) {
      scratch.resize(static_cast<size_t>(ckk_ * ohw_));
      col = scratch.data();
    }
    const int64_t cin_g = cin_ / group_, cout_g = cout_ / group_;
    for (int64_t n = 0; n < batch_; ++n) {
      float* yn = y + n * cout_ * ohw_;
      if (b) {  // the bias seeds the output and the GEMM accumulates onto it (beta = 1)
#pragma omp parallel for num_threads(ctx.threads) if (cout_ * ohw_ > 32768)
        for (int64_t c = 0; c < cout_; ++c) std::fill(yn + c * ohw_, yn + (c + 1) * ohw_, b[c]);
      }
      for (int64_t g = 0; g < group_; ++g) {
        const float* xg = x + (n * cin_ + g * cin_g) * ihw_;
        const float* src = xg;
        if (!pointwise_) {
          im2col(xg, cin_g, col, ctx);
          src = col;
        }
        sgemm(false, false, cout_g, ohw_, ckk_, 1.f, w + g * cout_g * ckk_, ckk_, src, ohw_, b ? 1.f : 0.f,
              yn + g * cout_g * ohw_, ohw_, ctx.threads);
      }
    }
  }

 private:
  void setup(const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
    const auto& xs = in[0].shape;
    const auto& ws = in[1].shape;
    const auto& ys = out[0].shape;
    if (xs.size() < 3 || xs.size() > 5 || ws.size() != xs.size())
      fail("input " + shape_text(xs) + " / weight " + shape_text(ws) + ": unsupported conv rank");
    nsp_ = static_cast<int>(xs.size()) - 2;
    if (ys.size() != xs.size()) fail("output shape " + shape_text(ys) + " has a different rank than input " + shape_text(xs));
    batch_ = xs[0];
    cin_ = xs[1];
    cout_ = ws[0];
    if (group_ <= 0 || cout_ % group_ != 0)
      fail("weight " + shape_text(ws) + " has " + std::to_string(cout_) + " output channels, not divisible by group " + std::to_string(group_));
    if (in.size() > 2 && in[2].data && (in[2].dtype != DType::Float32 || in[2].shape != std::vector<int64_t>{cout_}))
      fail("bias has shape " + shape_text(in[2].shape) + " (" + dtype_name(in[2].dtype) + "), expected float32 [" + std::to_string(cout_) + "]");
    {
      const auto ks = node_.attr_ints("kernel_shape");
      if (!ks.empty() && std::vector<int64_t>(ws.begin() + 2, ws.end()) != ks)
        fail("kernel_shape " + shape_text(ks) + " does not match weight " + shape_text(ws));
    }
    if (ws[1] * group_ != cin_)
      fail("input has " + std::to_string(cin_) + " channels, weight " + shape_text(ws) + " with group " +
           std::to_string(group_) + " expects " + std::to_string(ws[1] * group_));
    auto strides = node_.attr_ints("strides", std::vector<int64_t>(nsp_, 1));
    auto dil = node_.attr_ints("dilations", std::vector<int64_t>(nsp_, 1));
    auto pads = node_.attr_ints("pads", std::vector<int64_t>(2 * nsp_, 0));
    if (strides.size() != static_cast<size_t>(nsp_) || dil.size() != static_cast<size_t>(nsp_) || pads.size() != static_cast<size_t>(2 * nsp_))
      fail("strides/dilations/pads do not match " + std::to_string(nsp_) + " spatial dims");
    ihw_ = ohw_ = 1;
    ckk_ = ws[1];
    for (int i = 0; i < 3; ++i) {
      in_[i] = out_[i] = k_[i] = s_[i] = d_[i] = 1;
      p_[i] = 0;
    }
    for (int i = 0; i < nsp_; ++i) {
      in_[i] = xs[2 + i];
      out_[i] = ys[2 + i];
      k_[i] = ws[2 + i];
      s_[i] = strides[i];
      d_[i] = dil[i];
      p_[i] = pads[i];
      if (auto_pad_ == "SAME_UPPER" || auto_pad_ == "SAME_LOWER") {
        int64_t total = std::max<int64_t>(0, (out_[i] - 1) * s_[i] + d_[i] * (k_[i] - 1) + 1 - in_[i]);
        p_[i] = auto_pad_ == "SAME_UPPER" ? total / 2 : total - total / 2;
      } else if (auto_pad_ == "VALID") {
        p_[i] = 0;
      }
      const int64_t pe = auto_pad_ == "NOTSET" ? pads[i + nsp_] : 0;
      const int64_t expect = auto_pad_ == "NOTSET" ? (in_[i] + p_[i] + pe - d_[i] * (k_[i] - 1) - 1) / s_[i] + 1 : out_[i];
      if (expect != out_[i]) fail("output spatial dim " + std::to_string(out_[i]) + " but the conv gives " + std::to_string(expect));
      ihw_ *= in_[i];
      ohw_ *= out_[i];
      ckk_ *= k_[i];
    }
    if (ys.size() != xs.size() || ys[0] != batch_ || ys[1] != cout_) fail("output shape " + shape_text(ys) + " does not match input/weight");
    depthwise_ = group_ == cin_ && group_ == cout_ && nsp_ == 2 && group_ > 1;
    pointwise_ = !depthwise_ && ckk_ == ws[1] && std::all_of(s_, s_ + 3, [](int64_t v) { return v == 1; }) &&
                 std::all_of(p_, p_ + 3, [](int64_t v) { return v == 0; }) && ihw_ == ohw_;
  }

  void im2col(const float* x, int64_t cin_g, float* col, const RunContext& ctx) const {
    const int64_t kvol = k_[0] * k_[1] * k_[2];
#pragma omp parallel for num_threads(ctx.threads)
    for (int64_t r = 0; r < cin_g * kvol; ++r) {
      const int64_t c = r / kvol;
      int64_t kk = r % kvol;
      const int64_t kz = kk % k_[2], ky = (kk / k_[2]) % k_[1], kx = kk / (k_[2] * k_[1]);
      float* dst = col + r * ohw_;
      const float* src = x + c * ihw_;
      for (int64_t o0 = 0; o0 < out_[0]; ++o0) {
        const int64_t i0 = o0 * s_[0] - p_[0] + kx * d_[0];
        for (int64_t o1 = 0; o1 < out_[1]; ++o1) {
          const int64_t i1 = o1 * s_[1] - p_[1] + ky * d_[1];
          for (int64_t o2 = 0; o2 < out_[2]; ++o2) {
            const int64_t i2 = o2 * s_[2] - p_[2] + kz * d_[2];
            const bool inside = i0 >= 0 && i0 < in_[0] && i1 >= 0 && i1 < in_[1] && i2 >= 0 && i2 < in_[2];
            *dst++ = inside ? src[(i0 * in_[1] + i1) * in_[2] + i2] : 0.f;
          }
        }
      }
    }
  }

  void run_depthwise(const float* x, const float* w, const float* b, float* y, const RunContext& ctx) const {
    const int64_t H = in_[0], W = in_[1], OH = out_[0], OW = out_[1], KH = k_[0], KW = k_[1];
#pragma omp parallel for num_threads(ctx.threads)
    for (int64_t nc = 0; nc < batch_ * cin_; ++nc) {
      const int64_t c = nc % cin_;
      const float* xi = x + nc * H * W;
      const float* wk = w + c * KH * KW;
      float* yo = y + nc * OH * OW;
      const float bias = b ? b[c] : 0.f;
      for (int64_t oy = 0; oy < OH; ++oy) {
        for (int64_t ox = 0; ox < OW; ++ox) yo[oy * OW + ox] = bias;
        for (int64_t ky = 0; ky < KH; ++ky) {
          const int64_t iy = oy * s_[0] - p_[0] + ky * d_[0];
          if (iy < 0 || iy >= H) continue;
          const float* row = xi + iy * W;
          for (int64_t kx = 0; kx < KW; ++kx) {
            const float wv = wk[ky * KW + kx];
            const int64_t off = kx * d_[1] - p_[1];
            // Output columns whose input column is inside the row.
            int64_t lo = off >= 0 ? 0 : (-off + s_[1] - 1) / s_[1];
            int64_t hi = (W - 1 - off) >= 0 ? std::min(OW, (W - 1 - off) / s_[1] + 1) : 0;
            float* yr = yo + oy * OW;
            if (s_[1] == 1) {
              const float* xr = row + off;
              for (int64_t ox = lo; ox < hi; ++ox) yr[ox] += wv * xr[ox];
            } else {
              for (int64_t ox = lo; ox < hi; ++ox) yr[ox] += wv * row[ox * s_[1] + off];
            }
          }
        }
      }
    }
  }

  int64_t group_;
  std::string auto_pad_;
  int nsp_ = 2;
  int64_t batch_ = 0, cin_ = 0, cout_ = 0, ihw_ = 0, ohw_ = 0, ckk_ = 0;
  int64_t in_[3], out_[3], k_[3], s_[3], d_[3], p_[3];
  bool depthwise_ = false, pointwise_ = false;
};

}  // namespace
UNIRT_REGISTER_KERNEL(cpu, Conv, ConvKernel);
}  // namespace cpu
}  // namespace unirt
