// The process-wide CUDA context (cuBLASLt and cuDNN handles, device properties) and the error
// reporting behind the check macros.
#include "cuda/cuda_context.h"

#include <cstdlib>

namespace unirt {
namespace cuda {

namespace {
std::string at(const char* where, int line) {
  std::string f(where);
  const size_t slash = f.rfind('/');
  return (slash == std::string::npos ? f : f.substr(slash + 1)) + ":" + std::to_string(line);
}
}  // namespace

void throw_cuda(cudaError_t e, const char* call, const char* where, int line) {
  throw Error(std::string("CUDA error in ") + call + " (" + at(where, line) + "): " + cudaGetErrorName(e) + ": " +
              cudaGetErrorString(e));
}
void throw_cublas(cublasStatus_t s, const char* call, const char* where, int line) {
  throw Error(std::string("cuBLASLt error in ") + call + " (" + at(where, line) + "): status " + std::to_string(static_cast<int>(s)));
}
void throw_cudnn(cudnnStatus_t s, const char* call, const char* where, int line) {
  throw Error(std::string("cuDNN error in ") + call + " (" + at(where, line) + "): " + cudnnGetErrorString(s));
}

CudaContext& context() {
  static CudaContext c = [] {
    CudaContext x;
    UNIRT_CUDA(cudaGetDevice(&x.device));
    UNIRT_CUDA(cudaGetDeviceProperties(&x.props, x.device));
    UNIRT_CUBLAS(cublasLtCreate(&x.lt));
    UNIRT_CUDNN(cudnnCreate(&x.cudnn));
    // UNIRT_CUDA_CACHE_CONFIG=shared: every kernel without a preference of its own asks for the
    // largest shared-memory carveout, so the multiprocessors need not change their L1 / shared
    // split between the 8-bit GEMMs (about 200 KB of shared memory) and the kernels around them.
    const char* cache = std::getenv("UNIRT_CUDA_CACHE_CONFIG");
    if (cache && std::string(cache) == "shared") UNIRT_CUDA(cudaDeviceSetCacheConfig(cudaFuncCachePreferShared));
    return x;
  }();
  return c;
}

Dims dims_of(const std::vector<int64_t>& shape) {
  if (shape.size() > static_cast<size_t>(kMaxDims))
    throw Error("tensor rank " + std::to_string(shape.size()) + " exceeds the CUDA backend's " + std::to_string(kMaxDims));
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

}  // namespace cuda
}  // namespace unirt
