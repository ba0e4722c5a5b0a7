// Data movement: Transpose (dims merged first; tiled last-two swap, row copies, or a general
// strided gather), Slice, Expand, Gather, Pad (constant), Concat, Split, Tile. Element size is all
// that matters, so every dtype works.
#include <numeric>

#include "cuda/cuda_context.h"

namespace unirt {
namespace cuda {
namespace {


// V elements moved as one load/store: copies along a contiguous last dim go 16 bytes at a time.
template <typename E, int V>
struct alignas(sizeof(E) * V) Pack {
  using Elem = E;
  E e[V];
};

// out[i] = in[base + sum_k idx_k(i) * stride_k]. I is the index type: 32-bit division is several
// times cheaper than 64-bit, and these kernels are bound by their index arithmetic.
template <typename P, typename I>
__global__ void strided_gather(const P* in, P* out, I n, Dims od, Strides is, I base) {
  I dims[kMaxDims], strides[kMaxDims];
#pragma unroll
  for (int k = 0; k < kMaxDims; ++k) dims[k] = static_cast<I>(od.d[k]), strides[k] = static_cast<I>(is.s[k]);
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < n; i += I(gridDim.x) * blockDim.x) {
    I rem = i, off = base;
    for (int k = od.rank - 1; k >= 0; --k) {
      off += (rem % dims[k]) * strides[k];
      rem /= dims[k];
    }
    out[i] = in[off];
  }
}

// The widest pack (up to 16 bytes) that every count in `counts` and both pointers allow.
int pack_elems(size_t es, const std::vector<int64_t>& counts, const void* a, const void* b) {
  for (int v = static_cast<int>(16 / es); v > 1; v /= 2) {
    bool ok = (reinterpret_cast<uintptr_t>(a) | reinterpret_cast<uintptr_t>(b)) % (v * es) == 0;
    for (int64_t c : counts) ok &= c % v == 0;
    if (ok) return v;
  }
  return 1;
}

// True when n and every offset base + sum_k idx_k * stride_k fit in 32 bits (|partial sums| too).
bool fits_int32(int64_t n, const Dims& d, const int64_t* strides, int64_t base) {
  int64_t reach = base < 0 ? -base : base;
  for (int k = 0; k < d.rank; ++k) reach += (d.d[k] - 1) * (strides[k] < 0 ? -strides[k] : strides[k]);
  return n < INT32_MAX && reach < INT32_MAX;
}

// Calls f(Pack<E, V>{}) for the unsigned type E of `es` bytes and a pack of `v` elements.
template <typename F>
void with_pack(size_t es, int v, F&& f) {
  switch (es * v) {
    case 1: f(Pack<uint8_t, 1>{}); break;
    case 2: es == 1 ? f(Pack<uint8_t, 2>{}) : f(Pack<uint16_t, 1>{}); break;
    case 4: es == 4 ? f(Pack<uint32_t, 1>{}) : es == 2 ? f(Pack<uint16_t, 2>{}) : f(Pack<uint8_t, 4>{}); break;
    case 8: es == 8 ? f(Pack<uint64_t, 1>{}) : es == 4 ? f(Pack<uint32_t, 2>{}) : es == 2 ? f(Pack<uint16_t, 4>{}) : f(Pack<uint8_t, 8>{}); break;
    default: es == 8 ? f(Pack<uint64_t, 2>{}) : es == 4 ? f(Pack<uint32_t, 4>{}) : es == 2 ? f(Pack<uint16_t, 8>{}) : f(Pack<uint8_t, 16>{}); break;
  }
}

// Tiled transpose of the last two dims of a [batch, R, C] view: coalesced reads and writes.
template <typename E>
__global__ void transpose_last2(const E* in, E* out, int64_t R, int64_t C) {
  __shared__ E tile[32][33];
  const int64_t b = blockIdx.z;
  const int64_t r0 = blockIdx.y * 32, c0 = blockIdx.x * 32;
  const E* src = in + b * R * C;
  E* dst = out + b * R * C;
  for (int j = threadIdx.y; j < 32; j += 8) {
    const int64_t r = r0 + j, c = c0 + threadIdx.x;
    if (r < R && c < C) tile[j][threadIdx.x] = src[r * C + c];
  }
  __syncthreads();
  for (int j = threadIdx.y; j < 32; j += 8) {
    const int64_t c = c0 + j, r = r0 + threadIdx.x;
    if (r < R && c < C) dst[c * R + r] = tile[threadIdx.x][j];
  }
}

void launch_gather(const TensorView& in, const TensorView& out, const Strides& strides, int64_t base, cudaStream_t s) {
  int64_t n = out.numel();
  if (n == 0) return;
  Dims od = dims_of(out.shape);
  Strides is = strides;
  const size_t es = dtype_size(out.dtype);
  const int r = od.rank;
  int v = 1;
  if (r > 0 && is.s[r - 1] == 1) {  // the last dim is a contiguous run: move it in packs
    std::vector<int64_t> counts{od.d[r - 1], base};
    for (int k = 0; k < r - 1; ++k) counts.push_back(is.s[k]);
    v = pack_elems(es, counts, in.data, out.data);
  }
  if (v > 1) {
    od.d[r - 1] /= v;
    for (int k = 0; k < r - 1; ++k) is.s[k] /= v;
    base /= v;
    n /= v;
  }
  const bool narrow = fits_int32(n, od, is.s, base);
  with_pack(es, v, [&](auto pack) {
    using P = decltype(pack);
    if (narrow)
      strided_gather<P, int32_t><<<grid_for(n), 256, 0, s>>>(static_cast<const P*>(in.data), static_cast<P*>(out.data),
                                                              static_cast<int32_t>(n), od, is, static_cast<int32_t>(base));
    else
      strided_gather<P, int64_t><<<grid_for(n), 256, 0, s>>>(static_cast<const P*>(in.data), static_cast<P*>(out.data), n, od, is, base);
  });
}

}  // namespace

void strided_copy(const void* in, void* out, DType t, const std::vector<int64_t>& out_shape, const std::vector<int64_t>& in_strides,
                  int64_t base, cudaStream_t stream) {
  TensorView a, b;
  a.data = const_cast<void*>(in);
  a.dtype = b.dtype = t;
  b.data = out;
  b.shape = out_shape;
  Strides st;
  for (size_t i = 0; i < in_strides.size(); ++i) st.s[i] = in_strides[i];
  launch_gather(a, b, st, base, stream);
}

namespace {

class TransposeKernel : public CudaKernel {
 public:
  using CudaKernel::CudaKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const auto& xs = in[0].shape;
    auto perm = node_.attr_ints("perm");
    if (perm.empty())
      for (int64_t i = static_cast<int64_t>(xs.size()) - 1; i >= 0; --i) perm.push_back(i);
    if (in[0].numel() == 0) return;
    // Merge input dims that stay adjacent and in order in the output, and drop size-1 dims:
    // NCHW->NHWC becomes [N, C, HW] -> [N, HW, C], a batched 2-D transpose.
    std::vector<int64_t> dims;     // merged input dims
    std::vector<int> group_of(xs.size(), -1);
    std::vector<int64_t> order;    // output order of merged groups
    for (size_t o = 0; o < perm.size(); ++o) {
      const int64_t a = perm[o];
      if (xs[a] == 1) continue;
      if (!order.empty()) {
        const int64_t prev = order.back();
        // extend the previous group when input axis a directly follows its last axis
        int64_t last_axis = -1;
        for (size_t k = 0; k < xs.size(); ++k) if (group_of[k] == prev) last_axis = static_cast<int64_t>(k);
        int64_t next = last_axis + 1;
        while (next < a && xs[next] == 1) ++next;
        if (next == a) {
          group_of[a] = static_cast<int>(prev);
          dims[prev] *= xs[a];
          continue;
        }
      }
      group_of[a] = static_cast<int>(dims.size());
      order.push_back(static_cast<int64_t>(dims.size()));
      dims.push_back(xs[a]);
    }
    // Groups are numbered in output order; their input order follows the first input axis of each.
    const int g = static_cast<int>(dims.size());
    std::vector<int64_t> first_axis(g, -1);
    for (size_t k = 0; k < xs.size(); ++k)
      if (group_of[k] >= 0 && first_axis[group_of[k]] < 0) first_axis[group_of[k]] = static_cast<int64_t>(k);
    std::vector<int> in_order(g);
    for (int i = 0; i < g; ++i) in_order[i] = i;
    std::sort(in_order.begin(), in_order.end(), [&](int a, int b) { return first_axis[a] < first_axis[b]; });
    std::vector<int64_t> in_stride(g);
    int64_t s = 1;
    for (int i = g - 1; i >= 0; --i) {
      in_stride[in_order[i]] = s;
      s *= dims[in_order[i]];
    }
    cudaStream_t st = stream_of(ctx);
    const size_t es = dtype_size(in[0].dtype);
    const int64_t n = in[0].numel();
    if (g <= 1) {
      UNIRT_CUDA(cudaMemcpyAsync(out[0].data, in[0].data, in[0].bytes(), cudaMemcpyDeviceToDevice, st));
      return;
    }
    // Batched last-two swap: output groups (..., A, B) with input order (..., B, A).
    bool last2 = in_stride[g - 2] == 1 && in_stride[g - 1] == dims[g - 2];
    for (int i = 0; i + 2 < g && last2; ++i) last2 = in_order[i] == i;
    if (last2 && (es == 2 || es == 4)) {
      const int64_t R = dims[g - 1], C = dims[g - 2], B = n / (R * C);
      dim3 grid(static_cast<unsigned>((C + 31) / 32), static_cast<unsigned>((R + 31) / 32), static_cast<unsigned>(B));
      if (es == 4) transpose_last2<<<grid, dim3(32, 8), 0, st>>>(in[0].as<uint32_t>(), out[0].as<uint32_t>(), R, C);
      else transpose_last2<<<grid, dim3(32, 8), 0, st>>>(in[0].as<uint16_t>(), out[0].as<uint16_t>(), R, C);
      check_launch(node_);
      return;
    }
    // The innermost output group is contiguous in the input (attention's head split keeps
    // head_dim rows): a gather over the merged groups, which moves those rows in packs of up to 16
    // bytes, one pack per thread, so even 64-element rows keep every lane busy.
    if (in_stride[g - 1] == 1) {
      TensorView merged = out[0];
      merged.shape = dims;
      Strides is;
      for (int i = 0; i < g; ++i) is.s[i] = in_stride[i];
      launch_gather(in[0], merged, is, 0, st);
      check_launch(node_);
      return;
    }
    auto rs = strides_of(xs);
    Strides is;
    for (size_t i = 0; i < perm.size(); ++i) is.s[i] = rs[perm[i]];
    launch_gather(in[0], out[0], is, 0, st);
    check_launch(node_);
  }
};
UNIRT_REGISTER_KERNEL(cuda, Transpose, TransposeKernel, "any", "rank <= 8 (Dims/Strides of the gather kernel)");

class SliceKernel : public CudaKernel {
 public:
  using CudaKernel::CudaKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const auto& xs = in[0].shape;
    std::vector<int64_t> starts, axes, steps;
    if (opset_ < 10) {
      starts = node_.attr_ints("starts");
      axes = node_.attr_ints("axes");
    } else {
      starts = host_ints(in[1], "starts");
      if (in.size() > 3 && in[3].host_values) axes = host_ints(in[3], "axes");
      if (in.size() > 4 && in[4].host_values) steps = host_ints(in[4], "steps");
    }
    if (axes.empty()) {
      axes.resize(starts.size());
      std::iota(axes.begin(), axes.end(), 0);
    }
    if (steps.empty()) steps.assign(starts.size(), 1);
    auto st = strides_of(xs);
    Strides is;
    for (size_t i = 0; i < xs.size(); ++i) is.s[i] = st[i];
    int64_t base = 0;
    for (size_t i = 0; i < starts.size(); ++i) {
      int64_t a = axes[i] < 0 ? axes[i] + static_cast<int64_t>(xs.size()) : axes[i];
      int64_t s0 = starts[i] < 0 ? starts[i] + xs[a] : starts[i];
      s0 = steps[i] > 0 ? std::clamp<int64_t>(s0, 0, xs[a]) : std::clamp<int64_t>(s0, 0, xs[a] - 1);
      base += s0 * st[a];
      is.s[a] = st[a] * steps[i];
    }
    launch_gather(in[0], out[0], is, base, stream_of(ctx));
    check_launch(node_);
  }
};
UNIRT_REGISTER_KERNEL(cuda, Slice, SliceKernel, "any", "rank <= 8 (Dims/Strides of the gather kernel)");

