// Index ops on the GPU: GatherElements, ScatterElements, ScatterND (reduction none), TopK (one
// block per row, bitonic sort in shared memory, rows up to 2048 elements), ArgMax/ArgMin. Indices
// live on the device, so a bad one cannot be reported without a synchronisation: a gather clamps
// it into range and a scatter skips it (the CPU backend names it as an error).
#include <cfloat>

#include "cuda/cuda_context.h"
#include "cuda/half_io.cuh"

namespace unirt {
namespace cuda {
namespace {

template <typename I>
__device__ __forceinline__ int64_t wrap(I i, int64_t n) {
  int64_t k = static_cast<int64_t>(i);
  return k < 0 ? k + n : k;
}

// Data offset of indices position `flat` (row-major over `ishape`) with the axis coordinate replaced.
template <typename I>
__device__ __forceinline__ int64_t element_offset(int64_t flat, const Dims& ishape, const Strides& xst, int axis, I idx,
                                                  int64_t axis_len, bool* ok) {
  int64_t off = 0;
  for (int d = ishape.rank - 1; d >= 0; --d) {
    const int64_t c = flat % ishape.d[d];
    flat /= ishape.d[d];
    if (d == axis) {
      int64_t k = wrap(idx, axis_len);
      *ok = k >= 0 && k < axis_len;
      k = k < 0 ? 0 : (k >= axis_len ? axis_len - 1 : k);
      off += k * xst.s[d];
    } else {
      off += c * xst.s[d];
    }
  }
  return off;
}

template <typename E, typename I>
__global__ void gather_elements_kernel(const E* x, const I* idx, E* y, int64_t n, Dims ishape, Strides xst, int axis, int64_t axis_len) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    bool ok;
    y[i] = x[element_offset(i, ishape, xst, axis, idx[i], axis_len, &ok)];
  }
}

template <typename E, typename I>
__global__ void scatter_elements_kernel(const E* u, const I* idx, E* y, int64_t n, Dims ishape, Strides xst, int axis, int64_t axis_len) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    bool ok;
    const int64_t off = element_offset(i, ishape, xst, axis, idx[i], axis_len, &ok);
    if (ok) y[off] = u[i];
  }
}

// updates [tuples, slice] into y at the k-dim index tuples.
template <typename E, typename I>
__global__ void scatter_nd_kernel(const E* u, const I* idx, E* y, int64_t tuples, int64_t slice, int k, Dims xdims, Strides xst) {
  const int64_t n = tuples * slice;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = i / slice, e = i % slice;
    int64_t off = 0;
    bool ok = true;
    for (int d = 0; d < k; ++d) {
      const int64_t c = wrap(idx[t * k + d], xdims.d[d]);
      ok &= c >= 0 && c < xdims.d[d];
      off += c * xst.s[d];
    }
    if (ok) y[off + e] = u[i];
  }
}

template <typename T> __device__ __forceinline__ double key_of(const T* p, int64_t i) { return static_cast<double>(p[i]); }
template <> __device__ __forceinline__ double key_of<__half>(const __half* p, int64_t i) { return __half2float(p[i]); }

// a before b: larger (or smaller) first, NaN as the largest value, equal values by lower index;
// padding (index -1) last.
__device__ __forceinline__ bool topk_before(double va, int ia, double vb, int ib, bool largest) {
  if (ia < 0) return false;
  if (ib < 0) return true;
  const bool na = va != va, nb = vb != vb;
  if (na || nb) return na && !nb ? largest : (!na && nb ? !largest : ia < ib);
  if (va != vb) return largest ? va > vb : va < vb;
  return ia < ib;
}

constexpr int kTopKMax = 2048;

template <typename T>
__global__ void topk_kernel(const T* x, T* y, int64_t* yi, int64_t n, int64_t inner, int64_t k, int pow2, bool largest) {
  __shared__ double keys[kTopKMax];
  __shared__ int ids[kTopKMax];
  const int64_t row = blockIdx.x;  // (outer, inner) pair
  const int64_t o = row / inner, in = row % inner;
  const T* xr = x + o * n * inner + in;
  for (int j = threadIdx.x; j < pow2; j += blockDim.x) {
    keys[j] = j < n ? key_of(xr, j * inner) : 0.0;
    ids[j] = j < n ? j : -1;
  }
  __syncthreads();
  for (int size = 2; size <= pow2; size <<= 1)
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      for (int j = threadIdx.x; j < pow2; j += blockDim.x) {
        const int p = j ^ stride;
        if (p > j) {
          const bool up = (j & size) == 0;  // this pair belongs to an ascending ("before"-ordered) run
          const bool swap = up ? topk_before(keys[p], ids[p], keys[j], ids[j], largest)
                               : topk_before(keys[j], ids[j], keys[p], ids[p], largest);
          if (swap) {
            const double kv = keys[j];
            keys[j] = keys[p];
            keys[p] = kv;
            const int iv = ids[j];
            ids[j] = ids[p];
            ids[p] = iv;
          }
        }
      }
      __syncthreads();
    }
  for (int64_t j = threadIdx.x; j < k; j += blockDim.x) {
    const int src = ids[j];
    y[(o * k + j) * inner + in] = xr[static_cast<int64_t>(src) * inner];
    yi[(o * k + j) * inner + in] = src;
  }
}

