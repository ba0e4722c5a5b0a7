// Binary element-wise ops with numpy broadcasting: arithmetic (Add, Sub, Mul, Div, Mod, Pow),
// variadic Min/Max, comparisons (Equal, Less, Greater) and logic (And, Or, Xor), plus Where.
// Float32 carries the model; integer types serve shape arithmetic and the ONNX node tests.
#include <cmath>
#include <type_traits>

#include "cpu/cpu_util.h"

namespace unirt {
namespace cpu {
namespace {

enum class Bin { Add, Sub, Mul, Div, Mod, FMod, Min, Max, Equal, Less, Greater, GreaterOrEqual, LessOrEqual, And, Or, Xor };

// Signed integers wrap like two's complement hardware (and numpy) instead of overflowing: C++
// leaves a signed overflow undefined, and INT_MIN / -1 traps the process.
template <typename T>
constexpr bool wraps = std::is_integral<T>::value && std::is_signed<T>::value && !std::is_same<T, bool>::value;
template <typename T>
using Unsigned = std::make_unsigned_t<std::conditional_t<wraps<T>, T, int>>;

template <Bin OP, typename T>
inline auto apply(T a, T b) {
  if constexpr (wraps<T> && (OP == Bin::Add || OP == Bin::Sub || OP == Bin::Mul)) {
    const Unsigned<T> x = static_cast<Unsigned<T>>(a), y = static_cast<Unsigned<T>>(b);
    return static_cast<T>(OP == Bin::Add ? x + y : OP == Bin::Sub ? x - y : x * y);
  } else if constexpr (wraps<T> && (OP == Bin::Div || OP == Bin::Mod || OP == Bin::FMod)) {
    if (b == -1) return static_cast<T>(OP == Bin::Div ? static_cast<T>(Unsigned<T>{0} - static_cast<Unsigned<T>>(a)) : T{0});
    if constexpr (OP == Bin::Div) return static_cast<T>(a / b);
    else if constexpr (OP == Bin::FMod) return static_cast<T>(a % b);
    else {
      const T r = static_cast<T>(a % b);
      return static_cast<T>((r != 0 && ((r < 0) != (b < 0))) ? r + b : r);
    }
  } else if constexpr (OP == Bin::Add) return static_cast<T>(a + b);
  else if constexpr (OP == Bin::Sub) return static_cast<T>(a - b);
  else if constexpr (OP == Bin::Mul) return static_cast<T>(a * b);
  else if constexpr (OP == Bin::Div) return static_cast<T>(a / b);
  else if constexpr (OP == Bin::Min) return a < b || (std::is_floating_point<T>::value && std::isnan(a)) ? a : b;
  else if constexpr (OP == Bin::Max) return a > b || (std::is_floating_point<T>::value && std::isnan(a)) ? a : b;
  else if constexpr (OP == Bin::FMod) {
    if constexpr (std::is_integral<T>::value) return static_cast<T>(a % b);
    else return static_cast<T>(std::fmod(a, b));
  } else if constexpr (OP == Bin::Mod) {  // Python semantics: the result takes the divisor's sign
    if constexpr (std::is_integral<T>::value) {
      T r = static_cast<T>(a % b);
      return static_cast<T>((r != 0 && ((r < 0) != (b < 0))) ? r + b : r);
    } else {
      T r = std::fmod(a, b);
      return static_cast<T>((r != 0 && ((r < 0) != (b < 0))) ? r + b : r);
    }
  } else if constexpr (OP == Bin::Equal) return static_cast<bool>(a == b);
  else if constexpr (OP == Bin::Less) return static_cast<bool>(a < b);
  else if constexpr (OP == Bin::Greater) return static_cast<bool>(a > b);
  else if constexpr (OP == Bin::GreaterOrEqual) return static_cast<bool>(a >= b);
  else if constexpr (OP == Bin::LessOrEqual) return static_cast<bool>(a <= b);
  else if constexpr (OP == Bin::And) return static_cast<bool>(a && b);
  else if constexpr (OP == Bin::Or) return static_cast<bool>(a || b);
  else return static_cast<bool>(static_cast<bool>(a) != static_cast<bool>(b));
}

// out = op(a, b) over a broadcast plan; parallel over output rows of large tensors.
template <Bin OP, typename T, typename O>
void broadcast_apply(const T* a, const T* b, O* o, const BroadcastPlan<2>& p, int threads) {
  const int64_t inner = p.inner, sa = p.inner_stride(0), sb = p.inner_stride(1);
  const bool par = p.rows * inner > 32768 && p.rows > 1;
  if (p.rows == 1 && inner > 65536) {  // one long row (same-shape tensors): split it instead
    if (sa == 1 && sb == 1) {
#pragma omp parallel for num_threads(threads)
      for (int64_t i = 0; i < inner; ++i) o[i] = apply<OP>(a[i], b[i]);
      return;
    }
  }
#pragma omp parallel for num_threads(threads) if (par)
  for (int64_t r = 0; r < p.rows; ++r) {
    int64_t off[2];
    p.row_offsets(r, off);
    const T* ar = a + off[0];
    const T* br = b + off[1];
    O* orow = o + r * inner;
    if (sa == 1 && sb == 1) {
      for (int64_t i = 0; i < inner; ++i) orow[i] = apply<OP>(ar[i], br[i]);
    } else if (sa == 1) {
      const T bv = br[0];
      for (int64_t i = 0; i < inner; ++i) orow[i] = apply<OP>(ar[i], bv);
    } else if (sb == 1) {
      const T av = ar[0];
      for (int64_t i = 0; i < inner; ++i) orow[i] = apply<OP>(av, br[i]);
    } else {
      const auto v = apply<OP>(ar[0], br[0]);
      for (int64_t i = 0; i < inner; ++i) orow[i] = v;
    }
  }
}

template <typename T>
bool has_zero(const T* p, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (p[i] == T{0}) return true;
  return false;
}

template <Bin OP>
class BinaryKernel : public CpuKernel {
 public:
  explicit BinaryKernel(const KernelCreateArgs& a) : CpuKernel(a) {}
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    if (in.size() < 2 || !in[0].data || !in[1].data) fail("expects two inputs");
    if (in[0].dtype != in[1].dtype)
      fail(std::string("inputs have different types ") + dtype_name(in[0].dtype) + " and " + dtype_name(in[1].dtype));
    for (int i = 0; i < 2; ++i)
      if (!broadcastable_to(in[i].shape, out[0].shape))
        fail("input " + std::to_string(i) + " shape " + dims_text(in[i].shape) + " does not broadcast to the output " +
             dims_text(out[0].shape));
    const std::vector<int64_t>* shapes[2] = {&in[0].shape, &in[1].shape};
    BroadcastPlan<2> p(out[0].shape, shapes);
    constexpr bool logic = OP == Bin::And || OP == Bin::Or || OP == Bin::Xor;
    if constexpr (logic) {
      if (in[0].dtype != DType::Bool) unsupported_type(in[0], "input");
      return broadcast_apply<OP>(in[0].as<bool>(), in[1].as<bool>(), out[0].as<bool>(), p, ctx.threads);
    } else {
      switch (in[0].dtype) {
        case DType::Float32: return go<float>(in, out[0], p, ctx);
        case DType::Float64: return go<double>(in, out[0], p, ctx);
        case DType::Int64: return go<int64_t>(in, out[0], p, ctx);
        case DType::Int32: return go<int32_t>(in, out[0], p, ctx);
        case DType::Int8: return go<int8_t>(in, out[0], p, ctx);
        case DType::Uint8: return go<uint8_t>(in, out[0], p, ctx);
        case DType::Bool:
          if (OP == Bin::Equal) return go<bool>(in, out[0], p, ctx);
          [[fallthrough]];
        default: unsupported_type(in[0], "input");
      }
    }
  }

