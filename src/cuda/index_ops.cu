// Index ops on the GPU: GatherElements, ScatterElements, ScatterND (reduction none), TopK (one
// block per row, bitonic sort in shared memory, for rows up to 2048 elements; longer rows of the
// last axis, like a detector's 200k anchor scores, by CUB's stable segmented radix sort), ArgMax/ArgMin, NonZero
// (CUB's DeviceSelect, then coordinates). TopK with a data k reads k on the device; it and
// NonZero write their output length where the runtime reads data-dependent sizes back. Indices
// live on the device, so a bad one cannot be reported without a synchronisation: a gather clamps
// it into range and a scatter skips it (the CPU backend names it as an error).
#include <cfloat>
#include <map>
#include <type_traits>
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_segmented_radix_sort.cuh>
#include <cub/device/device_select.cuh>
#include <thrust/iterator/counting_iterator.h>

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

// k_dev: k as tensor data (nullptr when known on the host); its value is also written to size_out
// (unclamped, so the runtime can refuse a k beyond the axis).
template <typename T>
__global__ void topk_kernel(const T* x, T* y, int64_t* yi, int64_t n, int64_t inner, int64_t k, int pow2, bool largest,
                            const int64_t* k_dev, int64_t* size_out) {
  if (k_dev) {
    const int64_t kd = *k_dev;
    if (size_out && blockIdx.x == 0 && threadIdx.x == 0) *size_out = kd;
    k = kd < 0 ? 0 : (kd > n ? n : kd);
  }
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

// Long rows: one 64-bit key per element, the row in the high word and the value's order-preserving
// bits in the low word (inverted for largest-first), so one stable device-wide radix sort orders
// every row at once, equal values by lower index. Float16 is read as float32, every NaN as one
// positive NaN (the largest value), -0.0 as +0.0.
template <typename T>
__global__ void topk_keys_kernel(const T* x, unsigned long long* keys, int* ids, int64_t rows, int64_t n, bool largest) {
  const int64_t total = rows * n;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    float v = static_cast<float>(key_of(x, i));
    if (v != v) v = __int_as_float(0x7fc00000);
    if (v == 0.f) v = 0.f;
    unsigned u = __float_as_uint(v);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    if (largest) u = ~u;
    keys[i] = (static_cast<unsigned long long>(i / n) << 32) | u;
    ids[i] = static_cast<int>(i % n);
  }
}

// int64 values do not fit beside the row: their rows sort as segments.
__global__ void topk_int_keys_kernel(const int64_t* x, int64_t* keys, int* ids, int* offsets, int64_t rows, int64_t n) {
  const int64_t total = rows * n;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    keys[i] = x[i];
    ids[i] = static_cast<int>(i % n);
    if (i % n == 0) offsets[i / n] = static_cast<int>(i);
    if (i == total - 1) offsets[rows] = static_cast<int>(total);
  }
}

template <typename T>
__global__ void topk_take_kernel(const T* x, const int* order, T* y, int64_t* yi, int64_t rows, int64_t n, int64_t k,
                                 const int64_t* k_dev, int64_t* size_out) {
  if (k_dev) {
    const int64_t kd = *k_dev;
    if (size_out && blockIdx.x == 0 && threadIdx.x == 0) *size_out = kd;
    k = kd < 0 ? 0 : (kd > n ? n : kd);
  }
  const int64_t total = rows * k;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / k, j = i % k;
    const int src = order[r * n + j];
    y[i] = x[r * n + src];
    yi[i] = src;
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

Strides device_strides_of(const std::vector<int64_t>& s) {
  Strides st;
  const auto rs = strides_of(s);
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
    gather_elements_kernel<<<grid_for(n), 256, 0, s>>>(x.as<E>(), idx.as<I>(), y.as<E>(), n, dims_of(idx.shape), device_strides_of(x.shape),
                                                       axis, x.shape[axis]);
  }
};

