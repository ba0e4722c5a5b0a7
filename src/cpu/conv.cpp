// Conv: depthwise convs run a direct loop (UniFormer's 3x3/5x5 position and attention convs);
// everything else is im2col + OpenBLAS sgemm per group (1x1 stride-1 convs skip im2col).
#include <algorithm>

#include "cpu/blas.h"
#include "cpu/cpu_util.h"

namespace unirt {
namespace cpu {
namespace {

class ConvKernel : public CpuKernel {
  // Per-call geometry: computed in run() from the shapes, so one kernel serves concurrent calls.
  struct Geo {
    int nsp = 2;
    int64_t batch = 0, cin = 0, cout = 0, ihw = 0, ohw = 0, ckk = 0;
    int64_t in[3], out[3], k[3], s[3], d[3], p[3];
    bool depthwise = false, pointwise = false;
  };

 public:
  explicit ConvKernel(const KernelCreateArgs& a) : CpuKernel(a) {
    group_ = a.node.attr_i("group", 1);
    auto_pad_ = a.node.attr_s("auto_pad", "NOTSET");
  }

  size_t prepare(const std::vector<TensorView>& in, const std::vector<TensorView>& out) override {
    const Geo G = setup(in, out);
    if (G.depthwise || G.pointwise) return 0;
    return static_cast<size_t>(G.ckk * G.ohw) * sizeof(float);
  }

  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_float(in[0], "input");
    expect_float(in[1], "weight");
    const Geo G = setup(in, out);
    const float* x = in[0].as<float>();
    const float* w = in[1].as<float>();
    const float* b = in.size() > 2 && in[2].data ? in[2].as<float>() : nullptr;
    float* y = out[0].as<float>();
    if (G.depthwise) return run_depthwise(G, x, w, b, y, ctx);
    std::vector<float> scratch;
    float* col = static_cast<float*>(ctx.workspace);
    if (!G.pointwise && (!col || ctx.workspace_bytes < static_cast<size_t>(G.ckk * G.ohw) * sizeof(float))) {
      scratch.resize(static_cast<size_t>(G.ckk * G.ohw));
      col = scratch.data();
    }
    const int64_t cin_g = G.cin / group_, cout_g = G.cout / group_;
    for (int64_t n = 0; n < G.batch; ++n) {
      float* yn = y + n * G.cout * G.ohw;
      if (b) {  // the bias seeds the output and the GEMM accumulates onto it (beta = 1)
#pragma omp parallel for num_threads(ctx.threads) if (G.cout * G.ohw > 32768)
        for (int64_t c = 0; c < G.cout; ++c) std::fill(yn + c * G.ohw, yn + (c + 1) * G.ohw, b[c]);
      }
      for (int64_t g = 0; g < group_; ++g) {
        const float* xg = x + (n * G.cin + g * cin_g) * G.ihw;
        const float* src = xg;
        if (!G.pointwise) {
          im2col(G, xg, cin_g, col, ctx);
          src = col;
        }
        sgemm(false, false, cout_g, G.ohw, G.ckk, 1.f, w + g * cout_g * G.ckk, G.ckk, src, G.ohw, b ? 1.f : 0.f,
              yn + g * cout_g * G.ohw, G.ohw, ctx.threads);
      }
    }
  }

 private:
  Geo setup(const std::vector<TensorView>& in, const std::vector<TensorView>& out) const {
    Geo G;
    const auto& xs = in[0].shape;
    const auto& ws = in[1].shape;
    const auto& ys = out[0].shape;
    if (xs.size() < 3 || xs.size() > 5 || ws.size() != xs.size())
      fail("input " + dims_text(xs) + " / weight " + dims_text(ws) + ": unsupported conv rank");
    G.nsp = static_cast<int>(xs.size()) - 2;
    if (ys.size() != xs.size()) fail("output shape " + dims_text(ys) + " has a different rank than input " + dims_text(xs));
    G.batch = xs[0];
    G.cin = xs[1];
    G.cout = ws[0];
    if (group_ <= 0 || G.cout % group_ != 0)
      fail("weight " + dims_text(ws) + " has " + std::to_string(G.cout) + " output channels, not divisible by group " + std::to_string(group_));
    if (in.size() > 2 && in[2].data && (in[2].dtype != DType::Float32 || in[2].shape != std::vector<int64_t>{G.cout}))
      fail("bias has shape " + dims_text(in[2].shape) + " (" + dtype_name(in[2].dtype) + "), expected float32 [" + std::to_string(G.cout) + "]");
    {
      const auto ks = node_.attr_ints("kernel_shape");
      if (!ks.empty() && std::vector<int64_t>(ws.begin() + 2, ws.end()) != ks)
        fail("kernel_shape " + dims_text(ks) + " does not match weight " + dims_text(ws));
    }
    if (ws[1] * group_ != G.cin)
      fail("input has " + std::to_string(G.cin) + " channels, weight " + dims_text(ws) + " with group " +
           std::to_string(group_) + " expects " + std::to_string(ws[1] * group_));
    auto strides = node_.attr_ints("strides", std::vector<int64_t>(G.nsp, 1));
    auto dil = node_.attr_ints("dilations", std::vector<int64_t>(G.nsp, 1));
    auto pads = node_.attr_ints("pads", std::vector<int64_t>(2 * G.nsp, 0));
    if (strides.size() != static_cast<size_t>(G.nsp) || dil.size() != static_cast<size_t>(G.nsp) || pads.size() != static_cast<size_t>(2 * G.nsp))
      fail("strides/dilations/pads do not match " + std::to_string(G.nsp) + " spatial dims");
    G.ihw = G.ohw = 1;
    G.ckk = ws[1];
    for (int i = 0; i < 3; ++i) {
      G.in[i] = G.out[i] = G.k[i] = G.s[i] = G.d[i] = 1;
      G.p[i] = 0;
    }
    for (int i = 0; i < G.nsp; ++i) {
      G.in[i] = xs[2 + i];
      G.out[i] = ys[2 + i];
      G.k[i] = ws[2 + i];
      G.s[i] = strides[i];
      G.d[i] = dil[i];
      G.p[i] = pads[i];
      if (auto_pad_ == "SAME_UPPER" || auto_pad_ == "SAME_LOWER") {
        int64_t total = std::max<int64_t>(0, (G.out[i] - 1) * G.s[i] + G.d[i] * (G.k[i] - 1) + 1 - G.in[i]);
        G.p[i] = auto_pad_ == "SAME_UPPER" ? total / 2 : total - total / 2;
      } else if (auto_pad_ == "VALID") {
        G.p[i] = 0;
      }
      const int64_t pe = auto_pad_ == "NOTSET" ? pads[i + G.nsp] : 0;
      const int64_t expect = auto_pad_ == "NOTSET" ? (G.in[i] + G.p[i] + pe - G.d[i] * (G.k[i] - 1) - 1) / G.s[i] + 1 : G.out[i];
      if (expect != G.out[i]) fail("output spatial dim " + std::to_string(G.out[i]) + " but the conv gives " + std::to_string(expect));
      G.ihw *= G.in[i];
      G.ohw *= G.out[i];
      G.ckk *= G.k[i];
    }
    if (ys.size() != xs.size() || ys[0] != G.batch || ys[1] != G.cout) fail("output shape " + dims_text(ys) + " does not match input/weight");
    G.depthwise = group_ == G.cin && group_ == G.cout && G.nsp == 2 && group_ > 1;
    G.pointwise = !G.depthwise && G.ckk == ws[1] && std::all_of(G.s, G.s + 3, [](int64_t v) { return v == 1; }) &&
                 std::all_of(G.p, G.p + 3, [](int64_t v) { return v == 0; }) && G.ihw == G.ohw;
    return G;
  }