template <typename T>
__global__ void arg_reduce_kernel(const T* x, int64_t* y, int64_t outer, int64_t n, int64_t inner, bool is_max, bool last) {
  const int64_t total = outer * inner;
  for (int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; r < total; r += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t o = r / inner, in = r % inner;
    const T* xr = x + o * n * inner + in;
    int64_t best = 0;
    double bv = key_of(xr, 0);
    for (int64_t j = 1; j < n; ++j) {
      const double v = key_of(xr, j * inner);
      if ((is_max ? v > bv : v < bv) || (last && v == bv)) best = j, bv = v;
    }
    y[r] = best;
  }
}

Strides row_strides_of(const std::vector<int64_t>& s) {
  Strides st;
  const auto rs = row_strides(s);
  for (size_t i = 0; i < rs.size(); ++i) st.s[i] = rs[i];
  return st;
}

// Launches f<E, I>() for the data element size and the index type.
template <template <typename, typename> class L, typename... A>
void by_size_and_index(size_t es, DType it, A&&... a) {
  const bool i64 = it == DType::Int64;
#define UNIRT_IDX(E) (i64 ? L<E, int64_t>::go(a...) : L<E, int32_t>::go(a...))
  switch (es) {
    case 1: UNIRT_IDX(uint8_t); break;
    case 2: UNIRT_IDX(uint16_t); break;
    case 4: UNIRT_IDX(uint32_t); break;
    default: UNIRT_IDX(uint64_t); break;
  }
#undef UNIRT_IDX
}

template <typename E, typename I>
struct GatherElementsLaunch {
  static void go(const TensorView& x, const TensorView& idx, const TensorView& y, int axis, cudaStream_t s) {
    const int64_t n = y.numel();
    gather_elements_kernel<<<grid_for(n), 256, 0, s>>>(x.as<E>(), idx.as<I>(), y.as<E>(), n, dims_of(idx.shape), row_strides_of(x.shape),
                                                       axis, x.shape[axis]);
  }
};

template <typename E, typename I>
struct ScatterElementsLaunch {
  static void go(const TensorView& x, const TensorView& idx, const TensorView& u, const TensorView& y, int axis, cudaStream_t s) {
    const int64_t n = u.numel();
    scatter_elements_kernel<<<grid_for(n), 256, 0, s>>>(u.as<E>(), idx.as<I>(), y.as<E>(), n, dims_of(idx.shape), row_strides_of(x.shape),
                                                        axis, x.shape[axis]);
  }
};

template <typename E, typename I>
struct ScatterNDLaunch {
  static void go(const TensorView& x, const TensorView& idx, const TensorView& u, const TensorView& y, cudaStream_t s) {
    const int k = static_cast<int>(idx.shape.back());
    int64_t slice = 1;
    for (size_t d = static_cast<size_t>(k); d < x.shape.size(); ++d) slice *= x.shape[d];
    const int64_t tuples = k ? idx.numel() / k : 0;
    if (tuples * slice == 0) return;
    scatter_nd_kernel<<<grid_for(tuples * slice), 256, 0, s>>>(u.as<E>(), idx.as<I>(), y.as<E>(), tuples, slice, k, dims_of(x.shape),
                                                               row_strides_of(x.shape));
  }
};

class IndexKernel : public CudaKernel {
 public:
  using CudaKernel::CudaKernel;

 protected:
  int axis_of(const std::vector<int64_t>& s, int64_t dflt) const {
    int64_t a = node_.attr_i("axis", dflt);
    if (a < 0) a += static_cast<int64_t>(s.size());
    if (a < 0 || a >= static_cast<int64_t>(s.size())) fail("axis out of range for rank " + std::to_string(s.size()));
    return static_cast<int>(a);
  }
  void expect_device_indices(const TensorView& t) const {
    if (t.dtype != DType::Int64 && t.dtype != DType::Int32) fail("indices must be int64 or int32");
    if (!t.data && t.numel()) fail("indices have no device memory");
  }
  void copy_data(const TensorView& x, const TensorView& y, cudaStream_t s) const {
    if (x.data != y.data && x.bytes()) UNIRT_CUDA(cudaMemcpyAsync(y.data, x.data, x.bytes(), cudaMemcpyDeviceToDevice, s));
  }
  void no_reduction() const {
    const std::string r = node_.attr_s("reduction", "none");
    if (r != "none") fail("reduction '" + r + "' is not implemented by the CUDA backend (none only)");
  }
};

class GatherElementsKernel : public IndexKernel {
 public:
  using IndexKernel::IndexKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_device_indices(in[1]);
    if (out[0].numel() == 0) return;
    by_size_and_index<GatherElementsLaunch>(dtype_size(in[0].dtype), in[1].dtype, in[0], in[1], out[0], axis_of(in[0].shape, 0),
                                            stream_of(ctx));
    check_launch(node_);
  }
};
UNIRT_REGISTER_KERNEL(cuda, GatherElements, GatherElementsKernel);

