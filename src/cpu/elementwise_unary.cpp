// Unary element-wise ops: float math (Sqrt .. Gelu), Neg/Abs also on integers, Not, Clip,
// Cast between the element types unirt holds, and the pass-through ops Identity and Dropout.
#include <cmath>
#include <limits>
#include <type_traits>

#include "backend/float8_rule.h"
#include "cpu/cpu_util.h"

namespace unirt {
namespace cpu {
namespace {

template <typename F>
class FloatUnaryKernel : public CpuKernel {
 public:
  explicit FloatUnaryKernel(const KernelCreateArgs& a) : CpuKernel(a), f_(a.node) {}
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_float(in[0], "input");
    expect_float(out[0], "output");
    expect_shape(in[0], out[0].shape, "input");
    const float* x = in[0].as<float>();
    float* y = out[0].as<float>();
    const int64_t n = in[0].numel();
    const F f = f_;
#pragma omp parallel for num_threads(ctx.threads) if (n > 16384)
    for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
  }

 private:
  F f_;
};

#define UNIRT_CPU_UNARY(OP, EXPR)                            \
  struct OP##Fn {                                            \
    explicit OP##Fn(const Node&) {}                          \
    float operator()(float x) const { return EXPR; }         \
  };                                                         \
  using OP##Kernel = FloatUnaryKernel<OP##Fn>
UNIRT_CPU_UNARY(Sqrt, std::sqrt(x));
UNIRT_CPU_UNARY(Erf, std::erf(x));
UNIRT_CPU_UNARY(Relu, x > 0.f ? x : (std::isnan(x) ? x : 0.f));
UNIRT_CPU_UNARY(Sigmoid, x >= 0.f ? 1.f / (1.f + std::exp(-x)) : std::exp(x) / (1.f + std::exp(x)));
UNIRT_CPU_UNARY(Tanh, std::tanh(x));
UNIRT_CPU_UNARY(Exp, std::exp(x));
UNIRT_CPU_UNARY(Log, std::log(x));
UNIRT_CPU_UNARY(Reciprocal, 1.f / x);
UNIRT_CPU_UNARY(Floor, std::floor(x));
UNIRT_CPU_UNARY(Ceil, std::ceil(x));
#undef UNIRT_CPU_UNARY
UNIRT_REGISTER_KERNEL(cpu, Sqrt, SqrtKernel, "float32");
UNIRT_REGISTER_KERNEL(cpu, Erf, ErfKernel, "float32");
UNIRT_REGISTER_KERNEL(cpu, Relu, ReluKernel, "float32");
UNIRT_REGISTER_KERNEL(cpu, Sigmoid, SigmoidKernel, "float32");
UNIRT_REGISTER_KERNEL(cpu, Tanh, TanhKernel, "float32");
UNIRT_REGISTER_KERNEL(cpu, Exp, ExpKernel, "float32");
UNIRT_REGISTER_KERNEL(cpu, Log, LogKernel, "float32");
UNIRT_REGISTER_KERNEL(cpu, Reciprocal, ReciprocalKernel, "float32");
UNIRT_REGISTER_KERNEL(cpu, Floor, FloorKernel, "float32");
UNIRT_REGISTER_KERNEL(cpu, Ceil, CeilKernel, "float32");

// erf as a rational function on [-4, 4] (the float erf approximation of Eigen/XLA): absolute
// error below 4e-7 and, unlike the libm call, vectorisable. Gelu runs on every MLP activation of
// the model, where this halves its cost.
inline float erf_rational(float a) {
  const float x = std::min(std::max(a, -4.f), 4.f);  // NaN stays NaN through maxps/minps order
  const float x2 = x * x;
  float p = -2.72614225801306e-10f;
  p = p * x2 + 2.77068142495902e-08f;
  p = p * x2 + -2.10102402082508e-06f;
  p = p * x2 + -5.69250639462346e-05f;
  p = p * x2 + -7.34990630326855e-04f;
  p = p * x2 + -2.95459980854025e-03f;
  p = p * x2 + -1.60960333262415e-02f;
  float q = -1.45660718464996e-05f;
  q = q * x2 + -2.13374055278905e-04f;
  q = q * x2 + -1.68282697438203e-03f;
  q = q * x2 + -7.37332916720468e-03f;
  q = q * x2 + -1.42647390514189e-02f;
  return x * p / q;
}

// Gelu (opset 20): approximate = "none" (exact, via erf) or "tanh". One loop per mode keeps the
// exact one free of branches so it vectorises.
class GeluKernel : public CpuKernel {
 public:
  explicit GeluKernel(const KernelCreateArgs& a) : CpuKernel(a) {
    const std::string m = a.node.attr_s("approximate", "none");
    if (m != "none" && m != "tanh") fail("approximate must be \"none\" or \"tanh\", found \"" + m + "\"");
    tanh_ = m == "tanh";
  }
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_float(in[0], "input");
    expect_float(out[0], "output");
    expect_shape(in[0], out[0].shape, "input");
    const float* __restrict x = in[0].as<float>();
    float* __restrict y = out[0].as<float>();
    const int64_t n = in[0].numel();
    if (tanh_) {
#pragma omp parallel for num_threads(ctx.threads) if (n > 16384)
      for (int64_t i = 0; i < n; ++i) {
        const float v = x[i];
        y[i] = 0.5f * v * (1.f + std::tanh(0.7978845608028654f * (v + 0.044715f * v * v * v)));
      }
      return;
    }
    const int64_t chunk = 4096;
#pragma omp parallel for num_threads(ctx.threads) if (n > 16384)
    for (int64_t c = 0; c < (n + chunk - 1) / chunk; ++c) {
      const int64_t lo = c * chunk, hi = std::min(n, lo + chunk);
      for (int64_t i = lo; i < hi; ++i) y[i] = 0.5f * x[i] * (1.f + erf_rational(x[i] * 0.7071067811865476f));
    }
  }