 private:
  template <typename T>
  void go(const std::vector<TensorView>& in, const TensorView& out, const BroadcastPlan<2>& p, const RunContext& ctx) {
    constexpr bool cmp = OP == Bin::Equal || OP == Bin::Less || OP == Bin::Greater || OP == Bin::GreaterOrEqual ||
                          OP == Bin::LessOrEqual;
    if constexpr (cmp) {
      if (out.dtype != DType::Bool) fail(std::string("output has type ") + dtype_name(out.dtype) + ", expected bool");
      broadcast_apply<OP>(in[0].as<T>(), in[1].as<T>(), out.as<bool>(), p, ctx.threads);
    } else if constexpr (!std::is_same<T, bool>::value) {
      if (out.dtype != in[0].dtype) fail(std::string("output has type ") + dtype_name(out.dtype) + ", expected " + dtype_name(in[0].dtype));
      constexpr bool divides = OP == Bin::Div || OP == Bin::Mod || OP == Bin::FMod;
      if constexpr (std::is_integral<T>::value && divides) {
        // Integer division by zero would trap the process: report it as the node's error.
        if (has_zero(in[1].as<T>(), in[1].numel())) fail("integer division by zero");
      }
      broadcast_apply<OP>(in[0].as<T>(), in[1].as<T>(), out.as<T>(), p, ctx.threads);
    }
  }
};

using AddKernel = BinaryKernel<Bin::Add>;
using SubKernel = BinaryKernel<Bin::Sub>;
using MulKernel = BinaryKernel<Bin::Mul>;
using DivKernel = BinaryKernel<Bin::Div>;
using EqualKernel = BinaryKernel<Bin::Equal>;
using LessKernel = BinaryKernel<Bin::Less>;
using GreaterKernel = BinaryKernel<Bin::Greater>;
using GreaterOrEqualKernel = BinaryKernel<Bin::GreaterOrEqual>;
using LessOrEqualKernel = BinaryKernel<Bin::LessOrEqual>;
using AndKernel = BinaryKernel<Bin::And>;
using OrKernel = BinaryKernel<Bin::Or>;
using XorKernel = BinaryKernel<Bin::Xor>;
UNIRT_REGISTER_KERNEL(cpu, Add, AddKernel, "float32 float64 int64 int32 int8 uint8");
UNIRT_REGISTER_KERNEL(cpu, Sub, SubKernel, "float32 float64 int64 int32 int8 uint8");
UNIRT_REGISTER_KERNEL(cpu, Mul, MulKernel, "float32 float64 int64 int32 int8 uint8");
UNIRT_REGISTER_KERNEL(cpu, Div, DivKernel, "float32 float64 int64 int32 int8 uint8");
UNIRT_REGISTER_KERNEL(cpu, Equal, EqualKernel, "float32 float64 int64 int32 int8 uint8 bool");
UNIRT_REGISTER_KERNEL(cpu, Less, LessKernel, "float32 float64 int64 int32 int8 uint8");
UNIRT_REGISTER_KERNEL(cpu, Greater, GreaterKernel, "float32 float64 int64 int32 int8 uint8");
UNIRT_REGISTER_KERNEL(cpu, GreaterOrEqual, GreaterOrEqualKernel, "float32 float64 int64 int32 int8 uint8");
UNIRT_REGISTER_KERNEL(cpu, LessOrEqual, LessOrEqualKernel, "float32 float64 int64 int32 int8 uint8");
UNIRT_REGISTER_KERNEL(cpu, And, AndKernel, "bool");
UNIRT_REGISTER_KERNEL(cpu, Or, OrKernel, "bool");
UNIRT_REGISTER_KERNEL(cpu, Xor, XorKernel, "bool");

// Mod: fmod=1 gives C fmod (sign of the dividend), fmod=0 Python's modulo.
class ModKernel : public OpKernel {
 public:
  explicit ModKernel(const KernelCreateArgs& a) {
    if (a.node.attr_i("fmod", 0)) impl_ = std::make_unique<BinaryKernel<Bin::FMod>>(a);
    else impl_ = std::make_unique<BinaryKernel<Bin::Mod>>(a);
  }
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    impl_->run(in, out, ctx);
  }

