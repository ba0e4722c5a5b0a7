// Binary element-wise ops with ONNX broadcasting: Add, Sub, Mul, Div, Pow, Min, Max, Mod (float32
// and float16, computed in float32; Add/Sub/Mul/Div/Min/Max/Mod also int64 and int32, which the
// detector's index arithmetic runs on the GPU), comparisons (bool out) and Where. Fast paths: same
// shape (16-byte float16 vectors), trailing-dims bias, per-channel and scalar operands; anything
// else goes through a general strided-index kernel.
#include <cmath>
#include <type_traits>

#include "cuda/cuda_context.h"
#include "cuda/half_io.cuh"

namespace unirt {
namespace cuda {
namespace {


enum class Bin { Add, Sub, Mul, Div, Pow, Min, Max, Mod, FMod };

__device__ __forceinline__ float apply(Bin op, float a, float b) {
  switch (op) {
    case Bin::Add: return a + b;
    case Bin::Sub: return a - b;
    case Bin::Mul: return a * b;
    case Bin::Div: return a / b;
    case Bin::Pow: return powf(a, b);
    case Bin::Min: return fminf(a, b);
    case Bin::FMod: return fmodf(a, b);
    case Bin::Mod: {  // Python's modulo: the result takes the divisor's sign
      const float r = fmodf(a, b);
      return (r != 0.f && ((r < 0.f) != (b < 0.f))) ? r + b : r;
    }
    default: return fmaxf(a, b);
  }
}

// Integers: ONNX leaves division by zero undefined; the GPU gives 0 (the CPU backend reports it).
template <typename T>
__device__ __forceinline__ T apply_int(Bin op, T a, T b) {
  switch (op) {
    case Bin::Add: return a + b;
    case Bin::Sub: return a - b;
    case Bin::Mul: return a * b;
    case Bin::Div: return b == 0 ? T(0) : a / b;
    case Bin::Min: return a < b ? a : b;
    case Bin::Max: return a < b ? b : a;
    case Bin::FMod: return b == 0 ? T(0) : a % b;
    case Bin::Mod: {
      if (b == 0) return T(0);
      const T r = a % b;
      return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
    }
    default: return T(0);
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
    if constexpr (std::is_integral<T>::value) y[i] = apply_int(op, a[oa], b[ob]);
    else st(y, i, apply(op, ld(a, oa), ld(b, ob)));
  }
}


class BinaryKernel : public CudaKernel {
 public:
  BinaryKernel(const KernelCreateArgs& a, Bin op) : CudaKernel(a), op_(op) {}
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const TensorView& y = out[0];
    const bool integer = y.dtype == DType::Int64 || y.dtype == DType::Int32;
    if (integer && op_ == Bin::Pow) fail("integer Pow is not supported on CUDA");
    if (!integer) expect_floatish(y, "output");
    for (size_t i = 0; i < in.size(); ++i)
      if (in[i].dtype != y.dtype)
        fail("input " + std::to_string(i) + " is " + dtype_name(in[i].dtype) + ", the output " + dtype_name(y.dtype) + "; they must match");
    cudaStream_t s = stream_of(ctx);
    if (in.size() == 1) {  // variadic Min/Max of one tensor
      if (y.bytes()) UNIRT_CUDA(cudaMemcpyAsync(y.data, in[0].data, y.bytes(), cudaMemcpyDeviceToDevice, s));
      return;
    }
    // Min/Max over more than two inputs fold pairwise into the output buffer, which therefore
    // must already have the full shape after the first pair.
    if (in.size() > 2 && broadcast(in[0].shape, in[1].shape) != y.shape)
      fail("variadic Min/Max on CUDA needs the first two inputs to broadcast to the output shape");
    apply_pair(in[0], in[1], y, s);
    for (size_t i = 2; i < in.size(); ++i) apply_pair(y, in[i], y, s);
  }

