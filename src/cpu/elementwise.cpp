// Element-wise ops: binary with numpy broadcasting, unary math, Cast, Where, Clip.
#include <algorithm>
#include <cmath>

#include "cpu/cpu_util.h"

namespace unirt {
namespace cpu {
namespace {

enum class Bin { Add, Sub, Mul, Div, Pow, Mod, FMod, Min, Max, Equal, Less, Greater };

template <typename T>
inline T apply_bin(Bin op, T a, T b) {
  switch (op) {
    case Bin::Add: return a + b;
    case Bin::Sub: return a - b;
    case Bin::Mul: return a * b;
    case Bin::Div: return a / b;
    case Bin::Pow: return static_cast<T>(std::pow(static_cast<double>(a), static_cast<double>(b)));
    case Bin::Min: return std::min(a, b);
    case Bin::Max: return std::max(a, b);
    case Bin::FMod: return static_cast<T>(std::fmod(static_cast<double>(a), static_cast<double>(b)));
    case Bin::Mod: {
      if constexpr (std::is_integral<T>::value) {
        T r = a % b;
        return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
      } else {
        T r = std::fmod(a, b);
        return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
      }
    }
    default: return T{};
  }
}

template <typename T>
inline bool apply_cmp(Bin op, T a, T b) {
  return op == Bin::Equal ? a == b : (op == Bin::Less ? a < b : a > b);
}

class BinaryKernel : public CpuKernel {
 public:
  BinaryKernel(const KernelCreateArgs& a, Bin op) : CpuKernel(a), op_(op) {
    if (op == Bin::Mod && a.node.attr_i("fmod", 0)) op_ = Bin::FMod;
  }
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    if (in[0].dtype != in[1].dtype)
      fail(std::string("inputs have types ") + dtype_name(in[0].dtype) + " and " + dtype_name(in[1].dtype));
    for (int i = 0; i < 2; ++i)
      if (!broadcastable_to(in[i].shape, out[0].shape))
        fail("input " + std::to_string(i) + " shape " + shape_text(in[i].shape) + " does not broadcast to " +
             shape_text(out[0].shape));
    switch (in[0].dtype) {
      case DType::Float32: return go<float>(in, out[0], ctx);
      case DType::Float64: return go<double>(in, out[0], ctx);
      case DType::Int64: return go<int64_t>(in, out[0], ctx);
      case DType::Int32: return go<int32_t>(in, out[0], ctx);
      default: fail(std::string("unsupported type ") + dtype_name(in[0].dtype));
    }
  }