class ExpandKernel : public CudaKernel {
 public:
  using CudaKernel::CudaKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    launch_gather(in[0], out[0], strides_for(in[0].shape, out[0].shape), 0, stream_of(ctx));
    check_launch(node_);
  }
};
UNIRT_REGISTER_KERNEL(cuda, Expand, ExpandKernel, "any", "rank <= 8 (Dims/Strides of the gather kernel)");

template <typename E, typename I>
__global__ void gather_device(const E* in, const I* idx, E* out, int64_t n, int64_t ni, int64_t inner, int64_t axis_len) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t in_off = i % inner, j = (i / inner) % ni, o = i / (inner * ni);
    int64_t k = static_cast<int64_t>(idx[j]);
    k = k < 0 ? k + axis_len : k;
    k = k < 0 ? 0 : (k >= axis_len ? axis_len - 1 : k);  // out-of-range indices are clamped, never read out of bounds
    out[i] = in[(o * axis_len + k) * inner + in_off];
  }
}

// Gather: host-known indices (qkv[0], qkv[1], ... in attention) become 2-D copies; indices on the
// device go through a gather kernel.
class GatherKernel : public CudaKernel {
 public:
  using CudaKernel::CudaKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const auto& xs = in[0].shape;
    int64_t axis = node_.attr_i("axis", 0);
    if (axis < 0) axis += static_cast<int64_t>(xs.size());
    if (axis < 0 || axis >= static_cast<int64_t>(xs.size())) fail("axis out of range");
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < axis; ++i) outer *= xs[i];
    for (size_t i = axis + 1; i < xs.size(); ++i) inner *= xs[i];
    const int64_t n = xs[axis];
    const size_t es = dtype_size(in[0].dtype);
    cudaStream_t s = stream_of(ctx);
    if (!in[1].host_values) {
      if (!in[1].data) fail("indices have neither host values nor device memory");
      const int64_t total = out[0].numel(), ni = in[1].numel();
      if (total == 0) return;
      if (in[1].dtype != DType::Int64 && in[1].dtype != DType::Int32) fail("indices must be int32 or int64");
      const bool i64 = in[1].dtype == DType::Int64;
#define UNIRT_GATHER(E)                                                                                                     \
  if (i64) gather_device<<<grid_for(total), 256, 0, s>>>(in[0].as<E>(), in[1].as<int64_t>(), out[0].as<E>(), total, ni, inner, n); \
  else gather_device<<<grid_for(total), 256, 0, s>>>(in[0].as<E>(), in[1].as<int32_t>(), out[0].as<E>(), total, ni, inner, n);
      switch (es) {
        case 1: UNIRT_GATHER(uint8_t) break;
        case 2: UNIRT_GATHER(uint16_t) break;
        case 4: UNIRT_GATHER(uint32_t) break;
        default: UNIRT_GATHER(uint64_t) break;
      }
#undef UNIRT_GATHER
      check_launch(node_);
      return;
    }
    auto idx = host_ints(in[1], "indices");
    const int64_t ni = static_cast<int64_t>(idx.size());
    if (outer * inner == 0) return;
    for (int64_t j = 0; j < ni; ++j) {
      const int64_t k = idx[j] < 0 ? idx[j] + n : idx[j];
      if (k < 0 || k >= n) fail("index " + std::to_string(idx[j]) + " out of range for axis of size " + std::to_string(n));
      UNIRT_CUDA(cudaMemcpy2DAsync(out[0].as<char>() + j * inner * es, ni * inner * es, in[0].as<char>() + k * inner * es,
                                   n * inner * es, inner * es, outer, cudaMemcpyDeviceToDevice, s));
    }
  }
};
UNIRT_REGISTER_KERNEL(cuda, Gather, GatherKernel, "any");

