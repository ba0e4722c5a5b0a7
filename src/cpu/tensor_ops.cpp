// Data movement: Transpose, Slice, Concat, Split, Gather, Expand, Tile, Pad. Only the element
// size matters here, so every dtype is served.
#include <numeric>

#include "cpu/cpu_util.h"

namespace unirt {
namespace cpu {
namespace {

template <typename T>
void copy_rows(const char* src, char* dst, const std::vector<int64_t>& os, int64_t base, const std::vector<int64_t>& ist,
               int64_t rows, int64_t inner, int threads) {
  const int r = static_cast<int>(os.size());
  const int64_t istride = r ? ist[r - 1] : 0;
  const T* s = reinterpret_cast<const T*>(src);
  T* d = reinterpret_cast<T*>(dst);
#pragma omp parallel for num_threads(threads) if (rows * inner > 65536 && rows > 1)
  for (int64_t row = 0; row < rows; ++row) {
    int64_t rem = row, off = base;
    for (int k = r - 2; k >= 0; --k) {
      off += (rem % os[k]) * ist[k];
      rem /= os[k];
    }
    T* dr = d + row * inner;
    if (istride == 1) {
      std::memcpy(dr, s + off, inner * sizeof(T));
    } else {
      for (int64_t j = 0; j < inner; ++j) dr[j] = s[off + j * istride];
    }
  }
}

// out[i] = in[base + sum(idx_k * in_strides[k])]: transposes, slices and broadcasts.
// Adjacent output dims that stay adjacent in the input are merged first.
void strided_copy(const TensorView& in, const TensorView& out, int64_t base, const std::vector<int64_t>& in_strides,
                  const RunContext& ctx) {
  const size_t es = dtype_size(out.dtype);
  const int64_t n = out.numel();
  if (n == 0) return;
  std::vector<int64_t> os, ist;
  for (size_t k = 0; k < out.shape.size(); ++k) {
    if (out.shape[k] == 1) continue;
    if (!os.empty() && ist.back() == in_strides[k] * out.shape[k]) {
      os.back() *= out.shape[k];
      ist.back() = in_strides[k];
    } else {
      os.push_back(out.shape[k]);
      ist.push_back(in_strides[k]);
    }
  }
  if (os.empty()) {
    os.push_back(1);
    ist.push_back(1);
  }
  const int64_t inner = os.back(), rows = n / inner;
  const char* src = in.as<char>();
  char* dst = out.as<char>();
  switch (es) {
    case 1: return copy_rows<uint8_t>(src, dst, os, base, ist, rows, inner, ctx.threads);
    case 2: return copy_rows<uint16_t>(src, dst, os, base, ist, rows, inner, ctx.threads);
    case 4: return copy_rows<uint32_t>(src, dst, os, base, ist, rows, inner, ctx.threads);
    case 8: return copy_rows<uint64_t>(src, dst, os, base, ist, rows, inner, ctx.threads);
    default: throw Error(std::string("strided copy: unsupported element type ") + dtype_name(out.dtype));
  }
}

class TransposeKernel : public CpuKernel {
 public:
  explicit TransposeKernel(const KernelCreateArgs& a) : CpuKernel(a), perm_(a.node.attr_ints("perm")) {}
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const auto& xs = in[0].shape;
    const int64_t r = static_cast<int64_t>(xs.size());
    auto perm = perm_;
    if (perm.empty())
      for (int64_t i = r - 1; i >= 0; --i) perm.push_back(i);
    if (static_cast<int64_t>(perm.size()) != r) fail("perm has " + std::to_string(perm.size()) + " entries for input rank " + std::to_string(r));
    if (in[0].dtype != out[0].dtype) fail("output type differs from the input's");
    auto st = strides_of(xs);
    std::vector<int64_t> ist(perm.size()), want(perm.size());
    std::vector<bool> used(perm.size(), false);
    for (size_t i = 0; i < perm.size(); ++i) {
      const int64_t p = norm_axis(perm[i], r, "perm entry");
      if (used[p]) fail("perm repeats axis " + std::to_string(p));
      used[p] = true;
      want[i] = xs[p];
      ist[i] = st[p];
    }
    expect_shape(out[0], want, "output");
    strided_copy(in[0], out[0], 0, ist, ctx);
  }