 private:
  bool is_cmp() const { return op_ == Bin::Equal || op_ == Bin::Less || op_ == Bin::Greater; }
  template <typename T>
  void go(const std::vector<TensorView>& in, const TensorView& out, const RunContext& ctx) {
    const T* a = in[0].as<T>();
    const T* b = in[1].as<T>();
    const int64_t n = out.numel();
    const Bin op = op_;
    if (is_cmp()) {
      bool* o = out.as<bool>();
      std::vector<int64_t> st[2] = {broadcast_strides(in[0].shape, out.shape), broadcast_strides(in[1].shape, out.shape)};
      for_each_broadcast<2>(out.shape, st, [&](int64_t i, const int64_t* off) { o[i] = apply_cmp(op, a[off[0]], b[off[1]]); });
      return;
    }
    T* o = out.as<T>();
    const int64_t na = in[0].numel(), nb = in[1].numel();
    if (na == n && nb == n) {
#pragma omp parallel for num_threads(ctx.threads) if (n > 32768)
      for (int64_t i = 0; i < n; ++i) o[i] = apply_bin(op, a[i], b[i]);
      return;
    }
    if (na == n && nb == 1) {
      const T s = b[0];
#pragma omp parallel for num_threads(ctx.threads) if (n > 32768)
      for (int64_t i = 0; i < n; ++i) o[i] = apply_bin(op, a[i], s);
      return;
    }
    // a full, b repeats over leading dims (bias over the last dims: [.., C] + [C]).
    if (na == n && nb > 0 && n % nb == 0 && in[1].shape.size() <= out.shape.size() &&
        std::equal(in[1].shape.begin(), in[1].shape.end(), out.shape.end() - in[1].shape.size())) {
      const int64_t rows = n / nb;
#pragma omp parallel for num_threads(ctx.threads) if (n > 32768)
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < nb; ++j) o[r * nb + j] = apply_bin(op, a[r * nb + j], b[j]);
      return;
    }
    std::vector<int64_t> st[2] = {broadcast_strides(in[0].shape, out.shape), broadcast_strides(in[1].shape, out.shape)};
    for_each_broadcast<2>(out.shape, st, [&](int64_t i, const int64_t* off) { o[i] = apply_bin(op, a[off[0]], b[off[1]]); });
  }
  Bin op_;
};

#define BINARY(OP)                                                                  \
  class OP##Kernel : public BinaryKernel {                                          \
   public:                                                                          \
    explicit OP##Kernel(const KernelCreateArgs& a) : BinaryKernel(a, Bin::OP) {}    \
  };                                                                                \
  UNIRT_REGISTER_KERNEL(cpu, OP, OP##Kernel)
BINARY(Add);
BINARY(Sub);
BINARY(Mul);
BINARY(Div);
BINARY(Mod);
BINARY(Equal);
BINARY(Less);
BINARY(Greater);
#undef BINARY

// Min/Max are variadic in ONNX: fold pairwise through the broadcast output.
class MinMaxKernel : public CpuKernel {
 public:
  MinMaxKernel(const KernelCreateArgs& a, Bin op) : CpuKernel(a), op_(op) {}
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const TensorView& o = out[0];
    if (o.dtype != DType::Float32 && o.dtype != DType::Int64 && o.dtype != DType::Int32)
      fail(std::string("unsupported type ") + dtype_name(o.dtype));
    for (size_t k = 0; k < in.size(); ++k) {
      if (in[k].dtype != o.dtype) fail("inputs have different types");
      if (!broadcastable_to(in[k].shape, o.shape)) fail("input " + std::to_string(k) + " does not broadcast to the output");
      std::vector<int64_t> st[2] = {broadcast_strides(o.shape, o.shape), broadcast_strides(in[k].shape, o.shape)};
      auto step = [&](auto* po, const auto* pi) {
        for_each_broadcast<2>(o.shape, st, [&](int64_t i, const int64_t* off) {
          po[i] = k == 0 ? pi[off[1]] : apply_bin(op_, po[i], pi[off[1]]);
        });
      };
      if (o.dtype == DType::Float32) step(o.as<float>(), in[k].as<float>());
      else if (o.dtype == DType::Int64) step(o.as<int64_t>(), in[k].as<int64_t>());
      else step(o.as<int32_t>(), in[k].as<int32_t>());
    }
  }

 private:
  Bin op_;
};
class MinKernel : public MinMaxKernel {
 public:
  explicit MinKernel(const KernelCreateArgs& a) : MinMaxKernel(a, Bin::Min) {}
};
class MaxKernel : public MinMaxKernel {
 public:
  explicit MaxKernel(const KernelCreateArgs& a) : MinMaxKernel(a, Bin::Max) {}
};
UNIRT_REGISTER_KERNEL(cpu, Min, MinKernel);
UNIRT_REGISTER_KERNEL(cpu, Max, MaxKernel);

// ---- unary float ops ----
template <typename F>
class UnaryKernel : public CpuKernel {
 public:
  explicit UnaryKernel(const KernelCreateArgs& a) : CpuKernel(a), f_(a.node) {}
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_float(in[0], "input");
    if (in[0].shape != out[0].shape) fail("input shape " + shape_text(in[0].shape) + " differs from output " + shape_text(out[0].shape));
    const float* x = in[0].as<float>();
    float* y = out[0].as<float>();
    const int64_t n = in[0].numel();
#pragma omp parallel for num_threads(ctx.threads) if (n > 16384)
    for (int64_t i = 0; i < n; ++i) y[i] = f_(x[i]);
  }

 private:
  F f_;
};