 private:
  static std::vector<int64_t> broadcast(std::vector<int64_t> a, std::vector<int64_t> b) {
    while (a.size() < b.size()) a.insert(a.begin(), 1);
    while (b.size() < a.size()) b.insert(b.begin(), 1);
    for (size_t i = 0; i < a.size(); ++i) a[i] = a[i] == 1 ? b[i] : a[i];
    return a;
  }
  void apply_pair(const TensorView& A, const TensorView& B, const TensorView& y, cudaStream_t s) {
    if (y.dtype == DType::Int64 || y.dtype == DType::Int32) {
      const int64_t n = y.numel();
      if (n == 0) return;
      const Dims od = dims_of(y.shape);
      const Strides sa = strides_for(A.shape, y.shape), sb = strides_for(B.shape, y.shape);
      if (y.dtype == DType::Int64)
        binary_general<<<grid_for(n), 256, 0, s>>>(op_, A.as<int64_t>(), B.as<int64_t>(), y.as<int64_t>(), n, od, sa, sb);
      else
        binary_general<<<grid_for(n), 256, 0, s>>>(op_, A.as<int32_t>(), B.as<int32_t>(), y.as<int32_t>(), n, od, sa, sb);
      check_launch(node_);
      return;
    }
    if (y.dtype == DType::Float16) go<__half>(A, B, y, s);
    else go<float>(A, B, y, s);
    check_launch(node_);
  }
  template <typename T>
  void go(const TensorView& A, const TensorView& B, const TensorView& o, cudaStream_t s) {
    const int64_t n = o.numel();
    if (n == 0) return;
    const T* a = A.as<T>();
    const T* b = B.as<T>();
    T* y = o.as<T>();
    const int64_t na = A.numel(), nb = B.numel();
    constexpr bool kHalf = std::is_same<T, __half>::value;
    const bool vec = kHalf && n % 8 == 0 && n < (int64_t{1} << 31) && aligned16(a) && aligned16(b) && aligned16(y);
    if (na == n && nb == n) {
      if (vec) return binary_same_h8<<<grid_for(n / 8), 256, 0, s>>>(op_, reinterpret_cast<const uint4*>(a), reinterpret_cast<const uint4*>(b),
                                                              reinterpret_cast<uint4*>(y), static_cast<int>(n / 8));
      return binary_same<<<grid_for(n), 256, 0, s>>>(op_, a, b, y, n);
    }
    if (vec && na == n && nb % 8 == 0 && n % nb == 0 && B.shape.size() <= o.shape.size() &&
        std::equal(B.shape.begin(), B.shape.end(), o.shape.end() - B.shape.size()))
      return binary_tail_h8<<<grid_for(n / 8), 256, 0, s>>>(op_, reinterpret_cast<const uint4*>(a), reinterpret_cast<const uint4*>(b),
                                                            reinterpret_cast<uint4*>(y), static_cast<int>(n / 8), static_cast<int>(nb / 8));
    // One operand full, the other a suffix of the output shape (bias, scalar) or a per-channel vector.
    for (int swap = 0; swap < 2; ++swap) {
      const TensorView& full = swap ? B : A;
      const TensorView& part = swap ? A : B;
      if (full.numel() != n) continue;
      const T* pf = full.as<T>();
      const T* pp = part.as<T>();
      std::vector<int64_t> ps = part.shape;
      while (!ps.empty() && ps.front() == 1) ps.erase(ps.begin());
      if (ps.size() <= o.shape.size() && std::equal(ps.begin(), ps.end(), o.shape.end() - ps.size()))
        return binary_tail<<<grid_for(n), 256, 0, s>>>(op_, pf, pp, y, n, std::max<int64_t>(1, part.numel()), swap == 1);
      std::vector<int64_t> full_b = part.shape;
      while (full_b.size() < o.shape.size()) full_b.insert(full_b.begin(), 1);
      int nontrivial = -1, count = 0;
      for (size_t k = 0; k < full_b.size(); ++k)
        if (full_b[k] != 1) nontrivial = static_cast<int>(k), ++count;
      if (count == 1 && full_b[nontrivial] == o.shape[nontrivial]) {  // [C,1,1] against NCHW
        int64_t inner = 1;
        for (size_t k = nontrivial + 1; k < o.shape.size(); ++k) inner *= o.shape[k];
        return binary_channel<<<grid_for(n), 256, 0, s>>>(op_, pf, pp, y, n, inner, o.shape[nontrivial], swap == 1);
      }
    }
    binary_general<<<grid_for(n), 256, 0, s>>>(op_, a, b, y, n, dims_of(o.shape), strides_for(A.shape, o.shape),
                                                strides_for(B.shape, o.shape));
  }
  Bin op_;
};

#define CUDA_BINARY(OP)                                                              \
  class OP##Kernel : public BinaryKernel {                                           \
   public:                                                                           \
    explicit OP##Kernel(const KernelCreateArgs& a) : BinaryKernel(a, Bin::OP) {}     \
  }
CUDA_BINARY(Add);
CUDA_BINARY(Sub);
CUDA_BINARY(Mul);
CUDA_BINARY(Div);
CUDA_BINARY(Pow);
CUDA_BINARY(Min);
CUDA_BINARY(Max);
#undef CUDA_BINARY
class ModKernel : public BinaryKernel {
 public:
  explicit ModKernel(const KernelCreateArgs& a) : BinaryKernel(a, a.node.attr_i("fmod", 0) ? Bin::FMod : Bin::Mod) {}
};
UNIRT_REGISTER_KERNEL(cuda, Add, AddKernel, "float32 float16 int64 int32");
UNIRT_REGISTER_KERNEL(cuda, Sub, SubKernel, "float32 float16 int64 int32");
UNIRT_REGISTER_KERNEL(cuda, Mul, MulKernel, "float32 float16 int64 int32");
UNIRT_REGISTER_KERNEL(cuda, Div, DivKernel, "float32 float16 int64 int32");
UNIRT_REGISTER_KERNEL(cuda, Pow, PowKernel, "float32 float16");
UNIRT_REGISTER_KERNEL(cuda, Min, MinKernel, "float32 float16 int64 int32");
UNIRT_REGISTER_KERNEL(cuda, Max, MaxKernel, "float32 float16 int64 int32");
UNIRT_REGISTER_KERNEL(cuda, Mod, ModKernel, "float32 float16 int64 int32");

// ---- comparisons (bool out) and Where ----

enum class Cmp { Equal, Less, Greater, GreaterOrEqual, LessOrEqual };

template <typename T>
__device__ __forceinline__ bool compare(Cmp op, T x, T z) {
  switch (op) {
    case Cmp::Equal: return x == z;
    case Cmp::Less: return x < z;
    case Cmp::Greater: return x > z;
    case Cmp::GreaterOrEqual: return x >= z;
    default: return x <= z;
  }
}

template <typename T>
__global__ void compare_general(Cmp op, const T* a, const T* b, bool* y, int64_t n, Dims out, Strides sa, Strides sb) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t rem = i, oa = 0, ob = 0;
    for (int k = out.rank - 1; k >= 0; --k) {
      const int64_t idx = rem % out.d[k];
      rem /= out.d[k];
      oa += idx * sa.s[k];
      ob += idx * sb.s[k];
    }
    const T x = a[oa], z = b[ob];
    y[i] = compare(op, x, z);
  }
}