 private:
  bool tanh_ = false;
};
UNIRT_REGISTER_KERNEL(cpu, Gelu, GeluKernel, "float32");

// Neg and Abs also serve integer shape arithmetic.
template <bool NEG>
class SignedUnaryKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_shape(in[0], out[0].shape, "input");
    if (in[0].dtype != out[0].dtype) fail("input and output types differ");
    switch (in[0].dtype) {
      case DType::Float32: return go<float>(in[0], out[0], ctx);
      case DType::Float64: return go<double>(in[0], out[0], ctx);
      case DType::Int64: return go<int64_t>(in[0], out[0], ctx);
      case DType::Int32: return go<int32_t>(in[0], out[0], ctx);
      case DType::Int8: return go<int8_t>(in[0], out[0], ctx);
      case DType::Uint8:
        if (!NEG) return go<uint8_t>(in[0], out[0], ctx);
        [[fallthrough]];
      default: unsupported_type(in[0], "input");
    }
  }

 private:
  template <typename T>
  void go(const TensorView& in, const TensorView& out, const RunContext& ctx) {
    const T* x = in.as<T>();
    T* y = out.as<T>();
    const int64_t n = in.numel();
#pragma omp parallel for num_threads(ctx.threads) if (n > 16384)
    for (int64_t i = 0; i < n; ++i) {
      if constexpr (NEG) y[i] = static_cast<T>(-x[i]);
      else if constexpr (std::is_unsigned<T>::value) y[i] = x[i];
      else y[i] = x[i] < 0 ? static_cast<T>(-x[i]) : x[i];
    }
  }
};
using NegKernel = SignedUnaryKernel<true>;
using AbsKernel = SignedUnaryKernel<false>;
UNIRT_REGISTER_KERNEL(cpu, Neg, NegKernel, "float32 float64 int64 int32 int8");
UNIRT_REGISTER_KERNEL(cpu, Abs, AbsKernel, "float32 float64 int64 int32 int8 uint8");

class NotKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    expect_dtype(in[0], DType::Bool, "input");
    expect_shape(in[0], out[0].shape, "input");
    const uint8_t* x = in[0].as<uint8_t>();
    uint8_t* y = out[0].as<uint8_t>();
    for (int64_t i = 0; i < in[0].numel(); ++i) y[i] = x[i] ? 0 : 1;
  }
};
UNIRT_REGISTER_KERNEL(cpu, Not, NotKernel, "bool");

