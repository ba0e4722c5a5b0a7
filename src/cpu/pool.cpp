// GlobalAveragePool, AveragePool and MaxPool over 1 to 3 spatial dims (NC + spatial layout).
// Output spatial sizes come from shape inference (ceil_mode included); the kernel derives
// the padding (explicit or auto_pad) and walks each window clipped to the input.
#include <cmath>
#include <limits>

#include "backend/pool_window.h"
#include "cpu/cpu_util.h"

namespace unirt {
namespace cpu {
namespace {

class GlobalAveragePoolKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_float(in[0], "input");
    const auto& xs = in[0].shape;
    if (xs.size() < 3) fail("input must be N x C x spatial..., has shape " + dims_text(xs));
    std::vector<int64_t> want(xs.size(), 1);
    want[0] = xs[0];
    want[1] = xs[1];
    expect_shape(out[0], want, "output");
    const int64_t nc = xs[0] * xs[1], sp = nc ? in[0].numel() / nc : 0;
    const float* x = in[0].as<float>();
    float* y = out[0].as<float>();
#pragma omp parallel for num_threads(ctx.threads) if (nc * sp > 16384)
    for (int64_t i = 0; i < nc; ++i) {
      double s = 0;
      for (int64_t j = 0; j < sp; ++j) s += x[i * sp + j];
      y[i] = static_cast<float>(s / static_cast<double>(sp));
    }
  }
};
UNIRT_REGISTER_KERNEL(cpu, GlobalAveragePool, GlobalAveragePoolKernel, "float32", "N x C x spatial (rank >= 3)");

template <bool MAX>
class PoolKernel : public CpuKernel {
 public:
  explicit PoolKernel(const KernelCreateArgs& a) : CpuKernel(a) {
    kernel_ = a.node.attr_ints("kernel_shape");
    if (kernel_.empty()) fail("kernel_shape attribute is required");
    auto_pad_ = a.node.attr_s("auto_pad", "NOTSET");
    include_pad_ = a.node.attr_i("count_include_pad", 0) != 0;
    storage_order_ = a.node.attr_i("storage_order", 0);
  }

  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const auto& xs = in[0].shape;
    const auto& ys = out[0].shape;
    const int nsp = static_cast<int>(xs.size()) - 2;
    if (nsp < 1 || nsp > 3) fail("input must be N x C x (1 to 3 spatial dims), has shape " + dims_text(xs));
    if (static_cast<int>(kernel_.size()) != nsp)
      fail("kernel_shape has " + std::to_string(kernel_.size()) + " dims for input " + dims_text(xs));
    if (ys.size() != xs.size() || ys[0] != xs[0] || ys[1] != xs[1])
      fail("output shape " + dims_text(ys) + " does not match input " + dims_text(xs));
    if (in[0].dtype != out[0].dtype) fail("output type differs from the input's");
    auto s = node_.attr_ints("strides", std::vector<int64_t>(nsp, 1));
    auto d = node_.attr_ints("dilations", std::vector<int64_t>(nsp, 1));
    auto p = node_.attr_ints("pads", std::vector<int64_t>(2 * nsp, 0));
    if (s.size() != static_cast<size_t>(nsp) || d.size() != static_cast<size_t>(nsp) || p.size() != static_cast<size_t>(2 * nsp))
      fail("strides/dilations/pads do not match " + std::to_string(nsp) + " spatial dims");
    // Leading spatial dims of size 1 make every case 3-D.
    Geo g;
    const int off = 3 - nsp;
    for (int i = 0; i < nsp; ++i) {
      const int j = off + i;
      g.in[j] = xs[2 + i];
      g.out[j] = ys[2 + i];
      g.k[j] = kernel_[i];
      g.s[j] = s[i];
      g.d[j] = d[i];
      g.pb[j] = p[i];
      g.pe[j] = p[i + nsp];
      if (auto_pad_ == "SAME_UPPER" || auto_pad_ == "SAME_LOWER") {
        const int64_t total = std::max<int64_t>(0, (g.out[j] - 1) * g.s[j] + g.d[j] * (g.k[j] - 1) + 1 - g.in[j]);
        g.pb[j] = auto_pad_ == "SAME_UPPER" ? total / 2 : total - total / 2;
        g.pe[j] = total - g.pb[j];
      } else if (auto_pad_ == "VALID") {
        g.pb[j] = g.pe[j] = 0;
      }
    }
    const bool want_idx = MAX && out.size() > 1 && out[1].data;
    if (want_idx) {
      expect_dtype(out[1], DType::Int64, "Indices output");
      expect_shape(out[1], ys, "Indices output");
    }
    const int64_t NC = xs[0] * xs[1];
    if constexpr (MAX) {
      int64_t* idx = want_idx ? out[1].as<int64_t>() : nullptr;
      switch (in[0].dtype) {
        case DType::Float32: return pool<float>(in[0].as<float>(), out[0].as<float>(), idx, NC, g, ctx);
        case DType::Float64: return pool<double>(in[0].as<double>(), out[0].as<double>(), idx, NC, g, ctx);
        case DType::Int8: return pool<int8_t>(in[0].as<int8_t>(), out[0].as<int8_t>(), idx, NC, g, ctx);
        case DType::Uint8: return pool<uint8_t>(in[0].as<uint8_t>(), out[0].as<uint8_t>(), idx, NC, g, ctx);
        default: unsupported_type(in[0], "input");
      }
    } else {
      expect_float(in[0], "input");
      pool<float>(in[0].as<float>(), out[0].as<float>(), nullptr, NC, g, ctx);
    }
  }