template <typename E, typename I>
struct ScatterElementsLaunch {
  static void go(const TensorView& x, const TensorView& idx, const TensorView& u, const TensorView& y, int axis, cudaStream_t s) {
    const int64_t n = u.numel();
    scatter_elements_kernel<<<grid_for(n), 256, 0, s>>>(u.as<E>(), idx.as<I>(), y.as<E>(), n, dims_of(idx.shape), device_strides_of(x.shape),
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
                                                               device_strides_of(x.shape));
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
UNIRT_REGISTER_KERNEL(cuda, GatherElements, GatherElementsKernel, "any", "rank <= 8");

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
UNIRT_REGISTER_KERNEL(cuda, ScatterElements, ScatterElementsKernel, "any", "rank <= 8");

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
UNIRT_REGISTER_KERNEL(cuda, ScatterND, ScatterNDKernel, "any", "rank <= 8");

class TopKKernel : public IndexKernel {
 public:
  using IndexKernel::IndexKernel;
  size_t prepare(const std::vector<TensorView>& in, const std::vector<TensorView>&) override {
    const int axis = axis_of(in[0].shape, -1);
    const AxisSplit v(in[0].shape, axis);
    if (v.n <= kTopKMax) return 0;
    if (v.inner != 1)
      fail("TopK over " + std::to_string(v.n) + " elements of a non-last axis: the CUDA backend sorts rows of up to " +
           std::to_string(kTopKMax) + " there (longer rows on the last axis)");
    if (v.outer * v.n >= (int64_t{1} << 31)) fail("TopK over " + std::to_string(v.outer * v.n) + " elements (at most 2^31 - 1 on CUDA)");
    const size_t items = static_cast<size_t>(v.outer * v.n);
    const bool int_keys = in[0].dtype == DType::Int64;
    size_t cub_bytes = 0;
    const int ni = static_cast<int>(items), nr = static_cast<int>(v.outer);
    int end_bit = 32;
    while (end_bit < 64 && (int64_t{1} << (end_bit - 32)) < v.outer) ++end_bit;
    if (int_keys)
      UNIRT_CUDA(cub::DeviceSegmentedRadixSort::SortPairsDescending(nullptr, cub_bytes, static_cast<const int64_t*>(nullptr),
                                                                    static_cast<int64_t*>(nullptr), static_cast<const int*>(nullptr),
                                                                    static_cast<int*>(nullptr), ni, nr, static_cast<const int*>(nullptr),
                                                                    static_cast<const int*>(nullptr) + 1));
    else
      UNIRT_CUDA(cub::DeviceRadixSort::SortPairs(nullptr, cub_bytes, static_cast<const unsigned long long*>(nullptr),
                                                 static_cast<unsigned long long*>(nullptr), static_cast<const int*>(nullptr),
                                                 static_cast<int*>(nullptr), ni, 0, end_bit));
    auto round = [](size_t b) { return (b + 255) / 256 * 256; };
    Layout l{0, round(items * sizeof(int64_t)), 0, 0, 0, cub_bytes, 0, end_bit};
    l.ids = 2 * l.keys_out;
    l.order = l.ids + round(items * sizeof(int));
    l.offsets = l.order + round(items * sizeof(int));
    l.cub = l.offsets + round((v.outer + 1) * sizeof(int));
    long_rows_[in[0].shape] = l;
    return l.cub + round(cub_bytes);
  }
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const int axis = axis_of(in[0].shape, -1);
    // A k that is tensor data (the runtime then gives a third output for the size) is read on the device.
    const bool data_k = opset_ >= 10 && out.size() > 2;
    const int64_t* k_dev = nullptr;
    int64_t* size_out = nullptr;
    int64_t k;
    const AxisSplit v(in[0].shape, axis);
    if (data_k) {
      if (in[1].dtype != DType::Int64 || !in[1].data) fail("k must be an int64 tensor in device memory");
      k_dev = in[1].as<int64_t>();
      size_out = out[2].as<int64_t>();
      k = v.n;
    } else {
      k = opset_ < 10 ? node_.attr_i("k") : host_ints(in[1], "k").at(0);
      if (k < 0 || k > v.n) fail("k " + std::to_string(k) + " is outside 0.." + std::to_string(v.n));
    }
    cudaStream_t s = stream_of(ctx);
    if (v.outer * v.inner == 0 || k == 0) {
      if (size_out) UNIRT_CUDA(cudaMemcpyAsync(size_out, k_dev, sizeof(int64_t), cudaMemcpyDeviceToDevice, s));
      return;
    }
    const bool largest = node_.attr_i("largest", 1) != 0;
    if (v.n > kTopKMax) {
      auto it = long_rows_.find(in[0].shape);
      if (it == long_rows_.end()) fail("run() for an input shape prepare() never saw");
      return run_long_rows(it->second, in, out, v, k, largest, k_dev, size_out, ctx);
    }
    int pow2 = 1;
    while (pow2 < v.n) pow2 <<= 1;
    const dim3 grid(static_cast<unsigned>(v.outer * v.inner));
    switch (in[0].dtype) {
      case DType::Float32: topk_kernel<<<grid, 256, 0, s>>>(in[0].as<float>(), out[0].as<float>(), out[1].as<int64_t>(), v.n, v.inner, k, pow2, largest, k_dev, size_out); break;
      case DType::Float16: topk_kernel<<<grid, 256, 0, s>>>(in[0].as<__half>(), out[0].as<__half>(), out[1].as<int64_t>(), v.n, v.inner, k, pow2, largest, k_dev, size_out); break;
      case DType::Int64: topk_kernel<<<grid, 256, 0, s>>>(in[0].as<int64_t>(), out[0].as<int64_t>(), out[1].as<int64_t>(), v.n, v.inner, k, pow2, largest, k_dev, size_out); break;
      default: fail(std::string("input type ") + dtype_name(in[0].dtype) + " (float32, float16 or int64 expected)");
    }
    check_launch(node_);
  }

 private:
  struct Layout {
    size_t keys_in, keys_out, ids, order, offsets, cub_bytes, cub;
    int end_bit;
  };

  void run_long_rows(const Layout& l, const std::vector<TensorView>& in, const std::vector<TensorView>& out, const AxisSplit& v, int64_t k,
                     bool largest, const int64_t* k_dev, int64_t* size_out, const RunContext& ctx) const {
    cudaStream_t s = stream_of(ctx);
    char* ws = static_cast<char*>(ctx.workspace);
    const int64_t items = v.outer * v.n;
    int* ids = reinterpret_cast<int*>(ws + l.ids);
    int* order = reinterpret_cast<int*>(ws + l.order);
    size_t bytes = l.cub_bytes;
    if (in[0].dtype == DType::Int64) {
      auto* kin = reinterpret_cast<int64_t*>(ws + l.keys_in);
      auto* kout = reinterpret_cast<int64_t*>(ws + l.keys_out);
      int* offsets = reinterpret_cast<int*>(ws + l.offsets);
      topk_int_keys_kernel<<<grid_for(items), 256, 0, s>>>(in[0].as<int64_t>(), kin, ids, offsets, v.outer, v.n);
      if (largest)
        UNIRT_CUDA(cub::DeviceSegmentedRadixSort::SortPairsDescending(ws + l.cub, bytes, kin, kout, ids, order, static_cast<int>(items),
                                                                      static_cast<int>(v.outer), offsets, offsets + 1, 0, 64, s));
      else
        UNIRT_CUDA(cub::DeviceSegmentedRadixSort::SortPairs(ws + l.cub, bytes, kin, kout, ids, order, static_cast<int>(items),
                                                            static_cast<int>(v.outer), offsets, offsets + 1, 0, 64, s));
      topk_take_kernel<<<grid_for(v.outer * k), 256, 0, s>>>(in[0].as<int64_t>(), order, out[0].as<int64_t>(), out[1].as<int64_t>(), v.outer,
                                                             v.n, k, k_dev, size_out);
      check_launch(node_);
      return;
    }
    auto* kin = reinterpret_cast<unsigned long long*>(ws + l.keys_in);
    auto* kout = reinterpret_cast<unsigned long long*>(ws + l.keys_out);
    if (in[0].dtype == DType::Float16)
      topk_keys_kernel<<<grid_for(items), 256, 0, s>>>(in[0].as<__half>(), kin, ids, v.outer, v.n, largest);
    else if (in[0].dtype == DType::Float32)
      topk_keys_kernel<<<grid_for(items), 256, 0, s>>>(in[0].as<float>(), kin, ids, v.outer, v.n, largest);
    else
      fail(std::string("input type ") + dtype_name(in[0].dtype) + " (float32, float16 or int64 expected)");
    UNIRT_CUDA(cub::DeviceRadixSort::SortPairs(ws + l.cub, bytes, kin, kout, ids, order, static_cast<int>(items), 0, l.end_bit, s));
    if (in[0].dtype == DType::Float16)
      topk_take_kernel<<<grid_for(v.outer * k), 256, 0, s>>>(in[0].as<__half>(), order, out[0].as<__half>(), out[1].as<int64_t>(), v.outer,
                                                             v.n, k, k_dev, size_out);
    else
      topk_take_kernel<<<grid_for(v.outer * k), 256, 0, s>>>(in[0].as<float>(), order, out[0].as<float>(), out[1].as<int64_t>(), v.outer,
                                                             v.n, k, k_dev, size_out);
    check_launch(node_);
  }

  std::map<std::vector<int64_t>, Layout> long_rows_;  // per input shape (prepare() sees them all first)
};
UNIRT_REGISTER_KERNEL(cuda, TopK, TopKKernel, "float32 float16 int64");

// unirt.MultiLevelTopK: every level's rows in one radix sort. Keys as the long-row TopK's (the
// segment (batch, level) in the high word, the order-inverted score bits in the low word; the sort
// is stable, so equal scores keep the lower index first), then each segment's first k_l written
// into the level's slice of the values row and into its indices output.
constexpr int kMaxTopKLevels = 16;
struct MultiLevelTopKArgs {
  const float* x[kMaxTopKLevels];
  int64_t* idx[kMaxTopKLevels];
  int64_t n[kMaxTopKLevels], k[kMaxTopKLevels];
  int64_t start[kMaxTopKLevels + 1], koff[kMaxTopKLevels + 1];  // prefix sums of n and k
  int levels;
  int64_t batch;
};

__device__ __forceinline__ int level_of(const int64_t* prefix, int levels, int64_t j) {
  int l = 0;
  while (l + 1 < levels && prefix[l + 1] <= j) ++l;
  return l;
}

__global__ void multilevel_topk_keys_kernel(MultiLevelTopKArgs a, unsigned long long* keys, int* ids) {
  const int64_t row = a.start[a.levels], total = a.batch * row;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = i / row, j = i % row;
    const int l = level_of(a.start, a.levels, j);
    const int64_t e = j - a.start[l];
    float v = a.x[l][b * a.n[l] + e];
    if (v != v) v = __int_as_float(0x7fc00000);
    if (v == 0.f) v = 0.f;
    unsigned u = __float_as_uint(v);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    u = ~u;  // largest first
    keys[i] = (static_cast<unsigned long long>(b * a.levels + l) << 32) | u;
    ids[i] = static_cast<int>(e);
  }
}

