// Hand-written depthwise convolution (group == C_in == C_out, NCHW, dilation 1): the input tile and
// its halo in shared memory, each thread a short column of outputs with the filter in registers.
// Specialised for 3x3, 5x5 and 7x7 at stride 1 and 2; any other size runs a generic kernel.
#pragma once
#include "cuda/cuda_context.h"

namespace unirt {
namespace cuda {

struct DepthwiseShape {
  int64_t N = 0, C = 0, H = 0, W = 0, OH = 0, OW = 0;
  int kh = 0, kw = 0, stride_h = 1, stride_w = 1, pad_top = 0, pad_left = 0;
};

// False when the shape is outside what the kernel handles (too wide a row for shared memory).
bool depthwise_supported(const DepthwiseShape& s);
// y = depthwise_conv(x, w) + bias (bias may be null); float32 or float16 with float32 accumulation.
void depthwise_conv(DType t, const DepthwiseShape& s, const void* x, const void* w, const void* bias, void* y, cudaStream_t stream);

}  // namespace cuda
}  // namespace unirt
