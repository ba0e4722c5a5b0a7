// ReduceMean / ReduceSum / ReduceMax / ReduceMin / ReduceProd, and Size. Axes are an attribute in older opsets and an optional
// input in newer ones (ReduceSum from 13, the rest from 18); both are accepted.
#include <cmath>
#include <limits>
#include <type_traits>

#include "cpu/cpu_util.h"

namespace unirt {
namespace cpu {
namespace {

enum class Red { Mean, Sum, Max, Min, Prod };

template <Red R>
class ReduceKernel : public CpuKernel {
 public:
  explicit ReduceKernel(const KernelCreateArgs& a)
      : CpuKernel(a), keepdims_(a.node.attr_i("keepdims", 1) != 0), noop_empty_(a.node.attr_i("noop_with_empty_axes", 0) != 0) {}

  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const auto& xs = in[0].shape;
    const int64_t rank = static_cast<int64_t>(xs.size());
    std::vector<int64_t> axes = present(in, 1) ? ints(in[1]) : node_.attr_ints("axes");
    if (in[0].dtype != out[0].dtype) fail("output type differs from the input's");
    if (axes.empty() && noop_empty_) {
      expect_shape(out[0], xs, "output");
      if (in[0].bytes()) std::memcpy(out[0].data, in[0].data, in[0].bytes());
      return;
    }
    std::vector<bool> red(xs.size(), axes.empty());
    for (int64_t a : axes) red[norm_axis(a, rank)] = true;
    std::vector<int64_t> want;
    for (int64_t i = 0; i < rank; ++i) {
      if (!red[i]) want.push_back(xs[i]);
      else if (keepdims_) want.push_back(1);
    }
    expect_shape(out[0], want, "output");
    switch (in[0].dtype) {
      case DType::Float32: return go<float, double>(in[0], out[0], red, ctx);
      case DType::Float64: return go<double, double>(in[0], out[0], red, ctx);
      case DType::Int64: return go<int64_t, int64_t>(in[0], out[0], red, ctx);
      case DType::Int32: return go<int32_t, int64_t>(in[0], out[0], red, ctx);
      default: unsupported_type(in[0], "input");
    }
  }

 private:
  template <typename T, typename Acc>
  void go(const TensorView& in, const TensorView& out, const std::vector<bool>& red, const RunContext& ctx) {
    const auto& xs = in.shape;
    const auto st = strides_of(xs);
    // Kept dims enumerate outputs; reduced dims give the offsets summed into each output.
    std::vector<int64_t> kdim, kst;
    int64_t count = 1;
    std::vector<int64_t> rdim, rst;
    for (size_t i = 0; i < xs.size(); ++i) {
      if (red[i]) {
        rdim.push_back(xs[i]);
        rst.push_back(st[i]);
        count *= xs[i];
      } else {
        kdim.push_back(xs[i]);
        kst.push_back(st[i]);
      }
    }
    const int64_t nout = out.numel();
    const T* x = in.as<T>();
    T* y = out.as<T>();
    // Reduced dims forming the contiguous tail (LayerNorm-style means) need no offset table.
    bool tail = true;
    for (size_t i = 0, seen = 0; i < xs.size(); ++i) {
      if (red[i]) seen = 1;
      else if (seen && xs[i] != 1) tail = false;
    }
    std::vector<int64_t> roff;
    if (!tail) {
      roff.resize(static_cast<size_t>(count));
      for (int64_t k = 0; k < count; ++k) {
        int64_t rem = k, off = 0;
        for (int j = static_cast<int>(rdim.size()) - 1; j >= 0; --j) {
          off += (rem % rdim[j]) * rst[j];
          rem /= rdim[j];
        }
        roff[k] = off;
      }
    }
    const int64_t* ro = roff.data();
    if ((R == Red::Max || R == Red::Min) && count == 0 && nout > 0) fail(node_.op_type + " over an empty dimension has no value");
#pragma omp parallel for num_threads(ctx.threads) if (nout * count > 16384 && nout > 1)
    for (int64_t o = 0; o < nout; ++o) {
      int64_t rem = o, base = 0;
      for (int j = static_cast<int>(kdim.size()) - 1; j >= 0; --j) {
        base += (rem % kdim[j]) * kst[j];
        rem /= kdim[j];
      }
      Acc acc = R == Red::Max ? static_cast<Acc>(std::numeric_limits<T>::lowest())
                : R == Red::Min ? static_cast<Acc>(std::numeric_limits<T>::max())
                : R == Red::Prod ? Acc{1} : Acc{0};
      if constexpr (R == Red::Max && std::is_floating_point<T>::value) acc = -INFINITY;
      if constexpr (R == Red::Min && std::is_floating_point<T>::value) acc = INFINITY;
      const T* xb = count ? x + base : x;  // an empty input may have no memory at all
      for (int64_t k = 0; k < count; ++k) {
        const Acc v = static_cast<Acc>(tail ? xb[k] : xb[ro[k]]);
        if constexpr (R == Red::Max) acc = (v > acc || v != v) ? v : acc;
        else if constexpr (R == Red::Min) acc = (v < acc || v != v) ? v : acc;
        else if constexpr (R == Red::Prod) acc *= v;
        else acc += v;
      }
      if constexpr (R == Red::Mean) acc = count ? static_cast<Acc>(acc / static_cast<Acc>(count)) : acc;
      y[o] = static_cast<T>(acc);
    }
  }
  bool keepdims_, noop_empty_;
};
using ReduceMeanKernel = ReduceKernel<Red::Mean>;
using ReduceSumKernel = ReduceKernel<Red::Sum>;
using ReduceMaxKernel = ReduceKernel<Red::Max>;
UNIRT_REGISTER_KERNEL(cpu, ReduceMean, ReduceMeanKernel, "float32 float64 int64 int32");
UNIRT_REGISTER_KERNEL(cpu, ReduceSum, ReduceSumKernel, "float32 float64 int64 int32");
UNIRT_REGISTER_KERNEL(cpu, ReduceMax, ReduceMaxKernel, "float32 float64 int64 int32");
using ReduceMinKernel = ReduceKernel<Red::Min>;
using ReduceProdKernel = ReduceKernel<Red::Prod>;
UNIRT_REGISTER_KERNEL(cpu, ReduceMin, ReduceMinKernel, "float32 float64 int64 int32");
UNIRT_REGISTER_KERNEL(cpu, ReduceProd, ReduceProdKernel, "float32 float64 int64 int32");

// Size: the element count of its input as an int64 scalar (normally a shape value the planner
// evaluates; this runs only where a graph feeds it data the build did not see).
class SizeKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    *out[0].as<int64_t>() = in[0].numel();
  }
};
UNIRT_REGISTER_KERNEL(cpu, Size, SizeKernel, "any");

}  // namespace
}  // namespace cpu
}  // namespace unirt
