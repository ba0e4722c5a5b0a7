// Unary element-wise ops: math (Sqrt, Erf, Gelu, Relu, Sigmoid, Tanh, Exp, Log, Neg, Abs,
// Reciprocal, Floor, Ceil), Clip, Not, Cast, Identity/Dropout. float32 and float16 (computed in
// float32; 16-byte vectors for float16); Clip also int64/int32.
#include <cfloat>
#include <cmath>
#include <cstdint>

#include "backend/float8_rule.h"
#include "cuda/cuda_context.h"
#include "cuda/half_io.cuh"

namespace unirt {
namespace cuda {
namespace {

enum class Un { Sqrt, Erf, Gelu, GeluTanh, Relu, Sigmoid, Tanh, Exp, Log, Neg, Abs, Reciprocal, Floor, Ceil, Clip };

__device__ __forceinline__ float apply_un(Un op, float x) {
  switch (op) {
    case Un::Sqrt: return sqrtf(x);
    case Un::Erf: return erff(x);
    case Un::Gelu: return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));
    case Un::GeluTanh: return 0.5f * x * (1.f + tanhf(0.7978845608f * (x + 0.044715f * x * x * x)));
    case Un::Relu: return fmaxf(x, 0.f);
    case Un::Sigmoid: return 1.f / (1.f + __expf(-x));
    case Un::Tanh: return tanhf(x);
    case Un::Exp: return expf(x);
    case Un::Log: return logf(x);
    case Un::Neg: return -x;
    case Un::Abs: return fabsf(x);
    case Un::Reciprocal: return 1.f / x;
    case Un::Floor: return floorf(x);
    default: return ceilf(x);  // Clip is applied by its own kernel
  }
}

__global__ void unary_h8(Un op, const uint4* x, uint4* y, int n8) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n8; i += gridDim.x * blockDim.x) {
    uint4 v = x[i], r;
    const __half2* h = reinterpret_cast<const __half2*>(&v);
    __half2* o = reinterpret_cast<__half2*>(&r);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const float2 f = __half22float2(h[k]);
      o[k] = __floats2half2_rn(apply_un(op, f.x), apply_un(op, f.y));
    }
    y[i] = r;
  }
}

template <typename T>
__global__ void unary(Un op, const T* x, T* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    st(y, i, apply_un(op, ld(x, i)));
}

}  // namespace

void gelu_inplace(DType t, void* y, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  if (t == DType::Float16 && n % 8 == 0 && n < (int64_t{1} << 31) && aligned16(y))
    unary_h8<<<grid_for(n / 8), 256, 0, s>>>(Un::Gelu, static_cast<uint4*>(y), static_cast<uint4*>(y), static_cast<int>(n / 8));
  else if (t == DType::Float16) unary<<<grid_for(n), 256, 0, s>>>(Un::Gelu, static_cast<__half*>(y), static_cast<__half*>(y), n);
  else unary<<<grid_for(n), 256, 0, s>>>(Un::Gelu, static_cast<float*>(y), static_cast<float*>(y), n);
}

namespace {

class UnaryKernel : public CudaKernel {
 public:
  UnaryKernel(const KernelCreateArgs& a, Un op) : CudaKernel(a), op_(op) {
    if (op == Un::Gelu && a.node.attr_s("approximate", "none") == "tanh") op_ = Un::GeluTanh;
  }
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_floatish(in[0], "input");
    const int64_t n = in[0].numel();
    if (n == 0) return;
    if (in[0].dtype == DType::Float16 && n % 8 == 0 && n < (int64_t{1} << 31) && aligned16(in[0].data) && aligned16(out[0].data))
      unary_h8<<<grid_for(n / 8), 256, 0, stream_of(ctx)>>>(op_, in[0].as<uint4>(), out[0].as<uint4>(), static_cast<int>(n / 8));
    else if (in[0].dtype == DType::Float16) unary<<<grid_for(n), 256, 0, stream_of(ctx)>>>(op_, in[0].as<__half>(), out[0].as<__half>(), n);
    else unary<<<grid_for(n), 256, 0, stream_of(ctx)>>>(op_, in[0].as<float>(), out[0].as<float>(), n);
    check_launch(node_);
  }

 private:
  Un op_;
};

#define CUDA_UNARY(OP)                                                              \
  class OP##Kernel : public UnaryKernel {                                           \
   public:                                                                          \
    explicit OP##Kernel(const KernelCreateArgs& a) : UnaryKernel(a, Un::OP) {}      \
  }
