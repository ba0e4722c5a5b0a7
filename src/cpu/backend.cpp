// Host memory for the CPU backend: 64-byte aligned so BLAS and vector loops get aligned rows.
#include <omp.h>

#include <cstdlib>
#include <cstring>

#include "backend/backend.h"

namespace unirt {
namespace {

class CpuBackend : public Backend {
 public:
  explicit CpuBackend(int threads) {
    if (threads < 0 || threads > kMaxThreads)
      throw Error("cpu backend: " + std::to_string(threads) + " threads requested, expected 0 (all cores) .. " + std::to_string(kMaxThreads));
    ctx_.threads = threads > 0 ? threads : omp_get_max_threads();
  }
  static constexpr int kMaxThreads = 1024;
  std::string name() const override { return "cpu"; }
  bool host_visible() const override { return true; }
  std::unique_ptr<Backend> clone() const override { return std::make_unique<CpuBackend>(ctx_.threads); }
  void* alloc(size_t bytes) override {
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    if (!p) throw Error("cpu backend: out of host memory allocating " + std::to_string(bytes) + " bytes");
    return p;
  }
  void free(void* p) override { std::free(p); }
  void copy_from_host(void* dst, const void* src, size_t bytes) override {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  void copy_to_host(void* dst, const void* src, size_t bytes) override {
    if (bytes) std::memcpy(dst, src, bytes);
  }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int threads) { return std::make_unique<CpuBackend>(threads); }

}  // namespace unirt
