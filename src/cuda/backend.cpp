// The CUDA backend: cudaMalloc'd device memory, one non-blocking stream, CUDA graph capture and
// replay, event timing.
#include <algorithm>
#include <memory>
#include <vector>

#include "cuda/cuda_context.h"

namespace unirt {
namespace cuda {
namespace {

class CudaBackend : public Backend {
 public:
  CudaBackend() {
    context();  // handles and properties before the first kernel, outside any capture
    UNIRT_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    ctx_.stream = stream_;
  }
  ~CudaBackend() override {
    if (stream_) cudaStreamDestroy(stream_);
  }
  std::string name() const override { return "cuda"; }
  bool host_visible() const override { return false; }
  std::unique_ptr<Backend> clone() const override { return std::make_unique<CudaBackend>(); }
  void* alloc(size_t bytes) override {
    void* p = nullptr;
    // 256 bytes at least so every buffer is 16-byte aligned and distinct, even when empty.
    cudaError_t e = cudaMalloc(&p, std::max<size_t>(bytes, 256));
    if (e != cudaSuccess) {
      cudaGetLastError();
      throw Error("cuda backend: cudaMalloc of " + std::to_string(bytes) + " bytes failed: " + cudaGetErrorString(e));
    }
    return p;
  }
  void free(void* p) override {
    if (p) UNIRT_CUDA(cudaFree(p));
  }
  void copy_from_host(void* dst, const void* src, size_t bytes) override {
    if (!bytes) return;
    UNIRT_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
    UNIRT_CUDA(cudaStreamSynchronize(stream_));
  }
  void copy_to_host(void* dst, const void* src, size_t bytes) override {
    if (!bytes) return;
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
      cudaStreamEndCapture(stream_, &graph);  // leaves the stream usable; the first error wins
      if (graph) cudaGraphDestroy(graph);
      cudaGetLastError();
      throw;
    }
    UNIRT_CUDA(cudaStreamEndCapture(stream_, &graph));
    cudaGraphExec_t exec = nullptr;
    cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess) throw_cuda(e, "cudaGraphInstantiate", __FILE__, __LINE__);
    return std::shared_ptr<void>(exec, [](void* p) { cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(p)); });
  }
  void replay(const std::shared_ptr<void>& g) override {
    if (!g) throw Error("cuda backend: replay of an empty graph");
    UNIRT_CUDA(cudaGraphLaunch(static_cast<cudaGraphExec_t>(g.get()), stream_));
  }
  double elapsed_ms(const std::function<void()>& fn) override {
    cudaEvent_t a = nullptr, b = nullptr;
    UNIRT_CUDA(cudaEventCreate(&a));
    std::unique_ptr<CUevent_st, decltype(&cudaEventDestroy)> ga(a, cudaEventDestroy);
    UNIRT_CUDA(cudaEventCreate(&b));
    std::unique_ptr<CUevent_st, decltype(&cudaEventDestroy)> gb(b, cudaEventDestroy);
    UNIRT_CUDA(cudaEventRecord(a, stream_));
    fn();
    UNIRT_CUDA(cudaEventRecord(b, stream_));
    UNIRT_CUDA(cudaEventSynchronize(b));
    float ms = 0;
    UNIRT_CUDA(cudaEventElapsedTime(&ms, a, b));
    return ms;
  }
  std::vector<double> sequence_ms(const std::vector<std::function<void()>>& steps, int iterations) override {
    std::vector<cudaEvent_t> ev(steps.size() + 1, nullptr);
    auto release = [&] {
      for (cudaEvent_t e : ev)
        if (e) cudaEventDestroy(e);
    };
    std::vector<double> ms(steps.size(), 0.0);
    try {
      for (auto& e : ev) UNIRT_CUDA(cudaEventCreate(&e));
      // External records: captured into the graph as event-record nodes between the kernels (a plain
      // record would only order the capture).
      std::shared_ptr<void> graph = capture([&] {
        UNIRT_CUDA(cudaEventRecordWithFlags(ev[0], stream_, cudaEventRecordExternal));
        for (size_t i = 0; i < steps.size(); ++i) {
          steps[i]();
          UNIRT_CUDA(cudaEventRecordWithFlags(ev[i + 1], stream_, cudaEventRecordExternal));
        }
      });
      replay(graph);  // warm-up: the first replay uploads the graph
      UNIRT_CUDA(cudaStreamSynchronize(stream_));
      for (int it = 0; it < iterations; ++it) {
        replay(graph);
        UNIRT_CUDA(cudaStreamSynchronize(stream_));
        for (size_t i = 0; i < steps.size(); ++i) {
          float t = 0.f;
          UNIRT_CUDA(cudaEventElapsedTime(&t, ev[i], ev[i + 1]));
          ms[i] += t;
        }
      }
    } catch (...) {
      release();
      throw;
    }
    release();
    for (double& m : ms) m /= std::max(1, iterations);
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

void cuda_stream_wait(void* waiter, void* signaller) {
  cudaEvent_t ev = nullptr;
  UNIRT_CUDA(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
  // Destroying the event once the wait is enqueued is allowed: the wait keeps what it needs.
  const cudaError_t rec = cudaEventRecord(ev, static_cast<cudaStream_t>(signaller));
  const cudaError_t wait = rec == cudaSuccess ? cudaStreamWaitEvent(static_cast<cudaStream_t>(waiter), ev, 0) : rec;
  cudaEventDestroy(ev);
  UNIRT_CUDA(wait);
}

int cuda_current_device() {
  int d = 0;
  UNIRT_CUDA(cudaGetDevice(&d));
  return d;
}

}  // namespace unirt