 private:
  struct Geo {
    int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1}, k[3] = {1, 1, 1}, s[3] = {1, 1, 1}, d[3] = {1, 1, 1};
    int64_t pb[3] = {0, 0, 0}, pe[3] = {0, 0, 0};
  };

  template <typename T>
  void pool(const T* x, T* y, int64_t* idx, int64_t NC, const Geo& g, const RunContext& ctx) const {
    const int64_t D = g.in[0], H = g.in[1], W = g.in[2];
    const int64_t OD = g.out[0], OH = g.out[1], OW = g.out[2];
    const int64_t isz = D * H * W, osz = OD * OH * OW;
    const bool include_pad = include_pad_;
    const int64_t order = storage_order_;
#pragma omp parallel for num_threads(ctx.threads) if (NC * osz > 4096)
    for (int64_t nc = 0; nc < NC; ++nc) {
      const T* xc = x + nc * isz;
      for (int64_t oz = 0; oz < OD; ++oz)
        for (int64_t oy = 0; oy < OH; ++oy)
          for (int64_t ox = 0; ox < OW; ++ox) {
            double acc = MAX ? -INFINITY : 0.0;
            int64_t best = -1;
            const int64_t z0 = oz * g.s[0] - g.pb[0], y0 = oy * g.s[1] - g.pb[1], x0 = ox * g.s[2] - g.pb[2];
            const TapRange tz = taps_within(z0, g.d[0], g.k[0], 0, D), ty = taps_within(y0, g.d[1], g.k[1], 0, H),
                           tx = taps_within(x0, g.d[2], g.k[2], 0, W);
            for (int64_t kz = tz.lo; kz < tz.hi; ++kz) {
              const int64_t iz = z0 + kz * g.d[0];
              for (int64_t ky = ty.lo; ky < ty.hi; ++ky) {
                const int64_t iy = y0 + ky * g.d[1];
                for (int64_t kx = tx.lo; kx < tx.hi; ++kx) {
                  const int64_t ix = x0 + kx * g.d[2];
                  const int64_t li = (iz * H + iy) * W + ix;
                  const double v = static_cast<double>(xc[li]);
                  if (MAX) {
                    if (v > acc || best < 0) {
                      acc = v;
                      best = order ? (ix * H + iy) * D + iz : li;
                    }
                  } else {
                    acc += v;
                  }
                }
              }
            }
            // count_include_pad counts the explicit padding, never the ceil_mode overhang past it.
            int64_t cnt = tz.count() * ty.count() * tx.count();
            if (include_pad)
              cnt = taps_within(z0, g.d[0], g.k[0], -g.pb[0], D + g.pe[0]).count() *
                    taps_within(y0, g.d[1], g.k[1], -g.pb[1], H + g.pe[1]).count() *
                    taps_within(x0, g.d[2], g.k[2], -g.pb[2], W + g.pe[2]).count();
            const int64_t o = ((nc * OD + oz) * OH + oy) * OW + ox;
            if (MAX) {
              y[o] = static_cast<T>(acc);
              if (idx) idx[o] = nc * isz + (best < 0 ? 0 : best);
            } else {
              y[o] = static_cast<T>(cnt ? acc / static_cast<double>(cnt) : 0.0);
            }
          }
    }
  }

  std::vector<int64_t> kernel_;
  std::string auto_pad_;
  bool include_pad_ = false;
  int64_t storage_order_ = 0;
};
using AveragePoolKernel = PoolKernel<false>;
using MaxPoolKernel = PoolKernel<true>;
UNIRT_REGISTER_KERNEL(cpu, AveragePool, AveragePoolKernel, "float32", "N x C x 1..3 spatial dims");
UNIRT_REGISTER_KERNEL(cpu, MaxPool, MaxPoolKernel, "float32 float64 int8 uint8", "N x C x 1..3 spatial dims");

}  // namespace
}  // namespace cpu
}  // namespace unirt
