// Resize (opset 11+): nearest and linear over any axes of a tensor of rank <= 8, float32 or
// float16 (float32 arithmetic), one thread per output element, or per 16 bytes of an unresized
// innermost axis for nearest; the coordinate rule is backend/resize_rule.h, shared with the CPU.
#include <cstdint>

#include "backend/resize_rule.h"
#include "cuda/cuda_context.h"
#include "cuda/half_io.cuh"

namespace unirt {
namespace cuda {
namespace {

constexpr int kMaxRank = 8;

struct ResizeArgs {
  int rank;
  int64_t in[kMaxRank], out[kMaxRank], in_stride[kMaxRank];
  float scale[kMaxRank];
  int mixing[kMaxRank];  // axes whose output can mix two inputs (linear, size changes)
  int nmix;
};

template <typename T>
__global__ void resize_kernel(const T* x, T* y, int64_t n, ResizeArgs a, ResizeRule rule) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t rem = i, base = 0;
    int64_t step[kMaxRank];
    float w1[kMaxRank];
    for (int d = a.rank - 1; d >= 0; --d) {
      const int64_t o = rem % a.out[d];
      rem /= a.out[d];
      const ResizeTap t = rule.tap(o, a.in[d], a.out[d], a.scale[d]);
      base += t.i0 * a.in_stride[d];
      step[d] = (t.i1 - t.i0) * a.in_stride[d];
      w1[d] = t.w1;
    }
    float acc = 0.f;
    for (int c = 0; c < (1 << a.nmix); ++c) {
      int64_t off = base;
      float w = 1.f;
      for (int m = 0; m < a.nmix; ++m) {
        const int d = a.mixing[m];
        if (c >> m & 1) {
          off += step[d];
          w *= w1[d];
        } else {
          w *= 1.f - w1[d];
        }
      }
      acc += w * ld(x, off);
    }
    st(y, i, acc);
  }
}

// Nearest with the innermost axis kept (channels-last maps, the FPN's upsampling): every thread
// copies one 16-byte vector of a pixel's channels; 32-bit indices.
__global__ void resize_nearest_rows_v16(const uint4* x, uint4* y, int total, int vecs, ResizeArgs a, ResizeRule rule) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
    int rem = i / vecs;
    int src = 0, stride = 1;
    for (int d = a.rank - 2; d >= 0; --d) {
      const int o = rem % static_cast<int>(a.out[d]);
      rem /= static_cast<int>(a.out[d]);
      src += static_cast<int>(rule.tap(o, a.in[d], a.out[d], a.scale[d]).i0) * stride;
      stride *= static_cast<int>(a.in[d]);
    }
    y[i] = x[static_cast<int64_t>(src) * vecs + i % vecs];
  }
}

class ResizeKernel : public CudaKernel {
 public:
  explicit ResizeKernel(const KernelCreateArgs& a) : CudaKernel(a), rule_(ResizeRule::from_node(a.node)) {
    // Scales are a constant when given (the shape function requires it): read them once here.
    if (a.node.has_input(2)) {
      const Value& v = a.graph.value(a.node.inputs[2]);
      if (v.data && v.data->numel() > 0) scales_ = v.data->to_float();
    }
  }

  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_floatish(in[0], "X");
    if (out[0].dtype != in[0].dtype) fail("output type differs from the input type");
    const auto& xs = in[0].shape;
    const auto& ys = out[0].shape;
    if (xs.size() > static_cast<size_t>(kMaxRank) || ys.size() != xs.size())
      fail("input " + dims_text(xs) + " / output " + dims_text(ys) + ": rank up to 8 of one rank");
    if (!scales_.empty() && scales_.size() != xs.size()) fail("scales has " + std::to_string(scales_.size()) + " values for rank " + std::to_string(xs.size()));
    ResizeArgs a{};
    a.rank = static_cast<int>(xs.size());
    const std::vector<int64_t> st = strides_of(xs);
    for (int d = 0; d < a.rank; ++d) {
      a.in[d] = xs[d];
      a.out[d] = ys[d];
      a.in_stride[d] = st[d];
      a.scale[d] = scales_.empty() ? static_cast<float>(ys[d]) / static_cast<float>(xs[d]) : scales_[d];
      if (rule_.linear && xs[d] > 1 && (xs[d] != ys[d] || a.scale[d] != 1.f)) a.mixing[a.nmix++] = d;
    }
    const int64_t n = out[0].numel();
    if (n == 0) return;
    cudaStream_t s = stream_of(ctx);
    const int64_t row_bytes = xs.back() * static_cast<int64_t>(dtype_size(in[0].dtype));
    if (!rule_.linear && a.rank >= 2 && xs.back() == ys.back() && a.scale[a.rank - 1] == 1.f && row_bytes % 16 == 0 &&
        aligned16(in[0].data) && aligned16(out[0].data) && out[0].bytes() / 16 < INT32_MAX && in[0].bytes() / 16 < INT32_MAX) {
      const int vecs = static_cast<int>(row_bytes / 16), total = static_cast<int>(out[0].bytes() / 16);
      resize_nearest_rows_v16<<<grid_for(total), 256, 0, s>>>(static_cast<const uint4*>(in[0].data), static_cast<uint4*>(out[0].data), total,
                                                              vecs, a, rule_);
      check_launch(node_);
      return;
    }
    if (in[0].dtype == DType::Float16)
      resize_kernel<<<grid_for(n), 256, 0, s>>>(in[0].as<__half>(), out[0].as<__half>(), n, a, rule_);
    else
      resize_kernel<<<grid_for(n), 256, 0, s>>>(in[0].as<float>(), out[0].as<float>(), n, a, rule_);
    check_launch(node_);
  }

 private:
  ResizeRule rule_;
  std::vector<float> scales_;
};

}  // namespace
UNIRT_REGISTER_KERNEL(cuda, Resize, ResizeKernel, "float32 float16", "rank <= 8; nearest or linear on any axes");

}  // namespace cuda
}  // namespace unirt