// Clip: bounds are attributes before opset 11 and optional scalar inputs from 11 on.
class ClipKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_shape(in[0], out[0].shape, "input");
    switch (in[0].dtype) {
      case DType::Float32: return go<float>(in, out[0], ctx);
      case DType::Float64: return go<double>(in, out[0], ctx);
      case DType::Int64: return go<int64_t>(in, out[0], ctx);
      case DType::Int32: return go<int32_t>(in, out[0], ctx);
      case DType::Int8: return go<int8_t>(in, out[0], ctx);
      case DType::Uint8: return go<uint8_t>(in, out[0], ctx);
      default: unsupported_type(in[0], "input");
    }
  }

 private:
  template <typename T>
  void go(const std::vector<TensorView>& in, const TensorView& out, const RunContext& ctx) {
    T lo = std::numeric_limits<T>::lowest(), hi = std::numeric_limits<T>::max();
    if (opset_ > 0 && opset_ < 11) {
      lo = static_cast<T>(std::max<double>(node_.attr_f("min", -INFINITY), static_cast<double>(lo)));
      hi = static_cast<T>(std::min<double>(node_.attr_f("max", INFINITY), static_cast<double>(hi)));
    } else {
      for (int k = 1; k <= 2; ++k) {
        if (!(in.size() > static_cast<size_t>(k) && in[k].data)) continue;
        if (in[k].dtype != in[0].dtype) fail(std::string(k == 1 ? "min" : "max") + " has type " + dtype_name(in[k].dtype) + ", input is " + dtype_name(in[0].dtype));
        if (in[k].numel() != 1) fail(std::string(k == 1 ? "min" : "max") + " must be a scalar, has shape " + dims_text(in[k].shape));
        (k == 1 ? lo : hi) = *in[k].as<T>();
      }
    }
    const T* x = in[0].as<T>();
    T* y = out.as<T>();
    const int64_t n = in[0].numel();
#pragma omp parallel for num_threads(ctx.threads) if (n > 16384)
    for (int64_t i = 0; i < n; ++i) {
      // min is applied first, so min > max gives max everywhere (as ONNX Runtime does).
      const T v = x[i] < lo ? lo : x[i];
      y[i] = v > hi ? hi : v;
    }
  }
};
UNIRT_REGISTER_KERNEL(cpu, Clip, ClipKernel, "float32 float64 int64 int32 int8 uint8");

// Identity and Dropout (inference): same bytes. Dropout's optional mask output is all true.
class PassThroughKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    if (in[0].dtype != out[0].dtype) fail(std::string("input type ") + dtype_name(in[0].dtype) + " differs from the output's");
    expect_shape(in[0], out[0].shape, "input");
    if (node_.op_type == "Dropout" && in.size() > 2 && in[2].data) {
      const bool training = *in[2].as<bool>();
      const float ratio = in.size() > 1 && in[1].data ? static_cast<float>(in[1].dtype == DType::Float64 ? *in[1].as<double>() : *in[1].as<float>()) : 0.5f;
      if (training && ratio != 0.f) fail("training_mode=true is not supported (inference only)");
    }
    if (out[0].data != in[0].data && in[0].bytes()) std::memcpy(out[0].data, in[0].data, in[0].bytes());
    if (out.size() > 1 && out[1].data) std::memset(out[1].data, 1, out[1].bytes());
  }
};
UNIRT_REGISTER_KERNEL(cpu, Identity, PassThroughKernel, "any");
UNIRT_REGISTER_KERNEL(cpu, Dropout, PassThroughKernel, "any");

// ---- Cast ----
template <typename To>
inline To convert(double v) {
  if constexpr (std::is_same<To, bool>::value) return v != 0.0;
  else if constexpr (std::is_integral<To>::value) {
    // Float to integer truncates toward zero; NaN and out-of-range values saturate instead of
    // being undefined behaviour.
    if (std::isnan(v)) return To{0};
    if (v <= static_cast<double>(std::numeric_limits<To>::lowest())) return std::numeric_limits<To>::lowest();
    if (v >= static_cast<double>(std::numeric_limits<To>::max())) return std::numeric_limits<To>::max();
    return static_cast<To>(v);
  } else {
    return static_cast<To>(v);
  }
}

template <typename From, typename To>
void cast_loop(const void* src, void* dst, int64_t n) {
  const From* x = static_cast<const From*>(src);
  To* y = static_cast<To*>(dst);
  for (int64_t i = 0; i < n; ++i) {
    if constexpr (std::is_integral<From>::value && std::is_integral<To>::value && !std::is_same<To, bool>::value)
      y[i] = static_cast<To>(x[i]);  // integer narrowing wraps, as numpy's astype does
    else if constexpr (std::is_same<From, float>::value && std::is_same<To, double>::value)
      y[i] = x[i];
    else
      y[i] = convert<To>(static_cast<double>(x[i]));
  }
}

