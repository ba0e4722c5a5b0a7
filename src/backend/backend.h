// The memory half of the backend contract: a Backend allocates, copies, synchronises and captures
// CUDA graphs; Buffer owns one allocation. Kernels and their registry are in backend/kernel.h.
#pragma once
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backend/kernel.h"

namespace unirt {

// Memory and synchronisation of a backend.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // True when alloc() returns memory the host can read and write directly (the CPU backend):
  // the session then hands its callers' buffers to kernels without copies.
  virtual bool host_visible() const = 0;
  // A new backend of the same kind and settings, with its own stream (specialised sessions).
  virtual std::unique_ptr<Backend> clone() const = 0;
  virtual void* alloc(size_t bytes) = 0;
  virtual void free(void* p) = 0;
  virtual void copy_from_host(void* dst, const void* src, size_t bytes) = 0;
  virtual void copy_to_host(void* dst, const void* src, size_t bytes) = 0;
  virtual void synchronize() {}
  // CUDA graphs: record the work `fn` enqueues into a replayable graph (nullptr when the backend
  // cannot), then replay it. The session keeps one per input-shape signature.
  virtual std::shared_ptr<void> capture(const std::function<void()>& fn) {
    (void)fn;
    return nullptr;
  }
  virtual void replay(const std::shared_ptr<void>& graph) { (void)graph; }
  // Device-side timing for `unirt bench --profile`: an opaque event recorded on the stream.
  virtual double elapsed_ms(const std::function<void()>& fn);
  // Each step's device time when the steps run back to back as they do in an inference (on CUDA:
  // one captured graph with an event between steps, so a step sees the caches and the launch
  // pipeline its predecessor leaves), averaged over `iterations` runs of the whole sequence.
  // Empty where a step alone already runs as it would in sequence (the CPU backend).
  virtual std::vector<double> sequence_ms(const std::vector<std::function<void()>>& steps, int iterations) {
    (void)steps, (void)iterations;
    return {};
  }
  RunContext& context() { return ctx_; }

 protected:
  RunContext ctx_;
};

std::unique_ptr<Backend> make_cpu_backend(int threads);
// Defined only when built with CUDA; throws Error when no GPU is usable.
std::unique_ptr<Backend> make_cuda_backend();
bool cuda_backend_available(std::string* why_not);
// Defined only when built with CUDA. Streams are cudaStream_t (nullptr: the legacy default stream).
// Makes `waiter` wait for the work enqueued on `signaller` so far, through an event: no host
// synchronisation (callers that run a session on their own stream, as the Python package does).
void cuda_stream_wait(void* waiter, void* signaller);
int cuda_current_device();  // the device a CUDA backend made now would use

// One allocation of a backend, freed by it when the Buffer goes (the backend must outlive it).
class Buffer {
 public:
  Buffer() = default;
  // At least one byte, so every buffer has a distinct address even when empty.
  Buffer(Backend& owner, size_t bytes) : owner_(&owner), bytes_(bytes), ptr_(owner.alloc(bytes ? bytes : 1)) {}
  ~Buffer() { reset(); }
  Buffer(Buffer&& o) noexcept : owner_(o.owner_), bytes_(o.bytes_), ptr_(o.ptr_) { o.ptr_ = nullptr, o.bytes_ = 0; }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      reset();
      std::swap(owner_, o.owner_), std::swap(bytes_, o.bytes_), std::swap(ptr_, o.ptr_);
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* get() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  explicit operator bool() const { return ptr_ != nullptr; }
  // Never throws: it runs in destructors. After a device fault the CUDA context is gone and every
  // free fails; the error that caused it has already been reported by whatever ran into it.
  void reset() noexcept {
    if (ptr_) {
      try {
        owner_->free(ptr_);
      } catch (...) {
      }
    }
    ptr_ = nullptr;
    bytes_ = 0;
  }

 private:
  Backend* owner_ = nullptr;
  size_t bytes_ = 0;
  void* ptr_ = nullptr;
};

}  // namespace unirt
