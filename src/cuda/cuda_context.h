// What every CUDA kernel shares: the process-wide library handles and device properties, the
// kernel base class, and small launch helpers.
#pragma once
#include <cuda_fp16.h>

#include <string>
#include <vector>

#include "cuda/check.h"
#include "backend/backend.h"

namespace unirt {
namespace cuda {

// One per process, created on first use on the current device. cuDNN is bound to the run's stream
// by each kernel (cudnnSetStream) because the handle outlives any one backend.
struct CudaContext {
  int device = 0;
  cudaDeviceProp props{};
  cublasLtHandle_t lt = nullptr;
  cudnnHandle_t cudnn = nullptr;
};
CudaContext& context();

inline cudaStream_t stream_of(const RunContext& ctx) { return static_cast<cudaStream_t>(ctx.stream); }

// After every launch: a bad configuration names the node.
inline void check_launch(const Node& n) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw Error(n.describe() + ": CUDA launch failed: " + cudaGetErrorString(e));
}

constexpr int kMaxDims = 8;
struct Dims {
  int rank = 0;
  int64_t d[kMaxDims] = {};
};
struct Strides {
  int64_t s[kMaxDims] = {};
};

Dims dims_of(const std::vector<int64_t>& shape);
// Row-major strides of `in` aligned to the right of `out`; broadcast dims get stride 0.
Strides strides_for(const std::vector<int64_t>& in, const std::vector<int64_t>& out);
inline int grid_for(int64_t n, int threads = 256) {
  return static_cast<int>(std::min<int64_t>((n + threads - 1) / threads, int64_t{65535} * 8));
}
inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// out[i] = in[base + sum_k idx_k(i) * in_strides[k]] over out_shape; any element size.
void strided_copy(const void* in, void* out, DType t, const std::vector<int64_t>& out_shape,
                  const std::vector<int64_t>& in_strides, int64_t base, cudaStream_t stream);
// y[n, c, s] = bias[c] for an NCHW tensor of n elements, C channels of S elements each.
void fill_channel_bias(DType t, const void* bias, void* y, int64_t n, int64_t C, int64_t S, cudaStream_t stream);

// out[o, i] = reduce_k x[o, k, i] (mode 0 mean, 1 sum, 2 max, 3 min, 4 product), float32 accumulation.
void reduce_axes(DType t, const void* x, void* y, int64_t outer, int64_t K, int64_t inner, int mode, cudaStream_t stream);

// y = GELU(y) (exact, erf form) in place, float32 math.
void gelu_inplace(DType t, void* y, int64_t n, cudaStream_t stream);

class CudaKernel : public OpKernel {
 public:
  explicit CudaKernel(const KernelCreateArgs& a) : node_(a.node), opset_(a.graph.opset) {}

 protected:
  [[noreturn]] void fail(const std::string& m) const { throw Error(node_.describe() + ": " + m); }
  void expect_floatish(const TensorView& t, const char* what) const {
    if (t.dtype != DType::Float32 && t.dtype != DType::Float16)
      fail(std::string(what) + " has type " + dtype_name(t.dtype) + ", the CUDA backend expects float32 or float16");
  }
  std::vector<int64_t> host_ints(const TensorView& t, const char* what) const {
    if (!t.host_values) fail(std::string(what) + " must be known when the input shape is (a shape value or constant)");
    return std::vector<int64_t>(t.host_values, t.host_values + t.numel());
  }
  // Optional inputs the node omits still get a (null, shape-less) view: ask the node.
  bool has(size_t i) const { return node_.has_input(static_cast<int>(i)); }
  // A call wrapped so that library errors name this node.
  template <typename F>
  void guarded(const char* what, F&& f) const {
    try {
      f();
    } catch (const Error& e) {
      fail(std::string(what) + ": " + e.what());
    }
  }
  Node node_;
  int64_t opset_;
};

}  // namespace cuda
}  // namespace unirt
