// Functions the CPU and CUDA kernels share (the backend/*_rule.h headers) compile for both sides.
#pragma once

#ifdef __CUDACC__
#define UNIRT_HOST_DEVICE __host__ __device__
#else
#define UNIRT_HOST_DEVICE
#endif