 private:
  std::vector<int64_t> perm_;
};
UNIRT_REGISTER_KERNEL(cpu, Transpose, TransposeKernel, "any");

class SliceKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const auto& xs = in[0].shape;
    std::vector<int64_t> starts, ends, axes, steps;
    if (present(in, 1)) {
      starts = ints(in[1]);
      if (!present(in, 2)) fail("ends input is missing");
      ends = ints(in[2]);
      if (present(in, 3)) axes = ints(in[3]);
      if (present(in, 4)) steps = ints(in[4]);
    } else {  // opset < 10: attributes
      starts = node_.attr_ints("starts");
      ends = node_.attr_ints("ends");
      axes = node_.attr_ints("axes");
    }
    if (ends.size() != starts.size()) fail("starts and ends differ in length");
    if (axes.empty()) {
      axes.resize(starts.size());
      std::iota(axes.begin(), axes.end(), 0);
    }
    if (steps.empty()) steps.assign(starts.size(), 1);
    if (axes.size() != starts.size() || steps.size() != starts.size()) fail("starts/ends/axes/steps differ in length");
    const int64_t r = static_cast<int64_t>(xs.size());
    std::vector<int64_t> begin(r, 0), step(r, 1), len(xs);
    for (size_t i = 0; i < starts.size(); ++i) {
      const int64_t a = norm_axis(axes[i], r);
      const int64_t d = xs[a], st = steps[i];
      if (st == 0) fail("step must not be 0");
      int64_t s = starts[i], e = ends[i];
      if (s < 0) s += d;
      if (e < 0) e += d;
      if (st > 0) {
        s = std::clamp<int64_t>(s, 0, d);
        e = std::clamp<int64_t>(e, 0, d);
        len[a] = std::max<int64_t>(0, (e - s + st - 1) / st);
      } else {
        s = std::clamp<int64_t>(s, 0, d - 1);
        e = std::clamp<int64_t>(e, -1, d - 1);
        len[a] = std::max<int64_t>(0, (s - e + (-st) - 1) / (-st));
      }
      begin[a] = s;
      step[a] = st;
    }
    expect_shape(out[0], len, "output");
    auto st = strides_of(xs);
    int64_t base = 0;
    std::vector<int64_t> ist(r);
    for (int64_t i = 0; i < r; ++i) {
      if (len[i] > 0) base += begin[i] * st[i];
      ist[i] = st[i] * step[i];
    }
    strided_copy(in[0], out[0], base, ist, ctx);
  }
};
UNIRT_REGISTER_KERNEL(cpu, Slice, SliceKernel, "any");

class ConcatKernel : public CpuKernel {
 public:
  explicit ConcatKernel(const KernelCreateArgs& a) : CpuKernel(a), axis_(a.node.attr_i("axis")) {}
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    const auto& os = out[0].shape;
    const int64_t axis = norm_axis(axis_, static_cast<int64_t>(os.size()));
    const size_t es = dtype_size(out[0].dtype);
    int64_t outer = 1, inner = 1, total = 0;
    for (int64_t i = 0; i < axis; ++i) outer *= os[i];
    for (size_t i = axis + 1; i < os.size(); ++i) inner *= os[i];
    for (size_t k = 0; k < in.size(); ++k) {
      const auto& t = in[k];
      if (t.dtype != out[0].dtype) fail("input " + std::to_string(k) + " has type " + dtype_name(t.dtype) + ", output " + dtype_name(out[0].dtype));
      auto want = os;
      if (t.shape.size() != os.size()) fail("input " + std::to_string(k) + " has shape " + dims_text(t.shape) + ", rank differs from output " + dims_text(os));
      want[axis] = t.shape[axis];
      expect_shape(t, want, ("input " + std::to_string(k)).c_str());
      if (!t.data && t.numel()) fail("input " + std::to_string(k) + " has no data");
      total += t.shape[axis];
    }
    if (total != os[axis]) fail("inputs add up to " + std::to_string(total) + " along axis " + std::to_string(axis) + ", output has " + std::to_string(os[axis]));
    int64_t offset = 0;
    for (const auto& t : in) {
      const int64_t chunk = t.shape[axis] * inner;
      if (chunk)
        for (int64_t o = 0; o < outer; ++o)
          std::memcpy(out[0].as<char>() + (o * os[axis] * inner + offset) * es, t.as<char>() + o * chunk * es, chunk * es);
      offset += chunk;
    }
  }

 private:
  int64_t axis_;
};
UNIRT_REGISTER_KERNEL(cpu, Concat, ConcatKernel, "any");