#define UNARY(OP, EXPR)                                   \
  struct OP##Fn {                                         \
    explicit OP##Fn(const Node&) {}                       \
    float operator()(float x) const { return EXPR; }      \
  };                                                      \
  using OP##Kernel = UnaryKernel<OP##Fn>;                 \
  UNIRT_REGISTER_KERNEL(cpu, OP, OP##Kernel)
UNARY(Sqrt, std::sqrt(x));
UNARY(Erf, std::erf(x));
UNARY(Relu, x > 0.f ? x : 0.f);
UNARY(Sigmoid, 1.f / (1.f + std::exp(-x)));
UNARY(Tanh, std::tanh(x));
UNARY(Exp, std::exp(x));
UNARY(Log, std::log(x));
UNARY(Abs, std::fabs(x));
UNARY(Reciprocal, 1.f / x);
UNARY(Floor, std::floor(x));
UNARY(Ceil, std::ceil(x));
#undef UNARY

struct GeluFn {
  bool tanh_approx;
  explicit GeluFn(const Node& n) : tanh_approx(n.attr_s("approximate", "none") == "tanh") {}
  float operator()(float x) const {
    if (tanh_approx) return 0.5f * x * (1.f + std::tanh(0.7978845608f * (x + 0.044715f * x * x * x)));
    return 0.5f * x * (1.f + std::erf(x * 0.70710678118654752f));
  }
};
using GeluKernel = UnaryKernel<GeluFn>;
UNIRT_REGISTER_KERNEL(cpu, Gelu, GeluKernel);

// Neg and Abs are also used on integer shape arithmetic in node tests.
class NegKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    const int64_t n = in[0].numel();
    switch (in[0].dtype) {
      case DType::Float32: for (int64_t i = 0; i < n; ++i) out[0].as<float>()[i] = -in[0].as<float>()[i]; break;
      case DType::Int64: for (int64_t i = 0; i < n; ++i) out[0].as<int64_t>()[i] = -in[0].as<int64_t>()[i]; break;
      case DType::Int32: for (int64_t i = 0; i < n; ++i) out[0].as<int32_t>()[i] = -in[0].as<int32_t>()[i]; break;
      default: fail(std::string("unsupported type ") + dtype_name(in[0].dtype));
    }
  }
};
UNIRT_REGISTER_KERNEL(cpu, Neg, NegKernel);

class NotKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    expect_dtype(in[0], DType::Bool, "input");
    for (int64_t i = 0; i < in[0].numel(); ++i) out[0].as<bool>()[i] = !in[0].as<bool>()[i];
  }
};
UNIRT_REGISTER_KERNEL(cpu, Not, NotKernel);

class ClipKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    expect_float(in[0], "input");
    float lo = -INFINITY, hi = INFINITY;
    if (opset_ < 11) {
      lo = node_.attr_f("min", -INFINITY);
      hi = node_.attr_f("max", INFINITY);
    } else {
      if (in.size() > 1 && in[1].data) lo = *in[1].as<float>();
      if (in.size() > 2 && in[2].data) hi = *in[2].as<float>();
    }
    for (int64_t i = 0; i < in[0].numel(); ++i) out[0].as<float>()[i] = std::min(std::max(in[0].as<float>()[i], lo), hi);
  }
};
UNIRT_REGISTER_KERNEL(cpu, Clip, ClipKernel);

// ---- Cast ----
template <typename To>
To cast_one(const TensorView& t, int64_t i) {
  switch (t.dtype) {
    case DType::Float32: return static_cast<To>(t.as<float>()[i]);
    case DType::Float64: return static_cast<To>(t.as<double>()[i]);
    case DType::Float16: return static_cast<To>(half_to_float(t.as<uint16_t>()[i]));
    case DType::Int64: return static_cast<To>(t.as<int64_t>()[i]);
    case DType::Int32: return static_cast<To>(t.as<int32_t>()[i]);
    case DType::Int8: return static_cast<To>(t.as<int8_t>()[i]);
    case DType::Uint8: return static_cast<To>(t.as<uint8_t>()[i]);
    case DType::Bool: return static_cast<To>(t.as<bool>()[i]);
    default: return To{};
  }
}

class CastKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    const TensorView& x = in[0];
    const TensorView& y = out[0];
    if (!dtype_size(x.dtype) || x.dtype == DType::Undefined) fail("unsupported input type");
    const int64_t n = x.numel();
    for (int64_t i = 0; i < n; ++i) {
      switch (y.dtype) {
        case DType::Float32: y.as<float>()[i] = cast_one<float>(x, i); break;
        case DType::Float64: y.as<double>()[i] = cast_one<double>(x, i); break;
        case DType::Float16: y.as<uint16_t>()[i] = float_to_half(cast_one<float>(x, i)); break;
        case DType::Int64: y.as<int64_t>()[i] = cast_one<int64_t>(x, i); break;
        case DType::Int32: y.as<int32_t>()[i] = cast_one<int32_t>(x, i); break;
        case DType::Int8: y.as<int8_t>()[i] = cast_one<int8_t>(x, i); break;
        case DType::Uint8: y.as<uint8_t>()[i] = cast_one<uint8_t>(x, i); break;
        case DType::Bool: y.as<bool>()[i] = cast_one<float>(x, i) != 0.f; break;
        default: fail(std::string("cannot cast to ") + dtype_name(y.dtype));
      }
    }
  }
};
UNIRT_REGISTER_KERNEL(cpu, Cast, CastKernel);

// Pow allows different base and exponent types (opset 12+); computed in double, stored as the base's type.
class PowKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    for (int i = 0; i < 2; ++i) {
      if (in[i].dtype != DType::Float32 && in[i].dtype != DType::Float64 && in[i].dtype != DType::Int64 && in[i].dtype != DType::Int32)
        fail(std::string("unsupported type ") + dtype_name(in[i].dtype));
      if (!broadcastable_to(in[i].shape, out[0].shape)) fail("input " + std::to_string(i) + " does not broadcast to the output");
    }
    std::vector<int64_t> st[2] = {broadcast_strides(in[0].shape, out[0].shape), broadcast_strides(in[1].shape, out[0].shape)};
    const TensorView& y = out[0];
    for_each_broadcast<2>(y.shape, st, [&](int64_t i, const int64_t* off) {
      const double v = std::pow(cast_one<double>(in[0], off[0]), cast_one<double>(in[1], off[1]));
      switch (y.dtype) {
        case DType::Float32: y.as<float>()[i] = static_cast<float>(v); break;
        case DType::Float64: y.as<double>()[i] = v; break;
        case DType::Int64: y.as<int64_t>()[i] = static_cast<int64_t>(v); break;
        default: y.as<int32_t>()[i] = static_cast<int32_t>(v); break;
      }
    });
  }
};
UNIRT_REGISTER_KERNEL(cpu, Pow, PowKernel);

class WhereKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    expect_dtype(in[0], DType::Bool, "condition");
    const size_t es = dtype_size(out[0].dtype);
    for (int i = 0; i < 3; ++i)
      if (!broadcastable_to(in[i].shape, out[0].shape)) fail("input " + std::to_string(i) + " does not broadcast to the output");
    std::vector<int64_t> st[3] = {broadcast_strides(in[0].shape, out[0].shape), broadcast_strides(in[1].shape, out[0].shape),
                                  broadcast_strides(in[2].shape, out[0].shape)};
    const bool* c = in[0].as<bool>();
    const char* x = in[1].as<char>();
    const char* y = in[2].as<char>();
    char* o = out[0].as<char>();
    for_each_broadcast<3>(out[0].shape, st, [&](int64_t i, const int64_t* off) {
      std::memcpy(o + i * es, c[off[0]] ? x + off[1] * es : y + off[2] * es, es);
    });
  }
};
UNIRT_REGISTER_KERNEL(cpu, Where, WhereKernel);

}  // namespace

float half_to_float(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0) {
    if (mant == 0) bits = sign;
    else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while (!(mant & 0x400)) {
        mant <<= 1;
        --exp;
      }
      bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0));
  if (absx >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to inf
  if (absx < 0x38800000u) {  // subnormal half (or zero): round to nearest even
    float a;
    std::memcpy(&a, &absx, 4);
    const float scaled = a * 16777216.0f;  // 2^24: half subnormal unit
    uint32_t m = static_cast<uint32_t>(std::nearbyint(scaled));
    return static_cast<uint16_t>(sign | m);
  }
  uint32_t mant = absx & 0x7fffffu;
  uint32_t exp = (absx >> 23) - 127 + 15;
  uint32_t h = (exp << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) ++h;
  return static_cast<uint16_t>(sign | h);
}

}  // namespace cpu
}  // namespace unirt