// The pad value comes from a device pointer (the optional constant_value input) or defaults to 0,
// so nothing is read back to the host while a graph is being captured.
template <typename P, typename I>
__global__ void pad_constant(const P* in, P* out, I n, Dims od, Dims id, Dims before, const typename P::Elem* value_p) {
  using E = typename P::Elem;
  P value;
  const E v = value_p ? *value_p : E(0);
#pragma unroll
  for (int j = 0; j < int(sizeof(P) / sizeof(E)); ++j) value.e[j] = v;
  I odim[kMaxDims], idim[kMaxDims], bdim[kMaxDims];
#pragma unroll
  for (int k = 0; k < kMaxDims; ++k) odim[k] = static_cast<I>(od.d[k]), idim[k] = static_cast<I>(id.d[k]), bdim[k] = static_cast<I>(before.d[k]);
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < n; i += I(gridDim.x) * blockDim.x) {
    I rem = i, off = 0, stride = 1;
    bool inside = true;
    for (int k = od.rank - 1; k >= 0; --k) {
      const I c = rem % odim[k] - bdim[k];
      rem /= odim[k];
      inside &= c >= 0 && c < idim[k];
      off += c * stride;
      stride *= idim[k];
    }
    out[i] = inside ? in[off] : value;
  }
}

class PadKernel : public CudaKernel {
 public:
  using CudaKernel::CudaKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const std::string mode = node_.attr_s("mode", "constant");
    if (mode != "constant") fail("the CUDA backend pads in constant mode only, found mode '" + mode + "'");
    const auto& xs = in[0].shape;
    std::vector<int64_t> pads = opset_ < 11 ? node_.attr_ints("pads") : host_ints(in[1], "pads");
    std::vector<int64_t> axes;
    if (has(3)) axes = host_ints(in[3], "axes");
    else
      for (size_t i = 0; i < xs.size(); ++i) axes.push_back(static_cast<int64_t>(i));
    if (pads.size() != 2 * axes.size())
      fail("pads has " + std::to_string(pads.size()) + " values, expected " + std::to_string(2 * axes.size()));
    Dims before = dims_of(std::vector<int64_t>(xs.size(), 0));
    for (size_t i = 0; i < axes.size(); ++i) before.d[axes[i] < 0 ? axes[i] + xs.size() : axes[i]] = pads[i];
    const void* value = nullptr;
    if (opset_ < 11) {
      if (node_.attr_f("value", 0.f) != 0.f) fail("a non-zero 'value' attribute (opset < 11) is not supported on CUDA");
    } else if (has(2)) {
      if (!in[2].data) fail("constant_value has no device memory");
      if (in[2].dtype != in[0].dtype) fail("constant_value type differs from the data type");
      value = in[2].data;
    }
    int64_t n = out[0].numel();
    if (n == 0) return;
    cudaStream_t s = stream_of(ctx);
    Dims od = dims_of(out[0].shape), id = dims_of(xs);
    const size_t es = dtype_size(out[0].dtype);
    const int r = od.rank;
    // Packs along the last dim when its padding and both extents allow (the detector's window
    // padding of W: 76 -> 84 halves moves 8 bytes at a time).
    const int v = r > 0 ? pack_elems(es, {od.d[r - 1], id.d[r - 1], before.d[r - 1]}, in[0].data, out[0].data) : 1;
    if (v > 1) od.d[r - 1] /= v, id.d[r - 1] /= v, before.d[r - 1] /= v, n /= v;
    const bool narrow = n < INT32_MAX && in[0].numel() / v < INT32_MAX;
    with_pack(es, v, [&](auto pack) {
      using P = decltype(pack);
      using E = typename P::Elem;
      const auto* x = in[0].as<P>();
      auto* y = out[0].as<P>();
      const auto* val = static_cast<const E*>(value);
      if (narrow) pad_constant<P, int32_t><<<grid_for(n), 256, 0, s>>>(x, y, static_cast<int32_t>(n), od, id, before, val);
      else pad_constant<P, int64_t><<<grid_for(n), 256, 0, s>>>(x, y, n, od, id, before, val);
    });
    check_launch(node_);
  }
};
UNIRT_REGISTER_KERNEL(cuda, Pad, PadKernel, "any", "rank <= 8");

