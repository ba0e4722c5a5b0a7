// ReduceMean/ReduceSum/ReduceMax and the pools (GlobalAveragePool, AveragePool, MaxPool).
#include <cmath>

#include "cpu/cpu_util.h"

namespace unirt {
namespace cpu {
namespace {

enum class Red { Mean, Sum, Max };

class ReduceKernel : public CpuKernel {
 public:
  ReduceKernel(const KernelCreateArgs& a, Red r) : CpuKernel(a), red_(r) {}
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_float(in[0], "input");
    const auto& xs = in[0].shape;
    std::vector<int64_t> axes = in.size() > 1 && (in[1].data || in[1].host_values) ? ints(in[1]) : node_.attr_ints("axes");
    std::vector<bool> red(xs.size(), axes.empty());
    if (axes.empty() && node_.attr_i("noop_with_empty_axes", 0)) {
      std::memcpy(out[0].data, in[0].data, in[0].bytes());
      return;
    }
    for (int64_t a : axes) {
      if (a < 0) a += static_cast<int64_t>(xs.size());
      if (a < 0 || a >= static_cast<int64_t>(xs.size())) fail("axis out of range");
      red[a] = true;
    }
    // Output element index from an input index: drop reduced dims.
    std::vector<int64_t> ostride(xs.size(), 0);
    int64_t s = 1, count = 1;
    for (int i = static_cast<int>(xs.size()) - 1; i >= 0; --i) {
      if (red[i]) count *= xs[i];
      else {
        ostride[i] = s;
        s *= xs[i];
      }
    }
    if (out[0].numel() != s) fail("output shape " + shape_text(out[0].shape) + " does not match the reduction");
    float* y = out[0].as<float>();
    std::vector<double> acc(static_cast<size_t>(s), red_ == Red::Max ? -INFINITY : 0.0);
    const float* x = in[0].as<float>();
    std::vector<int64_t> st[1] = {ostride};
    // Reuse the broadcast walker: iterate the input, map to output offsets.
    for_each_broadcast<1>(xs, st, [&](int64_t i, const int64_t* off) {
      if (red_ == Red::Max) acc[off[0]] = std::max(acc[off[0]], static_cast<double>(x[i]));
      else acc[off[0]] += x[i];
    });
    for (int64_t i = 0; i < s; ++i) y[i] = static_cast<float>(red_ == Red::Mean ? acc[i] / count : acc[i]);
  }

 private:
  Red red_;
};
class ReduceMeanKernel : public ReduceKernel {
 public:
  explicit ReduceMeanKernel(const KernelCreateArgs& a) : ReduceKernel(a, Red::Mean) {}
};
class ReduceSumKernel : public ReduceKernel {
 public:
  explicit ReduceSumKernel(const KernelCreateArgs& a) : ReduceKernel(a, Red::Sum) {}
};
class ReduceMaxKernel : public ReduceKernel {
 public:
  explicit ReduceMaxKernel(const KernelCreateArgs& a) : ReduceKernel(a, Red::Max) {}
};
UNIRT_REGISTER_KERNEL(cpu, ReduceMean, ReduceMeanKernel);
UNIRT_REGISTER_KERNEL(cpu, ReduceSum, ReduceSumKernel);
UNIRT_REGISTER_KERNEL(cpu, ReduceMax, ReduceMaxKernel);

class GlobalAveragePoolKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_float(in[0], "input");
    const int64_t nc = in[0].shape[0] * in[0].shape[1], sp = nc ? in[0].numel() / nc : 0;
    const float* x = in[0].as<float>();
    float* y = out[0].as<float>();
#pragma omp parallel for num_threads(ctx.threads)
    for (int64_t i = 0; i < nc; ++i) {
      double s = 0;
      for (int64_t j = 0; j < sp; ++j) s += x[i * sp + j];
      y[i] = static_cast<float>(s / sp);
    }
  }
};
UNIRT_REGISTER_KERNEL(cpu, GlobalAveragePool, GlobalAveragePoolKernel);