class ScatterElementsKernel : public IndexKernel {
 public:
  explicit ScatterElementsKernel(const KernelCreateArgs& a) : IndexKernel(a) { no_reduction(); }
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_device_indices(in[1]);
    cudaStream_t s = stream_of(ctx);
    copy_data(in[0], out[0], s);
    if (in[2].numel() == 0) return;
    by_size_and_index<ScatterElementsLaunch>(dtype_size(in[0].dtype), in[1].dtype, in[0], in[1], in[2], out[0], axis_of(in[0].shape, 0), s);
    check_launch(node_);
  }
};
UNIRT_REGISTER_KERNEL(cuda, ScatterElements, ScatterElementsKernel);

class ScatterNDKernel : public IndexKernel {
 public:
  explicit ScatterNDKernel(const KernelCreateArgs& a) : IndexKernel(a) { no_reduction(); }
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_device_indices(in[1]);
    cudaStream_t s = stream_of(ctx);
    copy_data(in[0], out[0], s);
    by_size_and_index<ScatterNDLaunch>(dtype_size(in[0].dtype), in[1].dtype, in[0], in[1], in[2], out[0], s);
    check_launch(node_);
  }
};
UNIRT_REGISTER_KERNEL(cuda, ScatterND, ScatterNDKernel);

class TopKKernel : public IndexKernel {
 public:
  using IndexKernel::IndexKernel;
  size_t prepare(const std::vector<TensorView>& in, const std::vector<TensorView>&) override {
    const int axis = axis_of(in[0].shape, -1);
    if (in[0].shape[axis] > kTopKMax)
      fail("TopK over " + std::to_string(in[0].shape[axis]) + " elements: the CUDA backend sorts rows of up to " + std::to_string(kTopKMax));
    return 0;
  }
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const int axis = axis_of(in[0].shape, -1);
    const int64_t k = opset_ < 10 ? node_.attr_i("k") : host_ints(in[1], "k").at(0);
    const AxisSplit v(in[0].shape, axis);
    if (k < 0 || k > v.n) fail("k " + std::to_string(k) + " is outside 0.." + std::to_string(v.n));
    if (v.outer * v.inner == 0 || k == 0) return;
    int pow2 = 1;
    while (pow2 < v.n) pow2 <<= 1;
    const bool largest = node_.attr_i("largest", 1) != 0;
    const dim3 grid(static_cast<unsigned>(v.outer * v.inner));
    cudaStream_t s = stream_of(ctx);
    switch (in[0].dtype) {
      case DType::Float32: topk_kernel<<<grid, 256, 0, s>>>(in[0].as<float>(), out[0].as<float>(), out[1].as<int64_t>(), v.n, v.inner, k, pow2, largest); break;
      case DType::Float16: topk_kernel<<<grid, 256, 0, s>>>(in[0].as<__half>(), out[0].as<__half>(), out[1].as<int64_t>(), v.n, v.inner, k, pow2, largest); break;
      case DType::Int64: topk_kernel<<<grid, 256, 0, s>>>(in[0].as<int64_t>(), out[0].as<int64_t>(), out[1].as<int64_t>(), v.n, v.inner, k, pow2, largest); break;
      default: fail(std::string("input type ") + dtype_name(in[0].dtype) + " (float32, float16 or int64 expected)");
    }
    check_launch(node_);
  }
};
UNIRT_REGISTER_KERNEL(cuda, TopK, TopKKernel);

class ArgReduceKernel : public IndexKernel {
 public:
  using IndexKernel::IndexKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const AxisSplit v(in[0].shape, axis_of(in[0].shape, 0));
    if (v.n == 0) fail("cannot reduce an empty axis");
    const int64_t total = v.outer * v.inner;
    if (total == 0) return;
    const bool is_max = node_.op_type == "ArgMax", last = node_.attr_i("select_last_index", 0) != 0;
    cudaStream_t s = stream_of(ctx);
    switch (in[0].dtype) {
      case DType::Float32: arg_reduce_kernel<<<grid_for(total), 256, 0, s>>>(in[0].as<float>(), out[0].as<int64_t>(), v.outer, v.n, v.inner, is_max, last); break;
      case DType::Float16: arg_reduce_kernel<<<grid_for(total), 256, 0, s>>>(in[0].as<__half>(), out[0].as<int64_t>(), v.outer, v.n, v.inner, is_max, last); break;
      case DType::Int64: arg_reduce_kernel<<<grid_for(total), 256, 0, s>>>(in[0].as<int64_t>(), out[0].as<int64_t>(), v.outer, v.n, v.inner, is_max, last); break;
      default: fail(std::string("input type ") + dtype_name(in[0].dtype) + " (float32, float16 or int64 expected)");
    }
    check_launch(node_);
  }
};
UNIRT_REGISTER_KERNEL(cuda, ArgMax, ArgReduceKernel);
UNIRT_REGISTER_KERNEL(cuda, ArgMin, ArgReduceKernel);

}  // namespace
}  // namespace cuda
}  // namespace unirt