// Up to kConcatGroup inputs whose rows (the part after the axis) are narrow, in one launch: one
// thread per output element finds its input among the group's column ranges. A 2-D copy per
// input moves a few bytes per row there: four [200k, 1] anchor coordinates took 67 us that way.
constexpr int kConcatGroup = 16;
struct ConcatGroup {
  const void* src[kConcatGroup];
  int64_t start[kConcatGroup + 1];  // column range of each input in the output row
  int count;
};

template <typename E, typename I>
__global__ void concat_narrow(ConcatGroup g, E* out, I outer, I row) {
  const I c0 = static_cast<I>(g.start[0]), cols = static_cast<I>(g.start[g.count]) - c0, n = outer * cols;
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < n; i += I(gridDim.x) * blockDim.x) {
    const I o = i / cols, j = c0 + i % cols;
    int k = 0;
    while (k + 1 < g.count && j >= static_cast<I>(g.start[k + 1])) ++k;
    const I lo = static_cast<I>(g.start[k]), width = static_cast<I>(g.start[k + 1]) - lo;
    out[o * row + j] = static_cast<const E*>(g.src[k])[o * width + (j - lo)];
  }
}

class ConcatKernel : public CudaKernel {
 public:
  using CudaKernel::CudaKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const auto& os = out[0].shape;
    int64_t axis = node_.attr_i("axis");
    if (axis < 0) axis += static_cast<int64_t>(os.size());
    const size_t es = dtype_size(out[0].dtype);
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < axis; ++i) outer *= os[i];
    for (size_t i = axis + 1; i < os.size(); ++i) inner *= os[i];
    const int64_t row = os[axis] * inner;
    cudaStream_t s = stream_of(ctx);
    // Wide rows (or a single row) copy well as 2-D memcpys; narrow ones go through concat_narrow.
    constexpr int64_t kWideRowBytes = 512;
    ConcatGroup g{};
    auto flush = [&] {
      if (g.count == 0) return;
      const int64_t n = outer * (g.start[g.count] - g.start[0]);
      const bool narrow32 = outer * row < INT32_MAX;
      auto launch = [&](auto e) {
        using E = decltype(e);
        if (narrow32) concat_narrow<E, int32_t><<<grid_for(n), 256, 0, s>>>(g, out[0].as<E>(), static_cast<int32_t>(outer), static_cast<int32_t>(row));
        else concat_narrow<E, int64_t><<<grid_for(n), 256, 0, s>>>(g, out[0].as<E>(), outer, row);
      };
      switch (es) {
        case 1: launch(uint8_t{}); break;
        case 2: launch(uint16_t{}); break;
        case 4: launch(uint32_t{}); break;
        case 8: launch(uint64_t{}); break;
        default: fail("element size " + std::to_string(es));
      }
      check_launch(node_);
      g = ConcatGroup{};
    };
    int64_t offset = 0;
    for (const auto& t : in) {
      const int64_t chunk = t.shape[axis] * inner;
      if (chunk && outer) {
        if (outer == 1 || static_cast<int64_t>(chunk * es) >= kWideRowBytes) {
          UNIRT_CUDA(cudaMemcpy2DAsync(out[0].as<char>() + offset * es, row * es, t.data, chunk * es, chunk * es, outer,
                                       cudaMemcpyDeviceToDevice, s));
        } else {
          if (g.count == kConcatGroup || (g.count > 0 && g.start[g.count] != offset)) flush();
          if (g.count == 0) g.start[0] = offset;
          g.src[g.count++] = t.data;
          g.start[g.count] = offset + chunk;
        }
      }
      offset += chunk;
    }
    flush();
  }
};
UNIRT_REGISTER_KERNEL(cuda, Concat, ConcatKernel, "any");