// 2-D (and 1-D as H=1) average/max pooling with pads, strides, dilations, ceil_mode.
class PoolKernel : public CpuKernel {
 public:
  PoolKernel(const KernelCreateArgs& a, bool is_max) : CpuKernel(a), max_(is_max) {}
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_float(in[0], "input");
    const auto& xs = in[0].shape;
    const auto& ys = out[0].shape;
    const int nsp = static_cast<int>(xs.size()) - 2;
    if (nsp < 1 || nsp > 2) fail("3-D pooling is not supported (1-D and 2-D are), input " + shape_text(xs));
    auto k = node_.attr_ints("kernel_shape");
    auto s = node_.attr_ints("strides", std::vector<int64_t>(nsp, 1));
    auto d = node_.attr_ints("dilations", std::vector<int64_t>(nsp, 1));
    auto p = node_.attr_ints("pads", std::vector<int64_t>(2 * nsp, 0));
    const std::string ap = node_.attr_s("auto_pad", "NOTSET");
    auto dim = [&](const std::vector<int64_t>& v, int i, int64_t dflt) { return i < nsp ? v[i] : dflt; };
    const int64_t H = nsp == 2 ? xs[2] : 1, W = xs[nsp == 2 ? 3 : 2], OH = nsp == 2 ? ys[2] : 1, OW = ys[nsp == 2 ? 3 : 2];
    int64_t KH = nsp == 2 ? k[0] : 1, KW = k[nsp - 1], SH = nsp == 2 ? s[0] : 1, SW = s[nsp - 1];
    int64_t DH = nsp == 2 ? d[0] : 1, DW = d[nsp - 1];
    int64_t PH = nsp == 2 ? p[0] : 0, PW = p[nsp - 1], PHe = nsp == 2 ? p[2] : 0, PWe = p[2 * nsp - 1];
    (void)dim;
    if (ap == "SAME_UPPER" || ap == "SAME_LOWER") {
      auto same = [&](int64_t in, int64_t o, int64_t kk, int64_t st, int64_t dd, int64_t& pb, int64_t& pe) {
        int64_t total = std::max<int64_t>(0, (o - 1) * st + dd * (kk - 1) + 1 - in);
        pb = ap == "SAME_UPPER" ? total / 2 : total - total / 2;
        pe = total - pb;
      };
      same(H, OH, KH, SH, DH, PH, PHe);
      same(W, OW, KW, SW, DW, PW, PWe);
    } else if (ap == "VALID") {
      PH = PW = PHe = PWe = 0;
    }
    const bool include_pad = node_.attr_i("count_include_pad", 0) != 0;
    const int64_t NC = xs[0] * xs[1];
    const float* x = in[0].as<float>();
    float* y = out[0].as<float>();
#pragma omp parallel for num_threads(ctx.threads)
    for (int64_t nc = 0; nc < NC; ++nc) {
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox) {
          float acc = max_ ? -INFINITY : 0.f;
          int64_t cnt = 0;
          for (int64_t ky = 0; ky < KH; ++ky) {
            const int64_t iy = oy * SH - PH + ky * DH;
            for (int64_t kx = 0; kx < KW; ++kx) {
              const int64_t ix = ox * SW - PW + kx * DW;
              const bool inside = iy >= 0 && iy < H && ix >= 0 && ix < W;
              // Padding counts for count_include_pad only inside the explicitly padded area.
              const bool in_padded = iy >= -PH && iy < H + PHe && ix >= -PW && ix < W + PWe;
              if (inside) {
                const float v = x[(nc * H + iy) * W + ix];
                acc = max_ ? std::max(acc, v) : acc + v;
                ++cnt;
              } else if (include_pad && in_padded) {
                ++cnt;
              }
            }
          }
          y[(nc * OH + oy) * OW + ox] = max_ ? acc : (cnt ? acc / cnt : 0.f);
        }
    }
  }

 private:
  bool max_;
};
class AveragePoolKernel : public PoolKernel {
 public:
  explicit AveragePoolKernel(const KernelCreateArgs& a) : PoolKernel(a, false) {}
};
class MaxPoolKernel : public PoolKernel {
 public:
  explicit MaxPoolKernel(const KernelCreateArgs& a) : PoolKernel(a, true) {}
};
UNIRT_REGISTER_KERNEL(cpu, AveragePool, AveragePoolKernel);
UNIRT_REGISTER_KERNEL(cpu, MaxPool, MaxPoolKernel);

}  // namespace
}  // namespace cpu
}  // namespace unirt