template <>
__global__ void compare_general<__half>(Cmp op, const __half* a, const __half* b, bool* y, int64_t n, Dims out, Strides sa, Strides sb) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t rem = i, oa = 0, ob = 0;
    for (int k = out.rank - 1; k >= 0; --k) {
      const int64_t idx = rem % out.d[k];
      rem /= out.d[k];
      oa += idx * sa.s[k];
      ob += idx * sb.s[k];
    }
    const float x = __half2float(a[oa]), z = __half2float(b[ob]);
    y[i] = compare(op, x, z);
  }
}

class CompareKernel : public CudaKernel {
 public:
  CompareKernel(const KernelCreateArgs& a, Cmp op) : CudaKernel(a), op_(op) {}
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    if (in[0].dtype != in[1].dtype) fail(std::string("inputs are ") + dtype_name(in[0].dtype) + " and " + dtype_name(in[1].dtype));
    if (out[0].dtype != DType::Bool) fail("output must be bool");
    if (!in[0].data || !in[1].data) fail("inputs have no device memory (host shape values reach device kernels only when constant)");
    const int64_t n = out[0].numel();
    if (n == 0) return;
    const Dims od = dims_of(out[0].shape);
    const Strides sa = strides_for(in[0].shape, out[0].shape), sb = strides_for(in[1].shape, out[0].shape);
    cudaStream_t s = stream_of(ctx);
    bool* y = out[0].as<bool>();
    switch (in[0].dtype) {
      case DType::Float32: compare_general<<<grid_for(n), 256, 0, s>>>(op_, in[0].as<float>(), in[1].as<float>(), y, n, od, sa, sb); break;
      case DType::Float16: compare_general<<<grid_for(n), 256, 0, s>>>(op_, in[0].as<__half>(), in[1].as<__half>(), y, n, od, sa, sb); break;
      case DType::Int32: compare_general<<<grid_for(n), 256, 0, s>>>(op_, in[0].as<int32_t>(), in[1].as<int32_t>(), y, n, od, sa, sb); break;
      case DType::Int64: compare_general<<<grid_for(n), 256, 0, s>>>(op_, in[0].as<int64_t>(), in[1].as<int64_t>(), y, n, od, sa, sb); break;
      case DType::Bool: case DType::Uint8:
        compare_general<<<grid_for(n), 256, 0, s>>>(op_, in[0].as<uint8_t>(), in[1].as<uint8_t>(), y, n, od, sa, sb); break;
      default: fail(std::string("comparison of ") + dtype_name(in[0].dtype) + " is not supported on CUDA");
    }
    check_launch(node_);
  }

 private:
  Cmp op_;
};
#define CUDA_COMPARE(OP)                                                             \
  class OP##Kernel : public CompareKernel {                                          \
   public:                                                                           \
    explicit OP##Kernel(const KernelCreateArgs& a) : CompareKernel(a, Cmp::OP) {}    \
  }