class SplitKernel : public CudaKernel {
 public:
  using CudaKernel::CudaKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const auto& xs = in[0].shape;
    int64_t axis = node_.attr_i("axis", 0);
    if (axis < 0) axis += static_cast<int64_t>(xs.size());
    const size_t es = dtype_size(in[0].dtype);
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < axis; ++i) outer *= xs[i];
    for (size_t i = axis + 1; i < xs.size(); ++i) inner *= xs[i];
    int64_t offset = 0;
    for (const auto& t : out) {
      const int64_t chunk = t.shape[axis] * inner;
      if (t.data && chunk && outer)
        UNIRT_CUDA(cudaMemcpy2DAsync(t.data, chunk * es, in[0].as<char>() + offset * es, xs[axis] * inner * es, chunk * es, outer,
                                     cudaMemcpyDeviceToDevice, stream_of(ctx)));
      offset += chunk;
    }
  }
};
UNIRT_REGISTER_KERNEL(cuda, Split, SplitKernel, "any");

// Tile: out[i] = in[idx_k(i) % in_dim_k]; repeats are host-known.
template <typename E>
__global__ void tile_kernel(const E* in, E* out, int64_t n, Dims od, Dims id) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t rem = i, off = 0, stride = 1;
    for (int k = od.rank - 1; k >= 0; --k) {
      off += (rem % od.d[k]) % id.d[k] * stride;
      rem /= od.d[k];
      stride *= id.d[k];
    }
    out[i] = in[off];
  }
}