 private:
  std::unique_ptr<OpKernel> impl_;
};
UNIRT_REGISTER_KERNEL(cpu, Mod, ModKernel, "float32 float64 int64 int32 int8 uint8");

// Min/Max are variadic: the first input is broadcast into the output, the rest folded in place.
template <Bin OP>
class MinMaxKernel : public CpuKernel {
 public:
  explicit MinMaxKernel(const KernelCreateArgs& a) : CpuKernel(a) {}
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    if (in.empty()) fail("expects at least one input");
    switch (out[0].dtype) {
      case DType::Float32: return go<float>(in, out[0], ctx);
      case DType::Float64: return go<double>(in, out[0], ctx);
      case DType::Int64: return go<int64_t>(in, out[0], ctx);
      case DType::Int32: return go<int32_t>(in, out[0], ctx);
      case DType::Int8: return go<int8_t>(in, out[0], ctx);
      case DType::Uint8: return go<uint8_t>(in, out[0], ctx);
      default: unsupported_type(out[0], "output");
    }
  }

 private:
  template <typename T>
  void go(const std::vector<TensorView>& in, const TensorView& o, const RunContext& ctx) {
    for (size_t k = 0; k < in.size(); ++k) {
      if (in[k].dtype != o.dtype) fail("input " + std::to_string(k) + " has type " + dtype_name(in[k].dtype) + ", expected " + dtype_name(o.dtype));
      if (!broadcastable_to(in[k].shape, o.shape))
        fail("input " + std::to_string(k) + " shape " + dims_text(in[k].shape) + " does not broadcast to " + dims_text(o.shape));
    }
    T* y = o.as<T>();
    if (in.size() == 1) {
      const std::vector<int64_t>* s[2] = {&in[0].shape, &in[0].shape};
      BroadcastPlan<2> p(o.shape, s);
      broadcast_apply<Bin::Min>(in[0].as<T>(), in[0].as<T>(), y, p, ctx.threads);
      return;
    }
    const std::vector<int64_t>* s[2] = {&in[0].shape, &in[1].shape};
    broadcast_apply<OP>(in[0].as<T>(), in[1].as<T>(), y, BroadcastPlan<2>(o.shape, s), ctx.threads);
    for (size_t k = 2; k < in.size(); ++k) {
      const std::vector<int64_t>* sk[2] = {&o.shape, &in[k].shape};
      broadcast_apply<OP>(static_cast<const T*>(y), in[k].as<T>(), y, BroadcastPlan<2>(o.shape, sk), ctx.threads);
    }
  }
};
using MinKernel = MinMaxKernel<Bin::Min>;
using MaxKernel = MinMaxKernel<Bin::Max>;
UNIRT_REGISTER_KERNEL(cpu, Min, MinKernel, "float32 float64 int64 int32 int8 uint8");
UNIRT_REGISTER_KERNEL(cpu, Max, MaxKernel, "float32 float64 int64 int32 int8 uint8");

