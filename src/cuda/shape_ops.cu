// Reshape, Flatten, Squeeze, Unsqueeze (a device copy under the new shape; nothing when the planner
// gave input and output one buffer), ConstantOfShape, Range.
#include <cstring>

#include "cuda/cuda_context.h"

namespace unirt {
namespace cuda {
namespace {

class ReshapeKernel : public CudaKernel {
 public:
  using CudaKernel::CudaKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    if (in[0].numel() != out[0].numel())
      fail("element count changes from " + std::to_string(in[0].numel()) + " to " + std::to_string(out[0].numel()));
    if (in[0].data != out[0].data && in[0].bytes())
      UNIRT_CUDA(cudaMemcpyAsync(out[0].data, in[0].data, in[0].bytes(), cudaMemcpyDeviceToDevice, stream_of(ctx)));
  }
};
UNIRT_REGISTER_KERNEL(cuda, Reshape, ReshapeKernel, "any");
UNIRT_REGISTER_KERNEL(cuda, Flatten, ReshapeKernel, "any");
UNIRT_REGISTER_KERNEL(cuda, Squeeze, ReshapeKernel, "any");
UNIRT_REGISTER_KERNEL(cuda, Unsqueeze, ReshapeKernel, "any");

template <typename E>
__global__ void fill_kernel(E* y, int64_t n, E v) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) y[i] = v;
}

// Fills n elements of `es` bytes with the bit pattern `bits` (little-endian low bytes).
void fill_bits(void* y, int64_t n, size_t es, uint64_t bits, cudaStream_t s) {
  if (n == 0) return;
  switch (es) {
    case 1: fill_kernel<<<grid_for(n), 256, 0, s>>>(static_cast<uint8_t*>(y), n, static_cast<uint8_t>(bits)); break;
    case 2: fill_kernel<<<grid_for(n), 256, 0, s>>>(static_cast<uint16_t*>(y), n, static_cast<uint16_t>(bits)); break;
    case 4: fill_kernel<<<grid_for(n), 256, 0, s>>>(static_cast<uint32_t*>(y), n, static_cast<uint32_t>(bits)); break;
    default: fill_kernel<<<grid_for(n), 256, 0, s>>>(static_cast<uint64_t*>(y), n, bits); break;
  }
}

class ConstantOfShapeKernel : public CudaKernel {
 public:
  explicit ConstantOfShapeKernel(const KernelCreateArgs& a) : CudaKernel(a) {
    if (a.node.has_attr("value")) {
      const TensorData& v = a.node.attr_t("value");
      if (v.numel() != 1) fail("value must hold one element");
      std::memcpy(&bits_, v.bytes.data(), std::min<size_t>(v.bytes.size(), 8));
    }
  }
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    fill_bits(out[0].data, out[0].numel(), dtype_size(out[0].dtype), bits_, stream_of(ctx));
    check_launch(node_);
  }

 private:
  uint64_t bits_ = 0;  // float32 0.0 when there is no value attribute
};
UNIRT_REGISTER_KERNEL(cuda, ConstantOfShape, ConstantOfShapeKernel, "any");

template <typename T>
__global__ void range_kernel(T* y, int64_t n, double start, double delta) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = static_cast<T>(start + static_cast<double>(i) * delta);
}
template <>
__global__ void range_kernel<__half>(__half* y, int64_t n, double start, double delta) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = __double2half(start + static_cast<double>(i) * delta);
}

// Range: integer start/delta arrive as host values; float ones must be constants of the graph.
class RangeKernel : public CudaKernel {
 public:
  explicit RangeKernel(const KernelCreateArgs& a) : CudaKernel(a) {
    for (int i = 0; i < 3 && i < static_cast<int>(a.node.inputs.size()); ++i) {
      const Value& v = a.graph.value(a.node.inputs[i]);
      if (v.data && (v.data->dtype == DType::Float32 || v.data->dtype == DType::Float16 || v.data->dtype == DType::Float64)) {
        if (v.data->dtype == DType::Float16) {
          uint16_t h;
          std::memcpy(&h, v.data->bytes.data(), 2);
          consts_[i] = static_cast<double>(__half2float(__ushort_as_half(h)));
        } else {
          consts_[i] = v.data->to_float().at(0);
        }
        known_[i] = true;
      }
    }
  }
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    double v[3];
    for (int i = 0; i < 3; ++i) {
      if (in[i].host_values) v[i] = static_cast<double>(in[i].host_values[0]);
      else if (known_[i]) v[i] = consts_[i];
      else fail("input " + std::to_string(i) + " must be a constant or a shape value on CUDA");
    }
    const int64_t n = out[0].numel();
    if (n == 0) return;
    cudaStream_t s = stream_of(ctx);
    switch (out[0].dtype) {
      case DType::Float32: range_kernel<<<grid_for(n), 256, 0, s>>>(out[0].as<float>(), n, v[0], v[2]); break;
      case DType::Float16: range_kernel<<<grid_for(n), 256, 0, s>>>(out[0].as<__half>(), n, v[0], v[2]); break;
      case DType::Int32: range_kernel<<<grid_for(n), 256, 0, s>>>(out[0].as<int32_t>(), n, v[0], v[2]); break;
      case DType::Int64: range_kernel<<<grid_for(n), 256, 0, s>>>(out[0].as<int64_t>(), n, v[0], v[2]); break;
      default: fail(std::string("Range of ") + dtype_name(out[0].dtype) + " is not supported on CUDA");
    }
    check_launch(node_);
  }

 private:
  double consts_[3] = {0, 0, 0};
  bool known_[3] = {false, false, false};
};
UNIRT_REGISTER_KERNEL(cuda, Range, RangeKernel, "float32 float16 int64 int32");

}  // namespace
}  // namespace cuda
}  // namespace unirt