CUDA_UNARY(Sqrt);
CUDA_UNARY(Erf);
CUDA_UNARY(Gelu);
CUDA_UNARY(Relu);
CUDA_UNARY(Sigmoid);
CUDA_UNARY(Tanh);
CUDA_UNARY(Exp);
CUDA_UNARY(Log);
CUDA_UNARY(Neg);
CUDA_UNARY(Abs);
CUDA_UNARY(Reciprocal);
CUDA_UNARY(Floor);
CUDA_UNARY(Ceil);
#undef CUDA_UNARY
UNIRT_REGISTER_KERNEL(cuda, Sqrt, SqrtKernel, "float32 float16");
UNIRT_REGISTER_KERNEL(cuda, Erf, ErfKernel, "float32 float16");
UNIRT_REGISTER_KERNEL(cuda, Gelu, GeluKernel, "float32 float16");
UNIRT_REGISTER_KERNEL(cuda, Relu, ReluKernel, "float32 float16");
UNIRT_REGISTER_KERNEL(cuda, Sigmoid, SigmoidKernel, "float32 float16");
UNIRT_REGISTER_KERNEL(cuda, Tanh, TanhKernel, "float32 float16");
UNIRT_REGISTER_KERNEL(cuda, Exp, ExpKernel, "float32 float16");
UNIRT_REGISTER_KERNEL(cuda, Log, LogKernel, "float32 float16");
UNIRT_REGISTER_KERNEL(cuda, Neg, NegKernel, "float32 float16");
UNIRT_REGISTER_KERNEL(cuda, Abs, AbsKernel, "float32 float16");
UNIRT_REGISTER_KERNEL(cuda, Reciprocal, ReciprocalKernel, "float32 float16");
UNIRT_REGISTER_KERNEL(cuda, Floor, FloorKernel, "float32 float16");
UNIRT_REGISTER_KERNEL(cuda, Ceil, CeilKernel, "float32 float16");

// Clip: bounds are optional inputs (opset 11+) living on the device, or attributes (older opsets).
template <typename T>
__global__ void clip_kernel(const T* x, T* y, int64_t n, const T* lo_p, const T* hi_p, float lo, float hi) {
  if (lo_p) lo = ld(lo_p, 0);
  if (hi_p) hi = ld(hi_p, 0);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    st(y, i, fminf(fmaxf(ld(x, i), lo), hi));
}

// Integer Clip (index clamps of the detector): bounds from the device inputs, else the type's range.
template <typename T>
__global__ void clip_int_kernel(const T* x, T* y, int64_t n, const T* lo_p, const T* hi_p, T lo, T hi) {
  if (lo_p) lo = *lo_p;
  if (hi_p) hi = *hi_p;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const T v = x[i] < lo ? lo : x[i];
    y[i] = v > hi ? hi : v;
  }
}

class ClipKernel : public CudaKernel {
 public:
  explicit ClipKernel(const KernelCreateArgs& a)
      : CudaKernel(a), lo_(a.node.attr_f("min", -FLT_MAX)), hi_(a.node.attr_f("max", FLT_MAX)) {}
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const bool integer = in[0].dtype == DType::Int64 || in[0].dtype == DType::Int32;
    if (!integer) expect_floatish(in[0], "input");
    const int64_t n = in[0].numel();
    const void* lo = in.size() > 1 ? in[1].data : nullptr;
    const void* hi = in.size() > 2 ? in[2].data : nullptr;
    for (int i = 1; i < static_cast<int>(in.size()); ++i)
      if (in[i].data && in[i].dtype != in[0].dtype) fail("bound " + std::to_string(i) + " type differs from the input type");
    if (n == 0) return;
    cudaStream_t s = stream_of(ctx);
    if (in[0].dtype == DType::Int64)
      clip_int_kernel<<<grid_for(n), 256, 0, s>>>(in[0].as<int64_t>(), out[0].as<int64_t>(), n, static_cast<const int64_t*>(lo),
                                                  static_cast<const int64_t*>(hi), INT64_MIN, INT64_MAX);
    else if (in[0].dtype == DType::Int32)
      clip_int_kernel<<<grid_for(n), 256, 0, s>>>(in[0].as<int32_t>(), out[0].as<int32_t>(), n, static_cast<const int32_t*>(lo),
                                                  static_cast<const int32_t*>(hi), INT32_MIN, INT32_MAX);
    else if (in[0].dtype == DType::Float16)
      clip_kernel<<<grid_for(n), 256, 0, s>>>(in[0].as<__half>(), out[0].as<__half>(), n, static_cast<const __half*>(lo),
                                              static_cast<const __half*>(hi), lo_, hi_);
    else
      clip_kernel<<<grid_for(n), 256, 0, s>>>(in[0].as<float>(), out[0].as<float>(), n, static_cast<const float*>(lo),
                                              static_cast<const float*>(hi), lo_, hi_);
    check_launch(node_);
  }

 private:
  float lo_, hi_;
};
UNIRT_REGISTER_KERNEL(cuda, Clip, ClipKernel, "float32 float16 int64 int32");

