// Return-code checks for CUDA, cuBLASLt and cuDNN calls: every failure becomes unirt::Error naming
// the call, the source location and, where a kernel knows it, the node.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <string>

#include "ir/graph.h"

namespace unirt {
namespace cuda {

[[noreturn]] void throw_cuda(cudaError_t e, const char* call, const char* where, int line);
[[noreturn]] void throw_cublas(cublasStatus_t s, const char* call, const char* where, int line);
[[noreturn]] void throw_cudnn(cudnnStatus_t s, const char* call, const char* where, int line);

}  // namespace cuda
}  // namespace unirt

#define UNIRT_CUDA(call)                                                                      \
  do {                                                                                        \
    cudaError_t e_ = (call);                                                                  \
    if (e_ != cudaSuccess) ::unirt::cuda::throw_cuda(e_, #call, __FILE__, __LINE__);          \
  } while (0)
#define UNIRT_CUBLAS(call)                                                                    \
  do {                                                                                        \
    cublasStatus_t s_ = (call);                                                               \
    if (s_ != CUBLAS_STATUS_SUCCESS) ::unirt::cuda::throw_cublas(s_, #call, __FILE__, __LINE__); \
  } while (0)
#define UNIRT_CUDNN(call)                                                                     \
  do {                                                                                        \
    cudnnStatus_t s_ = (call);                                                                \
    if (s_ != CUDNN_STATUS_SUCCESS) ::unirt::cuda::throw_cudnn(s_, #call, __FILE__, __LINE__); \
  } while (0)
