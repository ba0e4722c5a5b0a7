// Shape ops: Reshape, Flatten, Squeeze, Unsqueeze (same bytes, new shape, checked against the
// shape-like inputs), Shape, ConstantOfShape, Range and Constant.
#include <cmath>

#include "cpu/cpu_util.h"

namespace unirt {
namespace cpu {
namespace {

// Base: checks the output shape the runtime planned against the node's own rule, then copies.
class ViewKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    if (in[0].dtype != out[0].dtype) fail(std::string("output type ") + dtype_name(out[0].dtype) + " differs from the input's " + dtype_name(in[0].dtype));
    expect_shape(out[0], target(in), "output");
    if (out[0].data != in[0].data && in[0].bytes()) std::memcpy(out[0].data, in[0].data, in[0].bytes());
  }

 protected:
  virtual std::vector<int64_t> target(const std::vector<TensorView>& in) const = 0;
  std::vector<int64_t> axes_of(const std::vector<TensorView>& in) const {
    return present(in, 1) ? ints(in[1]) : node_.attr_ints("axes");
  }
};

class ReshapeKernel : public ViewKernel {
 public:
  explicit ReshapeKernel(const KernelCreateArgs& a) : ViewKernel(a), allowzero_(a.node.attr_i("allowzero", 0) != 0) {}

 protected:
  std::vector<int64_t> target(const std::vector<TensorView>& in) const override {
    const auto& xs = in[0].shape;
    std::vector<int64_t> s = present(in, 1) ? ints(in[1]) : node_.attr_ints("shape");
    int64_t known = 1, infer = -1;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == 0 && !allowzero_) {
        if (i >= xs.size()) fail("shape " + dims_text(s) + " copies dim " + std::to_string(i) + " of input " + dims_text(xs) + ", which has no such dim");
        s[i] = xs[i];
      }
      if (s[i] == -1) {
        if (infer >= 0) fail("shape " + dims_text(s) + " has more than one -1");
        infer = static_cast<int64_t>(i);
      } else if (s[i] < 0) {
        fail("shape " + dims_text(s) + " has a negative dim");
      } else {
        known *= s[i];
      }
    }
    if (infer >= 0) {
      if (known == 0 || in[0].numel() % known) fail("cannot reshape input " + dims_text(xs) + " to " + dims_text(s));
      s[infer] = in[0].numel() / known;
    }
    int64_t n = 1;
    for (auto d : s) n *= d;
    if (n != in[0].numel())
      fail("input " + dims_text(xs) + " has " + std::to_string(in[0].numel()) + " elements, target shape " + dims_text(s) + " has " + std::to_string(n));
    return s;
  }

 private:
  bool allowzero_;
};
UNIRT_REGISTER_KERNEL(cpu, Reshape, ReshapeKernel, "any");

class FlattenKernel : public ViewKernel {
 public:
  explicit FlattenKernel(const KernelCreateArgs& a) : ViewKernel(a), axis_(a.node.attr_i("axis", 1)) {}

 protected:
  std::vector<int64_t> target(const std::vector<TensorView>& in) const override {
    const auto& xs = in[0].shape;
    const int64_t r = static_cast<int64_t>(xs.size());
    const int64_t axis = axis_ < 0 ? axis_ + r : axis_;
    if (axis < 0 || axis > r) fail("axis " + std::to_string(axis_) + " is out of range for rank " + std::to_string(r));
    int64_t a = 1, b = 1;
    for (int64_t i = 0; i < r; ++i) (i < axis ? a : b) *= xs[i];
    return {a, b};
  }

 private:
  int64_t axis_;
};
UNIRT_REGISTER_KERNEL(cpu, Flatten, FlattenKernel, "any");

class SqueezeKernel : public ViewKernel {
 public:
  using ViewKernel::ViewKernel;

 protected:
  std::vector<int64_t> target(const std::vector<TensorView>& in) const override {
    const auto& xs = in[0].shape;
    const int64_t r = static_cast<int64_t>(xs.size());
    const auto axes = axes_of(in);
    std::vector<bool> drop(xs.size(), false);
    if (axes.empty()) {
      for (int64_t i = 0; i < r; ++i) drop[i] = xs[i] == 1;
    } else {
      for (auto a : axes) {
        const int64_t k = norm_axis(a, r);
        if (xs[k] != 1) fail("cannot squeeze axis " + std::to_string(a) + " of size " + std::to_string(xs[k]) + " (input " + dims_text(xs) + ")");
        drop[k] = true;
      }
    }
    std::vector<int64_t> s;
    for (int64_t i = 0; i < r; ++i)
      if (!drop[i]) s.push_back(xs[i]);
    return s;
  }
};
UNIRT_REGISTER_KERNEL(cpu, Squeeze, SqueezeKernel, "any");

class UnsqueezeKernel : public ViewKernel {
 public:
  using ViewKernel::ViewKernel;