__global__ void multilevel_topk_take_kernel(MultiLevelTopKArgs a, const int* order, float* y) {
  const int64_t krow = a.koff[a.levels], total = a.batch * krow;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = i / krow, j = i % krow;
    const int l = level_of(a.koff, a.levels, j);
    const int64_t r = j - a.koff[l];
    const int src = order[b * a.start[a.levels] + a.start[l] + r];
    y[i] = a.x[l][b * a.n[l] + src];
    if (a.idx[l]) a.idx[l][b * a.k[l] + r] = src;
  }
}

class MultiLevelTopKKernel : public IndexKernel {
 public:
  using IndexKernel::IndexKernel;
  size_t prepare(const std::vector<TensorView>& in, const std::vector<TensorView>&) override {
    const int levels = static_cast<int>(in.size()) / 2;
    if (levels < 2 || levels > kMaxTopKLevels) fail("between 2 and " + std::to_string(kMaxTopKLevels) + " levels are supported on CUDA");
    int64_t items = 0;
    std::vector<int64_t> key;
    for (int l = 0; l < levels; ++l) {
      if (in[l].dtype != DType::Float32) fail("scores must be float32 (score selection stays float32)");
      if (in[l].shape.size() != 2 || in[l].shape[0] != in[0].shape[0]) fail("scores of level " + std::to_string(l) + " must be [batch, n]");
      items += in[l].shape[0] * in[l].shape[1];
      key.push_back(in[l].shape[1]);
    }
    key.push_back(in[0].shape[0]);
    if (items >= (int64_t{1} << 31)) fail("more than 2^31 - 1 scores");
    int end_bit = 32;
    while (end_bit < 64 && (int64_t{1} << (end_bit - 32)) < in[0].shape[0] * levels) ++end_bit;
    size_t cub_bytes = 0;
    UNIRT_CUDA(cub::DeviceRadixSort::SortPairs(nullptr, cub_bytes, static_cast<const unsigned long long*>(nullptr),
                                               static_cast<unsigned long long*>(nullptr), static_cast<const int*>(nullptr),
                                               static_cast<int*>(nullptr), static_cast<int>(items), 0, end_bit));
    auto round = [](size_t b) { return (b + 255) / 256 * 256; };
    Layout l{};
    l.keys_out = round(static_cast<size_t>(items) * 8);
    l.ids = 2 * l.keys_out;
    l.order = l.ids + round(static_cast<size_t>(items) * 4);
    l.cub = l.order + round(static_cast<size_t>(items) * 4);
    l.cub_bytes = cub_bytes;
    l.end_bit = end_bit;
    l.items = items;
    layouts_[key] = l;
    return l.cub + round(cub_bytes);
  }
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const int levels = static_cast<int>(in.size()) / 2;
    std::vector<int64_t> key;
    for (int l = 0; l < levels; ++l) key.push_back(in[l].shape[1]);
    key.push_back(in[0].shape[0]);
    auto it = layouts_.find(key);
    if (it == layouts_.end()) fail("run() for an input shape prepare() never saw");
    const Layout& lay = it->second;
    MultiLevelTopKArgs a{};
    a.levels = levels;
    a.batch = in[0].shape[0];
    for (int l = 0; l < levels; ++l) {
      a.x[l] = in[l].as<float>();
      a.n[l] = in[l].shape[1];
      const auto k = host_ints(in[levels + l], "k");
      if (k.size() != 1 || k[0] < 0 || k[0] > a.n[l]) fail("k of level " + std::to_string(l) + " must be one value in 0.." + std::to_string(a.n[l]));
      a.k[l] = k[0];
      a.idx[l] = out.size() > static_cast<size_t>(l + 1) && out[l + 1].data ? out[l + 1].as<int64_t>() : nullptr;
      a.start[l + 1] = a.start[l] + a.n[l];
      a.koff[l + 1] = a.koff[l] + a.k[l];
    }
    if (lay.items == 0 || a.koff[levels] == 0) return;
    cudaStream_t s = stream_of(ctx);
    char* ws = static_cast<char*>(ctx.workspace);
    auto* kin = reinterpret_cast<unsigned long long*>(ws);
    auto* kout = reinterpret_cast<unsigned long long*>(ws + lay.keys_out);
    int* ids = reinterpret_cast<int*>(ws + lay.ids);
    int* order = reinterpret_cast<int*>(ws + lay.order);
    multilevel_topk_keys_kernel<<<grid_for(lay.items), 256, 0, s>>>(a, kin, ids);
    size_t bytes = lay.cub_bytes;
    UNIRT_CUDA(cub::DeviceRadixSort::SortPairs(ws + lay.cub, bytes, kin, kout, ids, order, static_cast<int>(lay.items), 0, lay.end_bit, s));
    multilevel_topk_take_kernel<<<grid_for(a.batch * a.koff[levels]), 256, 0, s>>>(a, order, out[0].as<float>());
    check_launch(node_);
  }

 private:
  struct Layout {
    size_t keys_out, ids, order, cub, cub_bytes;
    int end_bit;
    int64_t items;
  };
  std::map<std::vector<int64_t>, Layout> layouts_;  // per level sizes and batch (prepare() sees them all first)
};
UNIRT_REGISTER_KERNEL(cuda, unirt.MultiLevelTopK, MultiLevelTopKKernel, "float32", "scores [batch, n_l] per level, k_l one int64 each");