__global__ void not_kernel(const bool* x, bool* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) y[i] = !x[i];
}

class NotKernel : public CudaKernel {
 public:
  using CudaKernel::CudaKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    if (in[0].dtype != DType::Bool) fail(std::string("input must be bool, found ") + dtype_name(in[0].dtype));
    const int64_t n = in[0].numel();
    if (n == 0) return;
    not_kernel<<<grid_for(n), 256, 0, stream_of(ctx)>>>(in[0].as<bool>(), out[0].as<bool>(), n);
    check_launch(node_);
  }
};
UNIRT_REGISTER_KERNEL(cuda, Not, NotKernel, "bool");

// Cast between the numeric types; float -> int truncates toward zero, float -> bool is x != 0,
// float32 -> float16 rounds to nearest even (as the CPU backend).
template <typename To> __device__ __forceinline__ To cast_to(double v) { return static_cast<To>(v); }
template <> __device__ __forceinline__ __half cast_to<__half>(double v) { return __double2half(v); }
template <> __device__ __forceinline__ bool cast_to<bool>(double v) { return v != 0.0; }
template <typename From> __device__ __forceinline__ double cast_from(From v) { return static_cast<double>(v); }
template <> __device__ __forceinline__ double cast_from<__half>(__half v) { return static_cast<double>(__half2float(v)); }

template <typename A, typename B>
__global__ void cast_kernel(const A* x, B* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = cast_to<B>(cast_from<A>(x[i]));
}
// The float16 boundary casts, the hot ones: no double round trip.
__global__ void cast_f32_f16(const float* x, __half* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) y[i] = __float2half_rn(x[i]);
}
__global__ void cast_f16_f32(const __half* x, float* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) y[i] = __half2float(x[i]);
}

// float8 E4M3FN through float32, the rounding and saturation of backend/float8_rule.h.
template <typename A>
__global__ void cast_to_e4m3fn(const A* x, uint8_t* y, int64_t n, bool saturate) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = float_to_e4m3fn(static_cast<float>(cast_from<A>(x[i])), saturate);
}
template <typename B>
__global__ void cast_from_e4m3fn(const uint8_t* x, B* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = cast_to<B>(static_cast<double>(e4m3fn_to_float(x[i])));
}

// Calls f(T{}) for the C++ type T of a numeric dtype other than float8.
template <typename F>
bool with_numeric(DType t, F&& f) {
  switch (t) {
    case DType::Float32: return f(float{}), true;
    case DType::Float16: return f(__half{}), true;
    case DType::Float64: return f(double{}), true;
    case DType::Int32: return f(int32_t{}), true;
    case DType::Int64: return f(int64_t{}), true;
    case DType::Int8: return f(int8_t{}), true;
    case DType::Uint8: return f(uint8_t{}), true;
    case DType::Bool: return f(bool{}), true;
    default: return false;
  }
}