 protected:
  std::vector<int64_t> target(const std::vector<TensorView>& in) const override {
    const auto& xs = in[0].shape;
    const auto axes = axes_of(in);
    const int64_t r = static_cast<int64_t>(xs.size() + axes.size());
    std::vector<bool> ins(r, false);
    for (auto a : axes) {
      const int64_t k = norm_axis(a, r);
      if (ins[k]) fail("axes repeat " + std::to_string(a));
      ins[k] = true;
    }
    std::vector<int64_t> s;
    size_t j = 0;
    for (int64_t i = 0; i < r; ++i) s.push_back(ins[i] ? 1 : xs[j++]);
    return s;
  }
};
UNIRT_REGISTER_KERNEL(cpu, Unsqueeze, UnsqueezeKernel, "any");

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
    expect_dtype(out[0], DType::Int64, "output");
    expect_shape(out[0], {std::max<int64_t>(0, e - s)}, "output");
    for (int64_t i = s; i < e; ++i) out[0].as<int64_t>()[i - s] = in[0].shape[i];
  }
};
UNIRT_REGISTER_KERNEL(cpu, Shape, ShapeKernel, "any");

class ConstantOfShapeKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    expect_shape(out[0], ints(in[0]), "output");
    const size_t es = dtype_size(out[0].dtype);
    std::vector<uint8_t> v(es, 0);
    if (node_.has_attr("value")) {
      const TensorData& t = node_.attr_t("value");
      if (t.dtype != out[0].dtype) fail(std::string("value has type ") + dtype_name(t.dtype) + ", output " + dtype_name(out[0].dtype));
      if (t.bytes.size() < es) fail("value attribute is empty");
      std::memcpy(v.data(), t.bytes.data(), es);
    } else if (out[0].dtype != DType::Float32) {
      fail(std::string("without a value the output is float32, planned as ") + dtype_name(out[0].dtype));
    }
    char* y = out[0].as<char>();
    for (int64_t i = 0; i < out[0].numel(); ++i) std::memcpy(y + i * es, v.data(), es);
  }
};
UNIRT_REGISTER_KERNEL(cpu, ConstantOfShape, ConstantOfShapeKernel, "any");

// Range: n = max(ceil((limit - start) / delta), 0) elements start + i * delta.
class RangeKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    for (int i = 0; i < 3; ++i) {
      if (in[i].dtype != out[0].dtype) fail("input " + std::to_string(i) + " has type " + dtype_name(in[i].dtype) + ", output " + dtype_name(out[0].dtype));
      if (in[i].numel() != 1) fail("input " + std::to_string(i) + " must be a scalar, has shape " + dims_text(in[i].shape));
    }
    switch (out[0].dtype) {
      case DType::Float32: return go_float<float>(in, out[0]);
      case DType::Float64: return go_float<double>(in, out[0]);
      case DType::Int64:
      case DType::Int32: {
        const int64_t s = ints(in[0])[0], l = ints(in[1])[0], d = ints(in[2])[0];
        if (d == 0) fail("delta must not be 0");
        const int64_t n = std::max<int64_t>(0, (l - s + d + (d > 0 ? -1 : 1)) / d);
        expect_shape(out[0], {n}, "output");
        for (int64_t i = 0; i < n; ++i) {
          if (out[0].dtype == DType::Int64) out[0].as<int64_t>()[i] = s + i * d;
          else out[0].as<int32_t>()[i] = static_cast<int32_t>(s + i * d);
        }
        return;
      }
      default: unsupported_type(out[0], "output");
    }
  }

 private:
  template <typename T>
  void go_float(const std::vector<TensorView>& in, const TensorView& out) const {
    const T s = *in[0].as<T>(), l = *in[1].as<T>(), d = *in[2].as<T>();
    if (d == 0) fail("delta must not be 0");
    const int64_t n = std::max<int64_t>(0, static_cast<int64_t>(std::ceil((l - s) / d)));
    expect_shape(out, {n}, "output");
    for (int64_t i = 0; i < n; ++i) out.as<T>()[i] = static_cast<T>(s + static_cast<T>(i) * d);
  }
};
UNIRT_REGISTER_KERNEL(cpu, Range, RangeKernel, "float32 float64 int64 int32");

// Constant: the importer folds these into values, but graphs built in code may still run one.
class ConstantKernel : public CpuKernel {
 public:
  explicit ConstantKernel(const KernelCreateArgs& a) : CpuKernel(a) {
    const Node& n = a.node;
    if (n.has_attr("value")) value_ = n.attr_t("value");
    else if (n.has_attr("value_float")) value_ = TensorData::from_float({n.attr_f("value_float", 0.f)}, {});
    else if (n.has_attr("value_floats")) value_ = TensorData::from_float(n.attr_floats("value_floats"), {static_cast<int64_t>(n.attr_floats("value_floats").size())});
    else if (n.has_attr("value_int")) value_ = TensorData::from_int64({n.attr_i("value_int", 0)}, {});
    else if (n.has_attr("value_ints")) value_ = TensorData::from_int64(n.attr_ints("value_ints"), {static_cast<int64_t>(n.attr_ints("value_ints").size())});
    else fail("needs one of value, value_float(s), value_int(s)");
  }
  void run(const std::vector<TensorView>&, const std::vector<TensorView>& out, const RunContext&) override {
    if (out[0].dtype != value_.dtype) fail(std::string("output planned as ") + dtype_name(out[0].dtype) + ", value is " + dtype_name(value_.dtype));
    expect_shape(out[0], value_.shape, "output");
    if (!value_.bytes.empty()) std::memcpy(out[0].data, value_.bytes.data(), value_.bytes.size());
  }

 private:
  TensorData value_;
};
UNIRT_REGISTER_KERNEL(cpu, Constant, ConstantKernel, "any");

}  // namespace
}  // namespace cpu
}  // namespace unirt