class TileKernel : public CudaKernel {
 public:
  using CudaKernel::CudaKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const auto reps = host_ints(in[1], "repeats");
    const auto& xs = in[0].shape;
    if (reps.size() != xs.size()) fail("repeats has " + std::to_string(reps.size()) + " values for a rank-" + std::to_string(xs.size()) + " input");
    const int64_t n = out[0].numel();
    if (n == 0) return;
    cudaStream_t s = stream_of(ctx);
    const Dims od = dims_of(out[0].shape), id = dims_of(xs);
    switch (dtype_size(out[0].dtype)) {
      case 1: tile_kernel<<<grid_for(n), 256, 0, s>>>(in[0].as<uint8_t>(), out[0].as<uint8_t>(), n, od, id); break;
      case 2: tile_kernel<<<grid_for(n), 256, 0, s>>>(in[0].as<uint16_t>(), out[0].as<uint16_t>(), n, od, id); break;
      case 4: tile_kernel<<<grid_for(n), 256, 0, s>>>(in[0].as<uint32_t>(), out[0].as<uint32_t>(), n, od, id); break;
      default: tile_kernel<<<grid_for(n), 256, 0, s>>>(in[0].as<uint64_t>(), out[0].as<uint64_t>(), n, od, id); break;
    }
    check_launch(node_);
  }
};
UNIRT_REGISTER_KERNEL(cuda, Tile, TileKernel, "any", "rank <= 8");

}  // namespace
}  // namespace cuda
}  // namespace unirt