// Nonzero test on the element's bits: the sign bit does not count for floats (-0.0 is zero, NaN
// is not), every bit counts for integers and bool.
template <typename B>
struct NonzeroBits {
  const B* x;
  B mask;
  __device__ bool operator()(int64_t i) const { return (x[i] & mask) != 0; }
};

__global__ void nonzero_coords_kernel(const int64_t* flat, const int64_t* count, int64_t* y, Dims shape, int64_t bound) {
  const int64_t c = *count;
  for (int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; j < c && j < bound; j += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t f = flat[j];
    for (int d = shape.rank - 1; d >= 0; --d) {
      y[d * c + j] = f % shape.d[d];
      f /= shape.d[d];
    }
  }
}

class NonZeroKernel : public IndexKernel {
 public:
  using IndexKernel::IndexKernel;
  size_t prepare(const std::vector<TensorView>& in, const std::vector<TensorView>&) override {
    const int64_t n = std::max<int64_t>(1, in[0].numel());
    if (in[0].shape.size() > static_cast<size_t>(kMaxDims)) fail("rank above " + std::to_string(kMaxDims));
    cub_bytes_ = 0;
    by_bits(in[0].dtype, [&](auto tag) {
      using B = decltype(tag);
      UNIRT_CUDA(cub::DeviceSelect::If(nullptr, cub_bytes_, thrust::counting_iterator<int64_t>(0), static_cast<int64_t*>(nullptr),
                                       static_cast<int64_t*>(nullptr), n, NonzeroBits<B>{nullptr, 0}, nullptr));
    });
    flat_bytes_ = align(static_cast<size_t>(n) * sizeof(int64_t));
    return flat_bytes_ + align(sizeof(int64_t)) + align(cub_bytes_);
  }
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const int64_t n = in[0].numel();
    char* ws = static_cast<char*>(ctx.workspace);
    int64_t* flat = reinterpret_cast<int64_t*>(ws);
    int64_t* count = out.size() > 1 ? out[1].as<int64_t>() : reinterpret_cast<int64_t*>(ws + flat_bytes_);
    void* temp = ws + flat_bytes_ + align(sizeof(int64_t));
    cudaStream_t s = stream_of(ctx);
    if (n == 0) {
      UNIRT_CUDA(cudaMemsetAsync(count, 0, sizeof(int64_t), s));
      return;
    }
    by_bits(in[0].dtype, [&](auto tag) {
      using B = decltype(tag);
      const bool is_float = in[0].dtype == DType::Float32 || in[0].dtype == DType::Float16 || in[0].dtype == DType::Float64;
      const B mask = is_float ? static_cast<B>(~(B{1} << (sizeof(B) * 8 - 1))) : static_cast<B>(~B{0});
      size_t bytes = cub_bytes_;
      UNIRT_CUDA(cub::DeviceSelect::If(temp, bytes, thrust::counting_iterator<int64_t>(0), flat, count, n,
                                       NonzeroBits<B>{in[0].as<B>(), mask}, s));
    });
    nonzero_coords_kernel<<<grid_for(n), 256, 0, s>>>(flat, count, out[0].as<int64_t>(), dims_of(in[0].shape), out[0].shape[1]);
    check_launch(node_);
  }

 private:
  static size_t align(size_t b) { return (b + 255) / 256 * 256; }
  template <typename F>
  void by_bits(DType t, F&& f) const {
    switch (dtype_size(t)) {
      case 1: return f(uint8_t{});
      case 2: return f(uint16_t{});
      case 4: return f(uint32_t{});
      case 8: return f(uint64_t{});
      default: fail(std::string("input type ") + dtype_name(t) + " is not supported");
    }
  }
  size_t cub_bytes_ = 0, flat_bytes_ = 0;
};
UNIRT_REGISTER_KERNEL(cuda, NonZero, NonZeroKernel, "any", "rank <= 8");

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
UNIRT_REGISTER_KERNEL(cuda, ArgMax, ArgReduceKernel, "float32 float16 int64");
UNIRT_REGISTER_KERNEL(cuda, ArgMin, ArgReduceKernel, "float32 float16 int64");

}  // namespace
}  // namespace cuda
}  // namespace unirt