template <typename A>
bool cast_from_type(const TensorView& in, const TensorView& out, int64_t n, cudaStream_t s) {
  const A* x = in.as<A>();
  switch (out.dtype) {
    case DType::Float32: cast_kernel<<<grid_for(n), 256, 0, s>>>(x, out.as<float>(), n); return true;
    case DType::Float16: cast_kernel<<<grid_for(n), 256, 0, s>>>(x, out.as<__half>(), n); return true;
    case DType::Float64: cast_kernel<<<grid_for(n), 256, 0, s>>>(x, out.as<double>(), n); return true;
    case DType::Int32: cast_kernel<<<grid_for(n), 256, 0, s>>>(x, out.as<int32_t>(), n); return true;
    case DType::Int64: cast_kernel<<<grid_for(n), 256, 0, s>>>(x, out.as<int64_t>(), n); return true;
    case DType::Int8: cast_kernel<<<grid_for(n), 256, 0, s>>>(x, out.as<int8_t>(), n); return true;
    case DType::Uint8: cast_kernel<<<grid_for(n), 256, 0, s>>>(x, out.as<uint8_t>(), n); return true;
    case DType::Bool: cast_kernel<<<grid_for(n), 256, 0, s>>>(x, out.as<bool>(), n); return true;
    default: return false;
  }
}

class CastKernel : public CudaKernel {
 public:
  using CudaKernel::CudaKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const int64_t n = in[0].numel();
    if (n == 0) return;
    if (!in[0].data) fail("input has no device memory (a host shape value feeding a device Cast)");
    cudaStream_t s = stream_of(ctx);
    const DType a = in[0].dtype, b = out[0].dtype;
    bool ok = true;
    if (a == b) UNIRT_CUDA(cudaMemcpyAsync(out[0].data, in[0].data, in[0].bytes(), cudaMemcpyDeviceToDevice, s));
    else if (b == DType::Float8E4M3FN)
      ok = with_numeric(a, [&](auto at) {
        using A = decltype(at);
        cast_to_e4m3fn<<<grid_for(n), 256, 0, s>>>(in[0].as<A>(), out[0].as<uint8_t>(), n, node_.attr_i("saturate", 1) != 0);
      });
    else if (a == DType::Float8E4M3FN)
      ok = with_numeric(b, [&](auto bt) {
        using B = decltype(bt);
        cast_from_e4m3fn<<<grid_for(n), 256, 0, s>>>(in[0].as<uint8_t>(), out[0].as<B>(), n);
      });
    else if (a == DType::Float32 && b == DType::Float16) cast_f32_f16<<<grid_for(n), 256, 0, s>>>(in[0].as<float>(), out[0].as<__half>(), n);
    else if (a == DType::Float16 && b == DType::Float32) cast_f16_f32<<<grid_for(n), 256, 0, s>>>(in[0].as<__half>(), out[0].as<float>(), n);
    else {
      switch (a) {
        case DType::Float32: ok = cast_from_type<float>(in[0], out[0], n, s); break;
        case DType::Float16: ok = cast_from_type<__half>(in[0], out[0], n, s); break;
        case DType::Float64: ok = cast_from_type<double>(in[0], out[0], n, s); break;
        case DType::Int32: ok = cast_from_type<int32_t>(in[0], out[0], n, s); break;
        case DType::Int64: ok = cast_from_type<int64_t>(in[0], out[0], n, s); break;
        case DType::Int8: ok = cast_from_type<int8_t>(in[0], out[0], n, s); break;
        case DType::Uint8: ok = cast_from_type<uint8_t>(in[0], out[0], n, s); break;
        case DType::Bool: ok = cast_from_type<bool>(in[0], out[0], n, s); break;
        default: ok = false;
      }
    }
    if (!ok) fail(std::string("cast ") + dtype_name(a) + " -> " + dtype_name(b) + " is not supported on CUDA");
    check_launch(node_);
  }
};
UNIRT_REGISTER_KERNEL(cuda, Cast, CastKernel, "float32 float16 float64 int64 int32 int8 uint8 bool float8e4m3fn");

// Identity, Dropout (inference): a device copy (a no-op when the planner gave both one buffer).
class CopyKernel : public CudaKernel {
 public:
  using CudaKernel::CudaKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    if (out.size() > 1 && out[1].data && out[1].numel()) {  // Dropout's mask: all true at inference
      UNIRT_CUDA(cudaMemsetAsync(out[1].data, 1, out[1].bytes(), stream_of(ctx)));
    }
    if (in[0].data != out[0].data && in[0].bytes())
      UNIRT_CUDA(cudaMemcpyAsync(out[0].data, in[0].data, in[0].bytes(), cudaMemcpyDeviceToDevice, stream_of(ctx)));
  }
};
UNIRT_REGISTER_KERNEL(cuda, Identity, CopyKernel, "any");
UNIRT_REGISTER_KERNEL(cuda, Dropout, CopyKernel, "any");

}  // namespace
}  // namespace cuda
}  // namespace unirt
