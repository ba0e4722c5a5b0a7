// Element-wise ops on the GPU: binary with broadcasting, unary math, Cast. float32 and float16
// (computed in float32).
#include <cmath>
#include <type_traits>

#include "cuda/cuda_common.h"
#include "cuda/half_io.cuh"

namespace unirt {
namespace cuda {
namespace {


enum class Bin { Add, Sub, Mul, Div, Pow, Min, Max };

__device__ __forceinline__ float apply(Bin op, float a, float b) {
  switch (op) {
    case Bin::Add: return a + b;
    case Bin::Sub: return a - b;
    case Bin::Mul: return a * b;
    case Bin::Div: return a / b;
    case Bin::Pow: return powf(a, b);
    case Bin::Min: return fminf(a, b);
    default: return fmaxf(a, b);
  }
}

// Eight halves per 16-byte load/store.
__device__ __forceinline__ uint4 apply8(Bin op, uint4 va, uint4 vb) {
  uint4 vy;
  const __half2* ha = reinterpret_cast<const __half2*>(&va);
  const __half2* hb = reinterpret_cast<const __half2*>(&vb);
  __half2* hy = reinterpret_cast<__half2*>(&vy);
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const float2 fa = __half22float2(ha[k]), fb = __half22float2(hb[k]);
    hy[k] = __floats2half2_rn(apply(op, fa.x, fb.x), apply(op, fa.y, fb.y));
  }
  return vy;
}

// n8 = element count / 8.
__global__ void binary_same_h8(Bin op, const uint4* a, const uint4* b, uint4* y, int n8) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n8; i += gridDim.x * blockDim.x) y[i] = apply8(op, a[i], b[i]);
}

// b repeats every nb elements (nb % 8 == 0): bias over the channel-last dim of token tensors.
__global__ void binary_tail_h8(Bin op, const uint4* a, const uint4* b, uint4* y, int n8, int nb8) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n8; i += gridDim.x * blockDim.x) y[i] = apply8(op, a[i], b[i % nb8]);
}

template <typename T>
__global__ void binary_same(Bin op, const T* a, const T* b, T* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    st(y, i, apply(op, ld(a, i), ld(b, i)));
}

// b repeats every `nb` elements of a (bias over trailing dims) or is a scalar (nb == 1).
template <typename T>
__global__ void binary_tail(Bin op, const T* a, const T* b, T* y, int64_t n, int64_t nb, bool swap) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float x = ld(a, i), z = ld(b, i % nb);
    st(y, i, swap ? apply(op, z, x) : apply(op, x, z));
  }
}

// b broadcast over a channel axis: b[c] with c = (i / inner) % channels (NCHW per-channel).
template <typename T>
__global__ void binary_channel(Bin op, const T* a, const T* b, T* y, int64_t n, int64_t inner, int64_t channels, bool swap) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float x = ld(a, i), z = ld(b, (i / inner) % channels);
    st(y, i, swap ? apply(op, z, x) : apply(op, x, z));
  }
}

template <typename T>
__global__ void binary_general(Bin op, const T* a, const T* b, T* y, int64_t n, Dims out, Strides sa, Strides sb) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t rem = i, oa = 0, ob = 0;
    for (int k = out.rank - 1; k >= 0; --k) {
      const int64_t idx = rem % out.d[k];
      rem /= out.d[k];
      oa += idx * sa.s[k];
      ob += idx * sb.s[k];
    }
    st(y, i, apply(op, ld(a, oa), ld(b, ob)));
  }
}

inline int grid_for(int64_t n) { return static_cast<int>(std::min<int64_t>((n + 255) / 256, 65535 * 8)); }
inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