CUDA_COMPARE(Equal);
CUDA_COMPARE(Less);
CUDA_COMPARE(Greater);
CUDA_COMPARE(GreaterOrEqual);
CUDA_COMPARE(LessOrEqual);
#undef CUDA_COMPARE
UNIRT_REGISTER_KERNEL(cuda, Equal, EqualKernel, "float32 float16 int64 int32 uint8 bool");
UNIRT_REGISTER_KERNEL(cuda, Less, LessKernel, "float32 float16 int64 int32 uint8 bool");
UNIRT_REGISTER_KERNEL(cuda, Greater, GreaterKernel, "float32 float16 int64 int32 uint8 bool");
UNIRT_REGISTER_KERNEL(cuda, GreaterOrEqual, GreaterOrEqualKernel, "float32 float16 int64 int32 uint8 bool");
UNIRT_REGISTER_KERNEL(cuda, LessOrEqual, LessOrEqualKernel, "float32 float16 int64 int32 uint8 bool");

// Element-size generic: y = c ? x : z, each operand broadcast.
template <typename E>
__global__ void where_general(const bool* c, const E* x, const E* z, E* y, int64_t n, Dims out, Strides sc, Strides sx, Strides sz) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t rem = i, oc = 0, ox = 0, oz = 0;
    for (int k = out.rank - 1; k >= 0; --k) {
      const int64_t idx = rem % out.d[k];
      rem /= out.d[k];
      oc += idx * sc.s[k];
      ox += idx * sx.s[k];
      oz += idx * sz.s[k];
    }
    y[i] = c[oc] ? x[ox] : z[oz];
  }
}

class WhereKernel : public CudaKernel {
 public:
  using CudaKernel::CudaKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    if (in[0].dtype != DType::Bool) fail(std::string("condition must be bool, found ") + dtype_name(in[0].dtype));
    if (in[1].dtype != in[2].dtype || in[1].dtype != out[0].dtype) fail("X, Y and the output must share one type");
    for (int i = 0; i < 3; ++i)
      if (!in[i].data && in[i].numel()) fail("input " + std::to_string(i) + " has no device memory");
    const int64_t n = out[0].numel();
    if (n == 0) return;
    const auto& os = out[0].shape;
    const Dims od = dims_of(os);
    const Strides sc = strides_for(in[0].shape, os), sx = strides_for(in[1].shape, os), sz = strides_for(in[2].shape, os);
    cudaStream_t s = stream_of(ctx);
    const bool* c = in[0].as<bool>();
    switch (dtype_size(out[0].dtype)) {
      case 1: where_general<<<grid_for(n), 256, 0, s>>>(c, in[1].as<uint8_t>(), in[2].as<uint8_t>(), out[0].as<uint8_t>(), n, od, sc, sx, sz); break;
      case 2: where_general<<<grid_for(n), 256, 0, s>>>(c, in[1].as<uint16_t>(), in[2].as<uint16_t>(), out[0].as<uint16_t>(), n, od, sc, sx, sz); break;
      case 4: where_general<<<grid_for(n), 256, 0, s>>>(c, in[1].as<uint32_t>(), in[2].as<uint32_t>(), out[0].as<uint32_t>(), n, od, sc, sx, sz); break;
      case 8: where_general<<<grid_for(n), 256, 0, s>>>(c, in[1].as<uint64_t>(), in[2].as<uint64_t>(), out[0].as<uint64_t>(), n, od, sc, sx, sz); break;
      default: fail(std::string("unsupported type ") + dtype_name(out[0].dtype));
    }
    check_launch(node_);
  }
};
UNIRT_REGISTER_KERNEL(cuda, Where, WhereKernel, "any");

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