// Split: the output shapes (from shape inference) carry the sizes; `split` is checked against them.
class SplitKernel : public CpuKernel {
 public:
  explicit SplitKernel(const KernelCreateArgs& a) : CpuKernel(a), axis_(a.node.attr_i("axis", 0)) {}
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    const auto& xs = in[0].shape;
    const int64_t axis = norm_axis(axis_, static_cast<int64_t>(xs.size()));
    std::vector<int64_t> split = present(in, 1) ? ints(in[1]) : node_.attr_ints("split");
    if (!split.empty() && split.size() != out.size())
      fail("split has " + std::to_string(split.size()) + " sizes for " + std::to_string(out.size()) + " outputs");
    const size_t es = dtype_size(in[0].dtype);
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < axis; ++i) outer *= xs[i];
    for (size_t i = axis + 1; i < xs.size(); ++i) inner *= xs[i];
    int64_t total = 0;
    for (size_t k = 0; k < out.size(); ++k) {
      auto want = xs;
      want[axis] = out[k].shape.size() == xs.size() ? out[k].shape[axis] : -1;
      if (!split.empty()) want[axis] = split[k];
      expect_shape(out[k], want, ("output " + std::to_string(k)).c_str());
      total += want[axis];
    }
    if (total != xs[axis]) fail("split sizes add up to " + std::to_string(total) + ", the input has " + std::to_string(xs[axis]) + " along axis " + std::to_string(axis));
    int64_t offset = 0;
    for (const auto& t : out) {
      const int64_t chunk = t.shape[axis] * inner;
      if (t.data && chunk)
        for (int64_t o = 0; o < outer; ++o)
          std::memcpy(t.as<char>() + o * chunk * es, in[0].as<char>() + (o * xs[axis] * inner + offset) * es, chunk * es);
      offset += chunk;
    }
  }

 private:
  int64_t axis_;
};
UNIRT_REGISTER_KERNEL(cpu, Split, SplitKernel, "any");

class GatherKernel : public CpuKernel {
 public:
  explicit GatherKernel(const KernelCreateArgs& a) : CpuKernel(a), axis_(a.node.attr_i("axis", 0)) {}
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const auto& xs = in[0].shape;
    const int64_t axis = norm_axis(axis_, static_cast<int64_t>(xs.size()));
    const auto idx = ints(in[1]);
    std::vector<int64_t> want(xs.begin(), xs.begin() + axis);
    want.insert(want.end(), in[1].shape.begin(), in[1].shape.end());
    want.insert(want.end(), xs.begin() + axis + 1, xs.end());
    expect_shape(out[0], want, "output");
    if (in[0].dtype != out[0].dtype) fail("output type differs from the data's");
    const size_t es = dtype_size(in[0].dtype);
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < axis; ++i) outer *= xs[i];
    for (size_t i = axis + 1; i < xs.size(); ++i) inner *= xs[i];
    const int64_t n = xs[axis], ni = static_cast<int64_t>(idx.size());
    for (int64_t j = 0; j < ni; ++j)
      if (idx[j] < -n || idx[j] >= n)
        fail("index " + std::to_string(idx[j]) + " is out of range [" + std::to_string(-n) + ", " + std::to_string(n) + ")");
    if (outer * ni * inner == 0) return;  // an empty output: nothing to copy (and its data may be null)
    const char* x = in[0].as<char>();
    char* y = out[0].as<char>();
#pragma omp parallel for num_threads(ctx.threads) if (outer * ni * inner > 65536)
    for (int64_t oj = 0; oj < outer * ni; ++oj) {
      const int64_t o = oj / ni, j = oj % ni;
      const int64_t k = idx[j] < 0 ? idx[j] + n : idx[j];
      std::memcpy(y + oj * inner * es, x + (o * n + k) * inner * es, inner * es);
    }
  }

 private:
  int64_t axis_;
};
UNIRT_REGISTER_KERNEL(cpu, Gather, GatherKernel, "any");

class ExpandKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    if (in[0].dtype != out[0].dtype) fail("output type differs from the input's");
    if (present(in, 1)) {
      // The output is the broadcast of the input and the requested shape.
      const auto shape = ints(in[1]);
      const size_t r = std::max(shape.size(), in[0].shape.size());
      std::vector<int64_t> want(r, 1);
      for (size_t i = 0; i < r; ++i) {
        const int64_t a = i + in[0].shape.size() >= r ? in[0].shape[i + in[0].shape.size() - r] : 1;
        const int64_t b = i + shape.size() >= r ? shape[i + shape.size() - r] : 1;
        if (a != b && a != 1 && b != 1) fail("input " + dims_text(in[0].shape) + " does not broadcast with shape " + dims_text(shape));
        want[i] = a == 1 ? b : a;
      }
      expect_shape(out[0], want, "output");
    }
    if (!broadcastable_to(in[0].shape, out[0].shape))
      fail("input " + dims_text(in[0].shape) + " does not broadcast to " + dims_text(out[0].shape));
    strided_copy(in[0], out[0], 0, broadcast_strides(in[0].shape, out[0].shape), ctx);
  }
};
UNIRT_REGISTER_KERNEL(cpu, Expand, ExpandKernel, "any");

class TileKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const auto& xs = in[0].shape;
    const auto& os = out[0].shape;
    if (in[0].dtype != out[0].dtype) fail("output type differs from the input's");
    const auto reps = ints(in[1]);
    if (reps.size() != xs.size()) fail("repeats has " + std::to_string(reps.size()) + " values for input rank " + std::to_string(xs.size()));
    std::vector<int64_t> want(xs.size());
    for (size_t i = 0; i < xs.size(); ++i) {
      if (reps[i] < 0) fail("repeats must be non-negative");
      want[i] = xs[i] * reps[i];
    }
    expect_shape(out[0], want, "output");
    const size_t es = dtype_size(in[0].dtype);
    const auto st = strides_of(xs);
    const int64_t n = out[0].numel();
    if (n == 0) return;
    const int r = static_cast<int>(os.size());
    const int64_t inner = r ? os[r - 1] : 1, xin = r ? xs[r - 1] : 1, rows = n / inner;
    const char* x = in[0].as<char>();
    char* y = out[0].as<char>();
#pragma omp parallel for num_threads(ctx.threads) if (n > 65536)
    for (int64_t row = 0; row < rows; ++row) {
      int64_t rem = row, off = 0;
      for (int k = r - 2; k >= 0; --k) {
        off += ((rem % os[k]) % xs[k]) * st[k];
        rem /= os[k];
      }
      char* d = y + row * inner * es;
      for (int64_t j = 0; j < inner; j += xin) std::memcpy(d + j * es, x + off * es, xin * es);
    }
  }
};
UNIRT_REGISTER_KERNEL(cpu, Tile, TileKernel, "any");