template <typename T>
double load(const void* p, int64_t i) {
  return static_cast<double>(static_cast<const T*>(p)[i]);
}

// Pow: base and exponent may differ in type (opset 12+); the result has the base's type.
class PowKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    for (int i = 0; i < 2; ++i)
      if (!broadcastable_to(in[i].shape, out[0].shape))
        fail("input " + std::to_string(i) + " shape " + dims_text(in[i].shape) + " does not broadcast to " + dims_text(out[0].shape));
    if (out[0].dtype != in[0].dtype) fail(std::string("output type ") + dtype_name(out[0].dtype) + " differs from the base's");
    const std::vector<int64_t>* s[2] = {&in[0].shape, &in[1].shape};
    BroadcastPlan<2> p(out[0].shape, s);
    if (in[0].dtype == DType::Float32 && in[1].dtype == DType::Float32) {
      const float* a = in[0].as<float>();
      const float* b = in[1].as<float>();
      float* y = out[0].as<float>();
      const int64_t inner = p.inner, sa = p.inner_stride(0), sb = p.inner_stride(1);
#pragma omp parallel for num_threads(ctx.threads) if (p.rows * inner > 32768)
      for (int64_t r = 0; r < p.rows; ++r) {
        int64_t off[2];
        p.row_offsets(r, off);
        for (int64_t i = 0; i < inner; ++i) {
          const float e = b[off[1] + i * sb];
          const float x = a[off[0] + i * sa];
          // Squares (LayerNorm's variance as exported) are common: skip the pow call.
          y[r * inner + i] = e == 2.f ? x * x : std::pow(x, e);
        }
      }
      return;
    }
    const auto reader = [&](const TensorView& t) -> double (*)(const void*, int64_t) {
      switch (t.dtype) {
        case DType::Float32: return load<float>;
        case DType::Float64: return load<double>;
        case DType::Int64: return load<int64_t>;
        case DType::Int32: return load<int32_t>;
        default: unsupported_type(t, "input");
      }
    };
    auto ra = reader(in[0]), rb = reader(in[1]);
    const TensorView& y = out[0];
    for (int64_t r = 0; r < p.rows; ++r) {
      int64_t off[2];
      p.row_offsets(r, off);
      for (int64_t i = 0; i < p.inner; ++i) {
        const double v = std::pow(ra(in[0].data, off[0] + i * p.inner_stride(0)), rb(in[1].data, off[1] + i * p.inner_stride(1)));
        const int64_t k = r * p.inner + i;
        switch (y.dtype) {
          case DType::Float32: y.as<float>()[k] = static_cast<float>(v); break;
          case DType::Float64: y.as<double>()[k] = v; break;
          case DType::Int64: y.as<int64_t>()[k] = static_cast<int64_t>(v); break;
          default: y.as<int32_t>()[k] = static_cast<int32_t>(v); break;
        }
      }
    }
  }
};
UNIRT_REGISTER_KERNEL(cpu, Pow, PowKernel, "float32 float64 int64 int32");