template <typename From>
void cast_from(const void* src, DType to, void* dst, int64_t n, bool& ok) {
  switch (to) {
    case DType::Float32: return cast_loop<From, float>(src, dst, n);
    case DType::Float64: return cast_loop<From, double>(src, dst, n);
    case DType::Int64: return cast_loop<From, int64_t>(src, dst, n);
    case DType::Int32: return cast_loop<From, int32_t>(src, dst, n);
    case DType::Int8: return cast_loop<From, int8_t>(src, dst, n);
    case DType::Uint8: return cast_loop<From, uint8_t>(src, dst, n);
    case DType::Bool: return cast_loop<From, bool>(src, dst, n);
    default: ok = false;
  }
}

class CastKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    const TensorView& x = in[0];
    const TensorView& y = out[0];
    expect_shape(x, y.shape, "input");
    const int64_t n = x.numel();
    if (x.dtype == y.dtype) {
      if (x.bytes()) std::memcpy(y.data, x.data, x.bytes());
      return;
    }
    // float8 E4M3FN goes through float32 both ways (backend/float8_rule.h; saturate as attributed).
    if (x.dtype == DType::Float8E4M3FN || y.dtype == DType::Float8E4M3FN) {
      TensorView f32 = x;
      std::vector<float> tmp(static_cast<size_t>(n));
      f32.dtype = DType::Float32;
      f32.data = tmp.data();
      if (x.dtype == DType::Float8E4M3FN) {
        for (int64_t i = 0; i < n; ++i) tmp[i] = e4m3fn_to_float(x.as<uint8_t>()[i]);
        TensorView out = y;
        if (y.dtype == DType::Float32) std::memcpy(y.data, tmp.data(), n * sizeof(float));
        else run({f32}, {out}, RunContext{});
        return;
      }
      TensorView as_float = f32;
      if (x.dtype != DType::Float32) run({x}, {as_float}, RunContext{});
      else if (n) std::memcpy(tmp.data(), x.data, n * sizeof(float));
      const bool saturate = node_.attr_i("saturate", 1) != 0;
      for (int64_t i = 0; i < n; ++i) y.as<uint8_t>()[i] = float_to_e4m3fn(tmp[i], saturate);
      return;
    }
    // float16 goes through float32 with round-to-nearest-even on the way down.
    if (y.dtype == DType::Float16) {
      std::vector<float> tmp(static_cast<size_t>(n));
      if (x.dtype != DType::Float32) {
        bool ok = true;
        cast_any(x.dtype, x.data, DType::Float32, tmp.data(), n, ok);
        if (!ok) unsupported_type(x, "input");
      } else if (n) {  // an empty vector's data() may be null, which memcpy must not get
        std::memcpy(tmp.data(), x.data, n * sizeof(float));
      }
      uint16_t* h = y.as<uint16_t>();
      for (int64_t i = 0; i < n; ++i) h[i] = float_to_half(tmp[i]);
      return;
    }
    if (x.dtype == DType::Float16) {
      std::vector<float> tmp(static_cast<size_t>(n));
      const uint16_t* h = x.as<uint16_t>();
      for (int64_t i = 0; i < n; ++i) tmp[i] = half_to_float(h[i]);
      bool ok = true;
      cast_any(DType::Float32, tmp.data(), y.dtype, y.data, n, ok);
      if (!ok) unsupported_type(y, "output");
      return;
    }
    bool ok = true;
    cast_any(x.dtype, x.data, y.dtype, y.data, n, ok);
    if (!ok) fail(std::string("cannot cast ") + dtype_name(x.dtype) + " to " + dtype_name(y.dtype));
  }

 private:
  static void cast_any(DType from, const void* src, DType to, void* dst, int64_t n, bool& ok) {
    switch (from) {
      case DType::Float32: return cast_from<float>(src, to, dst, n, ok);
      case DType::Float64: return cast_from<double>(src, to, dst, n, ok);
      case DType::Int64: return cast_from<int64_t>(src, to, dst, n, ok);
      case DType::Int32: return cast_from<int32_t>(src, to, dst, n, ok);
      case DType::Int8: return cast_from<int8_t>(src, to, dst, n, ok);
      case DType::Uint8: return cast_from<uint8_t>(src, to, dst, n, ok);
      case DType::Bool: return cast_from<bool>(src, to, dst, n, ok);
      default: ok = false;
    }
  }
};
UNIRT_REGISTER_KERNEL(cpu, Cast, CastKernel, "float32 float16 float64 int64 int32 int8 uint8 bool float8e4m3fn");

}  // namespace

}  // namespace cpu
}  // namespace unirt
