// GlobalAveragePool, AveragePool and MaxPool (2-D, NCHW), float32 or float16 with float32 sums.
#include <cfloat>

#include "cuda/cuda_context.h"
#include "backend/pool_window.h"
#include "cuda/half_io.cuh"

namespace unirt {
namespace cuda {
namespace {

class GlobalAveragePoolKernel : public CudaKernel {
 public:
  using CudaKernel::CudaKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_floatish(in[0], "X");
    const auto& xs = in[0].shape;
    if (xs.size() < 3) fail("X must be N x C x spatial...");
    int64_t K = 1;
    for (size_t i = 2; i < xs.size(); ++i) K *= xs[i];
    reduce_axes(in[0].dtype, in[0].data, out[0].data, xs[0] * xs[1], K, 1, 0, stream_of(ctx));
    check_launch(node_);
  }
};
UNIRT_REGISTER_KERNEL(cuda, GlobalAveragePool, GlobalAveragePoolKernel, "float32 float16", "N x C x spatial (rank >= 3)");

struct PoolGeom {
  int64_t kh, kw, sh, sw, pt, pl, dh, dw, pb, pr;
};

template <typename T, bool kMax>
__global__ void pool2d(const T* x, T* y, int64_t n, int64_t H, int64_t W, int64_t OH, int64_t OW, PoolGeom g, bool count_pad) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t ox = i % OW, oy = (i / OW) % OH, plane = i / (OW * OH);
    const T* xp = x + plane * H * W;
    const int64_t y0 = oy * g.sh - g.pt, x0 = ox * g.sw - g.pl;
    const TapRange ty = taps_within(y0, g.dh, g.kh, 0, H), tx = taps_within(x0, g.dw, g.kw, 0, W);
    float acc = kMax ? -INFINITY : 0.f;
    for (int64_t ky = ty.lo; ky < ty.hi; ++ky) {
      const int64_t iy = y0 + ky * g.dh;
      for (int64_t kx = tx.lo; kx < tx.hi; ++kx) {
        const float v = ld(xp, iy * W + x0 + kx * g.dw);
        if (kMax) acc = fmaxf(acc, v);
        else acc += v;
      }
    }
    // count_include_pad counts explicit padding, never the ceil_mode overhang past it.
    const int64_t count = count_pad ? taps_within(y0, g.dh, g.kh, -g.pt, H + g.pb).count() * taps_within(x0, g.dw, g.kw, -g.pl, W + g.pr).count()
                                    : ty.count() * tx.count();
    st(y, i, kMax ? acc : (count ? acc / static_cast<float>(count) : 0.f));
  }
}

template <bool kMax>
class Pool2dKernel : public CudaKernel {
 public:
  explicit Pool2dKernel(const KernelCreateArgs& a) : CudaKernel(a) {}
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_floatish(in[0], "X");
    const auto& xs = in[0].shape;
    const auto& ys = out[0].shape;
    if (xs.size() != 4) fail("the CUDA backend pools 2-D (NCHW) inputs only, X is " + std::to_string(xs.size()) + "-D");
    if (out.size() > 1 && out[1].data) fail("MaxPool's Indices output is not supported on CUDA");
    auto k = node_.attr_ints("kernel_shape");
    auto s = node_.attr_ints("strides", {1, 1});
    auto p = node_.attr_ints("pads", {0, 0, 0, 0});
    auto d = node_.attr_ints("dilations", {1, 1});
    if (k.size() != 2 || s.size() != 2 || p.size() != 4 || d.size() != 2) fail("pool attributes must describe 2 spatial dims");
    const std::string ap = node_.attr_s("auto_pad", "NOTSET");
    if (ap == "SAME_UPPER" || ap == "SAME_LOWER") {
      for (int a = 0; a < 2; ++a) {
        const int64_t total = std::max<int64_t>(0, (ys[2 + a] - 1) * s[a] + (k[a] - 1) * d[a] + 1 - xs[2 + a]);
        p[a] = ap == "SAME_UPPER" ? total / 2 : total - total / 2;
        p[a + 2] = total - p[a];
      }
    } else if (ap == "VALID") {
      p = {0, 0, 0, 0};
    }
    PoolGeom g{k[0], k[1], s[0], s[1], p[0], p[1], d[0], d[1], p[2], p[3]};
    const bool count_pad = node_.attr_i("count_include_pad", 0) != 0;
    const int64_t n = out[0].numel();
    if (n == 0) return;
    cudaStream_t st = stream_of(ctx);
    if (in[0].dtype == DType::Float16)
      pool2d<__half, kMax><<<grid_for(n), 256, 0, st>>>(in[0].as<__half>(), out[0].as<__half>(), n, xs[2], xs[3], ys[2], ys[3], g, count_pad);
    else
      pool2d<float, kMax><<<grid_for(n), 256, 0, st>>>(in[0].as<float>(), out[0].as<float>(), n, xs[2], xs[3], ys[2], ys[3], g, count_pad);
    check_launch(node_);
  }
};
using MaxPoolKernel = Pool2dKernel<true>;
using AveragePoolKernel = Pool2dKernel<false>;
UNIRT_REGISTER_KERNEL(cuda, MaxPool, MaxPoolKernel, "float32 float16", "2-D NCHW only (4-D input)");
UNIRT_REGISTER_KERNEL(cuda, AveragePool, AveragePoolKernel, "float32 float16", "2-D NCHW only (4-D input)");

}  // namespace
}  // namespace cuda
}  // namespace unirt