class BinaryKernel : public CudaKernel {
 public:
  BinaryKernel(const KernelCreateArgs& a, Bin op) : CudaKernel(a), op_(op) {}
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_floatish(in[0], "A");
    expect_floatish(in[1], "B");
    if (in[0].dtype != in[1].dtype || in[0].dtype != out[0].dtype) fail("inputs and output must have one float type");
    if (out[0].dtype == DType::Float16) go<__half>(in, out[0], ctx);
    else go<float>(in, out[0], ctx);
    check_launch(node_);
  }

 private:
  template <typename T>
  void go(const std::vector<TensorView>& in, const TensorView& o, const RunContext& ctx) {
    const int64_t n = o.numel();
    if (n == 0) return;
    cudaStream_t s = stream_of(ctx);
    const T* a = in[0].as<T>();
    const T* b = in[1].as<T>();
    T* y = o.as<T>();
    const int64_t na = in[0].numel(), nb = in[1].numel();
    constexpr bool kHalf = std::is_same<T, __half>::value;
    const bool vec = kHalf && n % 8 == 0 && n < (int64_t{1} << 31) && aligned16(a) && aligned16(b) && aligned16(y);
    if (na == n && nb == n) {
      if (vec) return binary_same_h8<<<grid_for(n / 8), 256, 0, s>>>(op_, reinterpret_cast<const uint4*>(a), reinterpret_cast<const uint4*>(b),
                                                              reinterpret_cast<uint4*>(y), static_cast<int>(n / 8));
      return binary_same<<<grid_for(n), 256, 0, s>>>(op_, a, b, y, n);
    }
    if (vec && na == n && nb % 8 == 0 && n % nb == 0 && in[1].shape.size() <= o.shape.size() &&
        std::equal(in[1].shape.begin(), in[1].shape.end(), o.shape.end() - in[1].shape.size()))
      return binary_tail_h8<<<grid_for(n / 8), 256, 0, s>>>(op_, reinterpret_cast<const uint4*>(a), reinterpret_cast<const uint4*>(b),
                                                            reinterpret_cast<uint4*>(y), static_cast<int>(n / 8), static_cast<int>(nb / 8));
    // One operand full, the other a suffix of the output shape or a per-channel vector.
    for (int swap = 0; swap < 2; ++swap) {
      const TensorView& full = in[swap];
      const TensorView& part = in[1 - swap];
      if (full.numel() != n) continue;
      const T* pf = full.as<T>();
      const T* pp = part.as<T>();
      std::vector<int64_t> ps = part.shape;
      while (!ps.empty() && ps.front() == 1) ps.erase(ps.begin());
      if (ps.size() <= o.shape.size() && std::equal(ps.begin(), ps.end(), o.shape.end() - ps.size()))
        return binary_tail<<<grid_for(n), 256, 0, s>>>(op_, pf, pp, y, n, std::max<int64_t>(1, part.numel()), swap == 1);
      // [C,1,1] style (per channel at axis r-k).
      std::vector<int64_t> full_b = part.shape;
      while (full_b.size() < o.shape.size()) full_b.insert(full_b.begin(), 1);
      int nontrivial = -1, count = 0;
      for (size_t k = 0; k < full_b.size(); ++k)
        if (full_b[k] != 1) nontrivial = static_cast<int>(k), ++count;
      if (count == 1 && full_b[nontrivial] == o.shape[nontrivial]) {
        int64_t inner = 1;
        for (size_t k = nontrivial + 1; k < o.shape.size(); ++k) inner *= o.shape[k];
        return binary_channel<<<grid_for(n), 256, 0, s>>>(op_, pf, pp, y, n, inner, o.shape[nontrivial], swap == 1);
      }
    }
    binary_general<<<grid_for(n), 256, 0, s>>>(op_, a, b, y, n, dims_of(o.shape), strides_for(in[0].shape, o.shape),
                                                strides_for(in[1].shape, o.shape));
  }
  Bin op_;
};

#define CUDA_BINARY(OP)                                                              \
  class OP##Kernel : public BinaryKernel {                                           \
   public:                                                                           \
    explicit OP##Kernel(const KernelCreateArgs& a) : BinaryKernel(a, Bin::OP) {}     \
  };                                                                                 \
  UNIRT_REGISTER_KERNEL(cuda, OP, OP##Kernel)
CUDA_BINARY(Add);
CUDA_BINARY(Sub);
CUDA_BINARY(Mul);
CUDA_BINARY(Div);
CUDA_BINARY(Pow);
#undef CUDA_BINARY

enum class Un { Sqrt, Erf, Gelu, GeluTanh, Relu, Sigmoid, Tanh, Exp, Log, Neg, Abs, Reciprocal, Floor, Ceil };

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
    default: return ceilf(x);
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
  };                                                                                \
  UNIRT_REGISTER_KERNEL(cuda, OP, OP##Kernel)
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

template <typename A, typename B>
__global__ void cast_kernel(const A* x, B* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    st(y, i, ld(x, i));
}

// Float casts on the device (the float16 engine's input/output boundary). Integer casts are shape
// arithmetic, which the planner evaluates on the host.
class CastKernel : public CudaKernel {
 public:
  using CudaKernel::CudaKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const int64_t n = in[0].numel();
    if (n == 0) return;
    cudaStream_t s = stream_of(ctx);
    const DType a = in[0].dtype, b = out[0].dtype;
    if (a == b) UNIRT_CUDA(cudaMemcpyAsync(out[0].data, in[0].data, in[0].bytes(), cudaMemcpyDeviceToDevice, s));
    else if (a == DType::Float32 && b == DType::Float16) cast_kernel<<<grid_for(n), 256, 0, s>>>(in[0].as<float>(), out[0].as<__half>(), n);
    else if (a == DType::Float16 && b == DType::Float32) cast_kernel<<<grid_for(n), 256, 0, s>>>(in[0].as<__half>(), out[0].as<float>(), n);
    else fail(std::string("the CUDA backend casts between float32 and float16 only, not ") + dtype_name(a) + " -> " + dtype_name(b));
    check_launch(node_);
  }
};
UNIRT_REGISTER_KERNEL(cuda, Cast, CastKernel);

template <typename T>
__global__ void channel_bias(const T* b, T* y, int64_t n, int64_t C, int64_t S) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = b[(i / S) % C];
}

}  // namespace

void fill_channel_bias(DType t, const void* bias, void* y, int64_t n, int64_t C, int64_t S, cudaStream_t stream) {
  if (n == 0) return;
  if (t == DType::Float16) channel_bias<<<grid_for(n), 256, 0, stream>>>(static_cast<const __half*>(bias), static_cast<__half*>(y), n, C, S);
  else channel_bias<<<grid_for(n), 256, 0, stream>>>(static_cast<const float*>(bias), static_cast<float*>(y), n, C, S);
}

}  // namespace cuda
}  // namespace unirt