  void im2col(const Geo& G, const float* x, int64_t cin_g, float* col, const RunContext& ctx) const {
    const int64_t kvol = G.k[0] * G.k[1] * G.k[2];
#pragma omp parallel for num_threads(ctx.threads)
    for (int64_t r = 0; r < cin_g * kvol; ++r) {
      const int64_t c = r / kvol;
      int64_t kk = r % kvol;
      const int64_t kz = kk % G.k[2], ky = (kk / G.k[2]) % G.k[1], kx = kk / (G.k[2] * G.k[1]);
      float* dst = col + r * G.ohw;
      const float* src = x + c * G.ihw;
      for (int64_t o0 = 0; o0 < G.out[0]; ++o0) {
        const int64_t i0 = o0 * G.s[0] - G.p[0] + kx * G.d[0];
        for (int64_t o1 = 0; o1 < G.out[1]; ++o1) {
          const int64_t i1 = o1 * G.s[1] - G.p[1] + ky * G.d[1];
          for (int64_t o2 = 0; o2 < G.out[2]; ++o2) {
            const int64_t i2 = o2 * G.s[2] - G.p[2] + kz * G.d[2];
            const bool inside = i0 >= 0 && i0 < G.in[0] && i1 >= 0 && i1 < G.in[1] && i2 >= 0 && i2 < G.in[2];
            *dst++ = inside ? src[(i0 * G.in[1] + i1) * G.in[2] + i2] : 0.f;
          }
        }
      }
    }
  }

  void run_depthwise(const Geo& G, const float* x, const float* w, const float* b, float* y, const RunContext& ctx) const {
    const int64_t H = G.in[0], W = G.in[1], OH = G.out[0], OW = G.out[1], KH = G.k[0], KW = G.k[1];
#pragma omp parallel for num_threads(ctx.threads)
    for (int64_t nc = 0; nc < G.batch * G.cin; ++nc) {
      const int64_t c = nc % G.cin;
      const float* xi = x + nc * H * W;
      const float* wk = w + c * KH * KW;
      float* yo = y + nc * OH * OW;
      const float bias = b ? b[c] : 0.f;
      for (int64_t oy = 0; oy < OH; ++oy) {
        for (int64_t ox = 0; ox < OW; ++ox) yo[oy * OW + ox] = bias;
        for (int64_t ky = 0; ky < KH; ++ky) {
          const int64_t iy = oy * G.s[0] - G.p[0] + ky * G.d[0];
          if (iy < 0 || iy >= H) continue;
          const float* row = xi + iy * W;
          for (int64_t kx = 0; kx < KW; ++kx) {
            const float wv = wk[ky * KW + kx];
            const int64_t off = kx * G.d[1] - G.p[1];
            // Output columns whose input column is inside the row.
            int64_t lo = off >= 0 ? 0 : (-off + G.s[1] - 1) / G.s[1];
            int64_t hi = (W - 1 - off) >= 0 ? std::min(OW, (W - 1 - off) / G.s[1] + 1) : 0;
            float* yr = yo + oy * OW;
            if (G.s[1] == 1) {
              const float* xr = row + off;
              for (int64_t ox = lo; ox < hi; ++ox) yr[ox] += wv * xr[ox];
            } else {
              for (int64_t ox = lo; ox < hi; ++ox) yr[ox] += wv * row[ox * G.s[1] + off];
            }
          }
        }
      }
    }
  }

  int64_t group_;
  std::string auto_pad_;
};

}  // namespace
UNIRT_REGISTER_KERNEL(cpu, Conv, ConvKernel, "float32", "NCHW-style N x C x 1..3 spatial dims (3-D to 5-D tensors)");
}  // namespace cpu
}  // namespace unirt