// Where(cond, x, y): a byte copy per element, so any element type works.
class WhereKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_dtype(in[0], DType::Bool, "condition");
    if (in[1].dtype != out[0].dtype || in[2].dtype != out[0].dtype)
      fail(std::string("X and Y have types ") + dtype_name(in[1].dtype) + " and " + dtype_name(in[2].dtype) + ", output " +
           dtype_name(out[0].dtype));
    for (int i = 0; i < 3; ++i)
      if (!broadcastable_to(in[i].shape, out[0].shape))
        fail("input " + std::to_string(i) + " shape " + dims_text(in[i].shape) + " does not broadcast to " + dims_text(out[0].shape));
    const std::vector<int64_t>* s[3] = {&in[0].shape, &in[1].shape, &in[2].shape};
    BroadcastPlan<3> p(out[0].shape, s);
    const size_t es = dtype_size(out[0].dtype);
    const bool* c = in[0].as<bool>();
    const char* x = in[1].as<char>();
    const char* y = in[2].as<char>();
    char* o = out[0].as<char>();
    const int64_t sc = p.inner_stride(0), sx = p.inner_stride(1), sy = p.inner_stride(2);
#pragma omp parallel for num_threads(ctx.threads) if (p.rows * p.inner > 65536)
    for (int64_t r = 0; r < p.rows; ++r) {
      int64_t off[3];
      p.row_offsets(r, off);
      for (int64_t i = 0; i < p.inner; ++i) {
        const char* src = c[off[0] + i * sc] ? x + (off[1] + i * sx) * es : y + (off[2] + i * sy) * es;
        std::memcpy(o + (r * p.inner + i) * es, src, es);
      }
    }
  }
};
UNIRT_REGISTER_KERNEL(cpu, Where, WhereKernel, "any");

}  // namespace
}  // namespace cpu
}  // namespace unirt
