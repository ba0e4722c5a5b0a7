// The CUDA backend: device memory, one stream, CUDA graph capture/replay, event timing.
#include <memory>

#include "cuda/cuda_common.h"

namespace unirt {
namespace cuda {

void throw_cuda(cudaError_t e, const char* call, const char* where) {
  throw Error(std::string("CUDA error in ") + call + " (" + where + "): " + cudaGetErrorString(e));
}
void throw_cublas(cublasStatus_t s, const char* call, const char* where) {
  throw Error(std::string("cuBLAS error ") + std::to_string(static_cast<int>(s)) + " in " + call + " (" + where + ")");
}
void throw_cudnn(cudnnStatus_t s, const char* call, const char* where) {
  throw Error(std::string("cuDNN error in ") + call + " (" + where + "): " + cudnnGetErrorString(s));
}

Handles& handles() {
  static Handles h = [] {
    Handles x;
    UNIRT_CUBLAS(cublasCreate(&x.cublas));
    UNIRT_CUDNN(cudnnCreate(&x.cudnn));
    return x;
  }();
  return h;
}

Dims dims_of(const std::vector<int64_t>& shape) {
  if (shape.size() > static_cast<size_t>(kMaxDims)) throw Error("tensor rank " + std::to_string(shape.size()) + " exceeds 8");
  Dims d;
  d.rank = static_cast<int>(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) d.d[i] = shape[i];
  return d;
}

Strides strides_for(const std::vector<int64_t>& in, const std::vector<int64_t>& out) {
  Strides st;
  int64_t s = 1;
  const size_t r = out.size();
  for (int i = static_cast<int>(in.size()) - 1; i >= 0; --i) {
    const size_t o = r - in.size() + i;
    st.s[o] = (in[i] == 1 && out[o] != 1) ? 0 : s;
    s *= in[i];
  }
  return st;
}

namespace {

class CudaBackend : public Backend {
 public:
  CudaBackend() {
    UNIRT_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    ctx_.stream = stream_;
    handles();
  }
  ~CudaBackend() override { cudaStreamDestroy(stream_); }
  std::string name() const override { return "cuda"; }
  void* alloc(size_t bytes) override {
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, std::max<size_t>(bytes, 256));
    if (e != cudaSuccess) throw Error("cuda backend: cudaMalloc of " + std::to_string(bytes) + " bytes failed: " + cudaGetErrorString(e));
    return p;
  }
  void free(void* p) override { cudaFree(p); }
  void copy_from_host(void* dst, const void* src, size_t bytes) override {
    UNIRT_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
    UNIRT_CUDA(cudaStreamSynchronize(stream_));
  }
  void copy_to_host(void* dst, const void* src, size_t bytes) override {
    UNIRT_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
    UNIRT_CUDA(cudaStreamSynchronize(stream_));
  }
  void synchronize() override { UNIRT_CUDA(cudaStreamSynchronize(stream_)); }
  std::shared_ptr<void> capture(const std::function<void()>& fn) override {
    cudaGraph_t graph = nullptr;
    UNIRT_CUDA(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    try {
      fn();
    } catch (...) {
      cudaStreamEndCapture(stream_, &graph);
      if (graph) cudaGraphDestroy(graph);
      throw;
    }
    UNIRT_CUDA(cudaStreamEndCapture(stream_, &graph));
    cudaGraphExec_t exec = nullptr;
    UNIRT_CUDA(cudaGraphInstantiate(&exec, graph, 0));
    cudaGraphDestroy(graph);
    return std::shared_ptr<void>(exec, [](void* p) { cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(p)); });
  }
  void replay(const std::shared_ptr<void>& g) override {
    UNIRT_CUDA(cudaGraphLaunch(static_cast<cudaGraphExec_t>(g.get()), stream_));
  }
  double elapsed_ms(const std::function<void()>& fn) override {
    cudaEvent_t a, b;
    UNIRT_CUDA(cudaEventCreate(&a));
    UNIRT_CUDA(cudaEventCreate(&b));
    UNIRT_CUDA(cudaEventRecord(a, stream_));
    fn();
    UNIRT_CUDA(cudaEventRecord(b, stream_));
    UNIRT_CUDA(cudaEventSynchronize(b));
    float ms = 0;
    UNIRT_CUDA(cudaEventElapsedTime(&ms, a, b));
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return ms;
  }

 private:
  cudaStream_t stream_ = nullptr;
};

}  // namespace
}  // namespace cuda

bool cuda_backend_available(std::string* why_not) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    if (why_not) *why_not = e != cudaSuccess ? std::string("no usable GPU (") + cudaGetErrorString(e) + ")" : "no GPU found";
    cudaGetLastError();
    return false;
  }
  return true;
}

std::unique_ptr<Backend> make_cuda_backend() {
  std::string why;
  if (!cuda_backend_available(&why)) throw Error("cuda backend: " + why);
  return std::make_unique<cuda::CudaBackend>();
}

}  // namespace unirt
