// Resize (opset 11+): nearest and (multi-)linear over any axes, ONNX Runtime's coordinate rules.
// Each output index of each axis maps to source indices and a weight once (tables), then every
// output element mixes the 2^r source elements of its r linearly resized axes.
#include <cmath>

#include "cpu/cpu_util.h"
#include "backend/resize_rule.h"

namespace unirt {
namespace cpu {
namespace {

class ResizeKernel : public CpuKernel {
 public:
  explicit ResizeKernel(const KernelCreateArgs& a) : CpuKernel(a), rule_(ResizeRule::from_node(a.node)) {}

  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_float(in[0], "X");
    const auto& xs = in[0].shape;
    const auto& ys = out[0].shape;
    const size_t r = xs.size();
    if (ys.size() != r) fail("output " + dims_text(ys) + " and input " + dims_text(xs) + " differ in rank");
    std::vector<float> scales(r);
    const bool given = present(in, 2) && in[2].numel() > 0;
    if (given) {
      expect_float(in[2], "scales");
      if (in[2].numel() != static_cast<int64_t>(r)) fail("scales has " + std::to_string(in[2].numel()) + " values for rank " + std::to_string(r));
    }
    struct Axis {
      std::vector<int64_t> i0, i1;
      std::vector<float> w1;
      bool mixes = false;
    };
    std::vector<Axis> ax(r);
    for (size_t d = 0; d < r; ++d) {
      const float scale = given ? in[2].as<float>()[d] : static_cast<float>(ys[d]) / static_cast<float>(xs[d]);
      Axis& a = ax[d];
      a.i0.resize(ys[d]);
      a.i1.resize(ys[d]);
      a.w1.resize(ys[d]);
      for (int64_t o = 0; o < ys[d]; ++o) {
        const ResizeTap t = rule_.tap(o, xs[d], ys[d], scale);
        a.i0[o] = t.i0;
        a.i1[o] = t.i1;
        a.w1[o] = t.w1;
        a.mixes = a.mixes || t.i1 != t.i0;
      }
    }
    std::vector<size_t> mixing;
    for (size_t d = 0; d < r; ++d)
      if (ax[d].mixes) mixing.push_back(d);
    const std::vector<int64_t> xst = strides_of(xs);
    const int64_t n = out[0].numel();
    const float* x = in[0].as<float>();
    float* y = out[0].as<float>();
    const int64_t corners = int64_t{1} << mixing.size();
#pragma omp parallel for num_threads(ctx.threads) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) {
      int64_t rem = i, base = 0;
      int64_t coord[kMaxRank];
      for (int d = static_cast<int>(r) - 1; d >= 0; --d) {
        coord[d] = rem % ys[d];
        rem /= ys[d];
        base += ax[d].i0[coord[d]] * xst[d];
      }
      float acc = 0.f;
      for (int64_t c = 0; c < corners; ++c) {
        int64_t off = base;
        float w = 1.f;
        for (size_t m = 0; m < mixing.size(); ++m) {
          const Axis& a = ax[mixing[m]];
          const int64_t o = coord[mixing[m]];
          if (c >> m & 1) {
            off += (a.i1[o] - a.i0[o]) * xst[mixing[m]];
            w *= a.w1[o];
          } else {
            w *= 1.f - a.w1[o];
          }
        }
        acc += w * x[off];
      }
      y[i] = acc;
    }
  }

 private:
  static constexpr int kMaxRank = 32;
  ResizeRule rule_;
};

}  // namespace
UNIRT_REGISTER_KERNEL(cpu, Resize, ResizeKernel, "float32", "any rank; nearest or linear on any axes");

}  // namespace cpu
}  // namespace unirt
