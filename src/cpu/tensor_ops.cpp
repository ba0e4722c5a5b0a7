// Data movement and shape ops. Element size is all that matters here, so they serve every dtype.
#include <numeric>

#include "cpu/cpu_util.h"

namespace unirt {
namespace cpu {
namespace {

std::vector<int64_t> strides_of(const std::vector<int64_t>& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (int i = static_cast<int>(s.size()) - 2; i >= 0; --i) st[i] = st[i + 1] * s[i + 1];
  return st;
}

// Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout: same bytes, new shape.
class CopyKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    if (in[0].numel() != out[0].numel())
      fail("input " + shape_text(in[0].shape) + " has " + std::to_string(in[0].numel()) + " elements, output " +
           shape_text(out[0].shape) + " needs " + std::to_string(out[0].numel()));
    if (in[0].dtype != out[0].dtype) fail("input and output types differ");
    if (out[0].data != in[0].data && in[0].bytes()) std::memcpy(out[0].data, in[0].data, in[0].bytes());
    if (out.size() > 1 && out[1].data) std::memset(out[1].data, 1, out[1].bytes());  // Dropout mask: all kept
  }
};
UNIRT_REGISTER_KERNEL(cpu, Reshape, CopyKernel);
UNIRT_REGISTER_KERNEL(cpu, Flatten, CopyKernel);
UNIRT_REGISTER_KERNEL(cpu, Squeeze, CopyKernel);
UNIRT_REGISTER_KERNEL(cpu, Unsqueeze, CopyKernel);
UNIRT_REGISTER_KERNEL(cpu, Identity, CopyKernel);
UNIRT_REGISTER_KERNEL(cpu, Dropout, CopyKernel);

// Generic strided gather: out[i] = in[offset(i)], with per-output-dim input strides.
void strided_copy(const TensorView& in, const TensorView& out, int64_t base, const std::vector<int64_t>& in_strides,
                  const RunContext& ctx) {
  const size_t es = dtype_size(out.dtype);
  const auto& os = out.shape;
  const int64_t n = out.numel();
  if (n == 0) return;
  const int r = static_cast<int>(os.size());
  const int64_t inner = r ? os[r - 1] : 1;
  const int64_t inner_stride = r ? in_strides[r - 1] : 0;
  const int64_t rows = n / inner;
  const char* src = in.as<char>();
  char* dst = out.as<char>();
#pragma omp parallel for num_threads(ctx.threads) if (n > 65536)
  for (int64_t row = 0; row < rows; ++row) {
    int64_t rem = row, off = base;
    for (int k = r - 2; k >= 0; --k) {
      off += (rem % os[k]) * in_strides[k];
      rem /= os[k];
    }
    char* d = dst + row * inner * es;
    if (inner_stride == 1) {
      std::memcpy(d, src + off * es, inner * es);
    } else {
      for (int64_t j = 0; j < inner; ++j) std::memcpy(d + j * es, src + (off + j * inner_stride) * es, es);
    }
  }
}

class TransposeKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const auto& xs = in[0].shape;
    auto perm = node_.attr_ints("perm");
    if (perm.empty())
      for (int64_t i = static_cast<int64_t>(xs.size()) - 1; i >= 0; --i) perm.push_back(i);
    if (perm.size() != xs.size()) fail("perm does not match input rank");
    auto st = strides_of(xs);
    std::vector<int64_t> ist(perm.size());
    for (size_t i = 0; i < perm.size(); ++i) {
      if (out[0].shape[i] != xs[perm[i]]) fail("output shape " + shape_text(out[0].shape) + " does not match perm");
      ist[i] = st[perm[i]];
    }
    strided_copy(in[0], out[0], 0, ist, ctx);
  }
};
UNIRT_REGISTER_KERNEL(cpu, Transpose, TransposeKernel);

class SliceKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const auto& xs = in[0].shape;
    std::vector<int64_t> starts, ends, axes, steps;
    if (opset_ < 10) {
      starts = node_.attr_ints("starts");
      ends = node_.attr_ints("ends");
      axes = node_.attr_ints("axes");
    } else {
      starts = ints(in[1]);
      ends = ints(in[2]);
      if (in.size() > 3 && (in[3].data || in[3].host_values)) axes = ints(in[3]);
      if (in.size() > 4 && (in[4].data || in[4].host_values)) steps = ints(in[4]);
    }
    if (axes.empty()) {
      axes.resize(starts.size());
      std::iota(axes.begin(), axes.end(), 0);
    }
    if (steps.empty()) steps.assign(starts.size(), 1);
    const size_t r = xs.size();
    std::vector<int64_t> begin(r, 0), step(r, 1), len(xs);
    for (size_t i = 0; i < starts.size(); ++i) {
      int64_t a = axes[i] < 0 ? axes[i] + static_cast<int64_t>(r) : axes[i];
      if (a < 0 || a >= static_cast<int64_t>(r)) fail("axis out of range");
      const int64_t d = xs[a], st = steps[i];
      if (st == 0) fail("step 0");
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
    if (len != out[0].shape) fail("slice gives " + shape_text(len) + ", output is " + shape_text(out[0].shape));
    auto st = strides_of(xs);
    int64_t base = 0;
    std::vector<int64_t> ist(r);
    for (size_t i = 0; i < r; ++i) {
      base += begin[i] * st[i];
      ist[i] = st[i] * step[i];
    }
    strided_copy(in[0], out[0], base, ist, ctx);
  }
};
UNIRT_REGISTER_KERNEL(cpu, Slice, SliceKernel);

class ConcatKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    const auto& os = out[0].shape;
    int64_t axis = node_.attr_i("axis");
    if (axis < 0) axis += static_cast<int64_t>(os.size());
    const size_t es = dtype_size(out[0].dtype);
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < axis; ++i) outer *= os[i];
    for (size_t i = axis + 1; i < os.size(); ++i) inner *= os[i];
    int64_t offset = 0, total = 0;
    for (const auto& t : in) {
      if (!t.data && t.numel()) fail("input has no data");
      if (t.dtype != out[0].dtype) fail("input types differ from the output");
      total += t.shape[axis];
    }
    if (total != os[axis]) fail("inputs add up to " + std::to_string(total) + " along the axis, output has " + std::to_string(os[axis]));
    for (const auto& t : in) {
      const int64_t chunk = t.shape[axis] * inner;
      for (int64_t o = 0; o < outer; ++o)
        std::memcpy(out[0].as<char>() + (o * os[axis] * inner + offset) * es, t.as<char>() + o * chunk * es, chunk * es);
      offset += chunk;
    }
  }
};
UNIRT_REGISTER_KERNEL(cpu, Concat, ConcatKernel);

class SplitKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    const auto& xs = in[0].shape;
    int64_t axis = node_.attr_i("axis", 0);
    if (axis < 0) axis += static_cast<int64_t>(xs.size());
    const size_t es = dtype_size(in[0].dtype);
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < axis; ++i) outer *= xs[i];
    for (size_t i = axis + 1; i < xs.size(); ++i) inner *= xs[i];
    int64_t offset = 0;
    for (const auto& t : out) {
      if (!t.data) continue;
      const int64_t chunk = t.shape[axis] * inner;
      for (int64_t o = 0; o < outer; ++o)
        std::memcpy(t.as<char>() + o * chunk * es, in[0].as<char>() + (o * xs[axis] * inner + offset) * es, chunk * es);
      offset += chunk;
    }
    if (offset != xs[axis] * inner) fail("split sizes do not add up to the input dimension");
  }
};
UNIRT_REGISTER_KERNEL(cpu, Split, SplitKernel);

class GatherKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    const auto& xs = in[0].shape;
    int64_t axis = node_.attr_i("axis", 0);
    if (axis < 0) axis += static_cast<int64_t>(xs.size());
    auto idx = ints(in[1]);
    const size_t es = dtype_size(in[0].dtype);
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < axis; ++i) outer *= xs[i];
    for (size_t i = axis + 1; i < xs.size(); ++i) inner *= xs[i];
    const int64_t n = xs[axis], ni = static_cast<int64_t>(idx.size());
    if (out[0].numel() != outer * ni * inner) fail("output shape " + shape_text(out[0].shape) + " does not match");
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t j = 0; j < ni; ++j) {
        int64_t k = idx[j] < 0 ? idx[j] + n : idx[j];
        if (k < 0 || k >= n) fail("index " + std::to_string(idx[j]) + " out of range [" + std::to_string(-n) + ", " + std::to_string(n) + ")");
        std::memcpy(out[0].as<char>() + ((o * ni + j) * inner) * es, in[0].as<char>() + ((o * n + k) * inner) * es, inner * es);
      }
  }
};
UNIRT_REGISTER_KERNEL(cpu, Gather, GatherKernel);

// Expand and Tile: broadcast-copy with per-dim source strides.
class ExpandKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    if (!broadcastable_to(in[0].shape, out[0].shape)) fail("input " + shape_text(in[0].shape) + " does not broadcast to " + shape_text(out[0].shape));
    strided_copy(in[0], out[0], 0, broadcast_strides(in[0].shape, out[0].shape), ctx);
  }
};
UNIRT_REGISTER_KERNEL(cpu, Expand, ExpandKernel);

class TileKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    const auto& xs = in[0].shape;
    const auto& os = out[0].shape;
    const size_t es = dtype_size(in[0].dtype);
    auto st = strides_of(xs);
    const int64_t n = out[0].numel();
    for (int64_t i = 0; i < n; ++i) {
      int64_t rem = i, off = 0;
      for (int k = static_cast<int>(os.size()) - 1; k >= 0; --k) {
        off += ((rem % os[k]) % xs[k]) * st[k];
        rem /= os[k];
      }
      std::memcpy(out[0].as<char>() + i * es, in[0].as<char>() + off * es, es);
    }
  }
};
UNIRT_REGISTER_KERNEL(cpu, Tile, TileKernel);

class PadKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const auto& xs = in[0].shape;
    const size_t r = xs.size();
    std::vector<int64_t> pads = opset_ < 11 ? node_.attr_ints("pads") : ints(in[1]);
    std::vector<int64_t> axes;
    if (in.size() > 3 && (in[3].data || in[3].host_values)) axes = ints(in[3]);
    else
      for (size_t i = 0; i < r; ++i) axes.push_back(static_cast<int64_t>(i));
    if (pads.size() != 2 * axes.size()) fail("pads has " + std::to_string(pads.size()) + " values for " + std::to_string(axes.size()) + " axes");
    std::vector<int64_t> pb(r, 0);
    for (size_t i = 0; i < axes.size(); ++i) {
      int64_t a = axes[i] < 0 ? axes[i] + static_cast<int64_t>(r) : axes[i];
      pb[a] = pads[i];
      if (xs[a] + pads[i] + pads[i + axes.size()] != out[0].shape[a]) fail("padded size does not match the output shape");
    }
    const std::string mode = node_.attr_s("mode", "constant");
    const size_t es = dtype_size(in[0].dtype);
    std::vector<char> value(es, 0);
    if (mode == "constant") {
      if (opset_ < 11) {
        float v = node_.attr_f("value", 0.f);
        if (in[0].dtype == DType::Float32) std::memcpy(value.data(), &v, 4);
      } else if (in.size() > 2 && in[2].data) {
        std::memcpy(value.data(), in[2].data, es);
      }
    }
    const auto& os = out[0].shape;
    auto st = strides_of(xs);
    const int64_t n = out[0].numel();
    const char* x = in[0].as<char>();
    char* y = out[0].as<char>();
#pragma omp parallel for num_threads(ctx.threads) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) {
      int64_t rem = i, off = 0;
      bool outside = false;
      for (int k = static_cast<int>(r) - 1; k >= 0; --k) {
        int64_t c = rem % os[k] - pb[k];
        rem /= os[k];
        if (c < 0 || c >= xs[k]) {
          if (mode == "constant" || xs[k] == 0) {
            outside = true;
            break;
          }
          if (mode == "edge") c = c < 0 ? 0 : xs[k] - 1;
          else {  // reflect
            const int64_t period = 2 * (xs[k] - 1);
            if (period == 0) c = 0;
            else {
              c = ((c % period) + period) % period;
              if (c >= xs[k]) c = period - c;
            }
          }
        }
        off += c * st[k];
      }
      std::memcpy(y + i * es, outside ? value.data() : x + off * es, es);
    }
  }
};
UNIRT_REGISTER_KERNEL(cpu, Pad, PadKernel);

class ShapeKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    const int64_t r = static_cast<int64_t>(in[0].shape.size());
    int64_t s = node_.attr_i("start", 0), e = node_.attr_i("end", r);
    if (s < 0) s += r;
    if (e < 0) e += r;
    s = std::clamp<int64_t>(s, 0, r);
    e = std::clamp<int64_t>(e, 0, r);
    for (int64_t i = s; i < e; ++i) out[0].as<int64_t>()[i - s] = in[0].shape[i];
  }
};
UNIRT_REGISTER_KERNEL(cpu, Shape, ShapeKernel);

class ConstantOfShapeKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    const size_t es = dtype_size(out[0].dtype);
    std::vector<uint8_t> v(es, 0);
    if (node_.has_attr("value")) {
      const TensorData& t = node_.attr_t("value");
      if (t.bytes.size() < es) fail("value attribute is empty");
      std::memcpy(v.data(), t.bytes.data(), es);
    }
    for (int64_t i = 0; i < out[0].numel(); ++i) std::memcpy(out[0].as<char>() + i * es, v.data(), es);
  }
};
UNIRT_REGISTER_KERNEL(cpu, ConstantOfShape, ConstantOfShapeKernel);

class RangeKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    const int64_t n = out[0].numel();
    switch (out[0].dtype) {
      case DType::Float32: {
        const float s = *in[0].as<float>(), d = *in[2].as<float>();
        for (int64_t i = 0; i < n; ++i) out[0].as<float>()[i] = s + i * d;
        break;
      }
      case DType::Int64:
      case DType::Int32: {
        const int64_t s = ints(in[0])[0], d = ints(in[2])[0];
        for (int64_t i = 0; i < n; ++i) {
          if (out[0].dtype == DType::Int64) out[0].as<int64_t>()[i] = s + i * d;
          else out[0].as<int32_t>()[i] = static_cast<int32_t>(s + i * d);
        }
        break;
      }
      default: fail(std::string("unsupported type ") + dtype_name(out[0].dtype));
    }
  }
};
UNIRT_REGISTER_KERNEL(cpu, Range, RangeKernel);

}  // namespace
}  // namespace cpu
}  // namespace unirt