// Pad: constant, reflect, edge and wrap; negative pads crop.
class PadKernel : public CpuKernel {
 public:
  explicit PadKernel(const KernelCreateArgs& a) : CpuKernel(a), mode_(a.node.attr_s("mode", "constant")) {
    if (mode_ == "constant") kind_ = Mode::Constant;
    else if (mode_ == "reflect") kind_ = Mode::Reflect;
    else if (mode_ == "edge") kind_ = Mode::Edge;
    else if (mode_ == "wrap") kind_ = Mode::Wrap;
    else fail("mode \"" + mode_ + "\" is not supported (constant, reflect, edge, wrap)");
  }
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const auto& xs = in[0].shape;
    const int64_t r = static_cast<int64_t>(xs.size());
    if (in[0].dtype != out[0].dtype) fail("output type differs from the input's");
    const bool attr_form = !present(in, 1);  // opset < 11: pads and value are attributes
    std::vector<int64_t> pads = attr_form ? node_.attr_ints("pads") : ints(in[1]);
    std::vector<int64_t> axes;
    if (present(in, 3)) {
      axes = ints(in[3]);
    } else {
      axes.resize(r);
      std::iota(axes.begin(), axes.end(), 0);
    }
    if (pads.size() != 2 * axes.size()) fail("pads has " + std::to_string(pads.size()) + " values for " + std::to_string(axes.size()) + " axes");
    std::vector<int64_t> pb(r, 0), want(xs);
    for (size_t i = 0; i < axes.size(); ++i) {
      const int64_t a = norm_axis(axes[i], r);
      pb[a] = pads[i];
      want[a] = xs[a] + pads[i] + pads[i + axes.size()];
      if (kind_ != Mode::Constant && xs[a] == 0 && want[a] > 0) fail("cannot " + mode_ + "-pad an empty dimension");
    }
    expect_shape(out[0], want, "output");
    const size_t es = dtype_size(in[0].dtype);
    std::vector<char> value(es, 0);
    if (kind_ == Mode::Constant) {
      if (attr_form) {
        const float v = node_.attr_f("value", 0.f);
        if (in[0].dtype == DType::Float32) std::memcpy(value.data(), &v, 4);
        else if (in[0].dtype == DType::Float64) {
          const double dv = v;
          std::memcpy(value.data(), &dv, 8);
        }
      } else if (in.size() > 2 && in[2].data && in[2].numel() > 0) {
        if (in[2].dtype != in[0].dtype) fail(std::string("constant_value has type ") + dtype_name(in[2].dtype) + ", data " + dtype_name(in[0].dtype));
        std::memcpy(value.data(), in[2].data, es);
      }
    }
    const auto& os = out[0].shape;
    const auto st = strides_of(xs);
    const int64_t n = out[0].numel();
    if (n == 0) return;
    const int64_t inner = r ? os[r - 1] : 1, rows = n / inner;
    const int64_t xin = r ? xs[r - 1] : 1, pin = r ? pb[r - 1] : 0;
    const char* x = in[0].as<char>();
    char* y = out[0].as<char>();
    const bool constant = kind_ == Mode::Constant;
#pragma omp parallel for num_threads(ctx.threads) if (n > 65536)
    for (int64_t row = 0; row < rows; ++row) {
      char* d = y + row * inner * es;
      int64_t rem = row, off = 0;
      bool outside = false;
      for (int64_t k = r - 2; k >= 0 && !outside; --k) {
        int64_t c = map(rem % os[k] - pb[k], xs[k], outside);
        rem /= os[k];
        off += c * st[k];
      }
      if (outside) {
        for (int64_t j = 0; j < inner; ++j) std::memcpy(d + j * es, value.data(), es);
        continue;
      }
      if (constant) {  // fill, copy the inside span, fill
        const int64_t lo = std::clamp<int64_t>(pin, 0, inner), hi = std::clamp<int64_t>(pin + xin, 0, inner);
        for (int64_t j = 0; j < lo; ++j) std::memcpy(d + j * es, value.data(), es);
        if (hi > lo) std::memcpy(d + lo * es, x + (off + lo - pin) * es, (hi - lo) * es);
        for (int64_t j = std::max(hi, lo); j < inner; ++j) std::memcpy(d + j * es, value.data(), es);
      } else {
        for (int64_t j = 0; j < inner; ++j) {
          bool o = false;
          const int64_t c = map(j - pin, xin, o);
          std::memcpy(d + j * es, x + (off + c) * es, es);
        }
      }
    }
  }

 private:
  // Input coordinate for padded coordinate c (may lie outside [0, n)).
  int64_t map(int64_t c, int64_t n, bool& outside) const {
    if (c >= 0 && c < n) return c;
    if (kind_ == Mode::Constant) {
      outside = true;
      return 0;
    }
    if (kind_ == Mode::Edge) return c < 0 ? 0 : n - 1;
    if (kind_ == Mode::Wrap) return ((c % n) + n) % n;
    const int64_t period = 2 * (n - 1);  // reflect, without repeating the edge
    if (period == 0) return 0;
    c = ((c % period) + period) % period;
    return c >= n ? period - c : c;
  }
  enum class Mode { Constant, Reflect, Edge, Wrap };
  std::string mode_;
  Mode kind_ = Mode::Constant;
};
UNIRT_REGISTER_KERNEL(cpu, Pad, PadKernel, "any");

}  // namespace
}  // namespace cpu
}  // namespace unirt
