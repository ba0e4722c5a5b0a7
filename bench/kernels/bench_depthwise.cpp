// Depthwise convolution on the UniFormer shapes: the hand-written kernel against cuDNN's NCHW
// depthwise (best algorithm by cudnnFind), float32 and float16. Prints a markdown table.
// Usage: unirt_bench_kernels [iterations]
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cuda/depthwise_conv.h"

using namespace unirt;
using namespace unirt::cuda;

namespace {

template <typename F>
float time_ms(F&& f, int iters, cudaStream_t s) {
  cudaEvent_t a, b;
  UNIRT_CUDA(cudaEventCreate(&a));
  UNIRT_CUDA(cudaEventCreate(&b));
  for (int i = 0; i < 3; ++i) f();
  UNIRT_CUDA(cudaEventRecord(a, s));
  for (int i = 0; i < iters; ++i) f();
  UNIRT_CUDA(cudaEventRecord(b, s));
  UNIRT_CUDA(cudaEventSynchronize(b));
  float ms = 0;
  UNIRT_CUDA(cudaEventElapsedTime(&ms, a, b));
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return ms / iters;
}

}  // namespace

int main(int argc, char** argv) {
  const int iters = argc > 1 ? std::atoi(argv[1]) : 50;
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    std::printf("no GPU\n");
    return 0;
  }
  cudaDeviceProp prop{};
  UNIRT_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s\n\n", prop.name);
  std::printf("| dtype | N | C | HxW | k | stride | own us | cuDNN us (algo) | cuDNN/own |\n|---|---|---|---|---|---|---|---|---|\n");
  cudaStream_t s;
  UNIRT_CUDA(cudaStreamCreate(&s));
  cudnnHandle_t h = context().cudnn;
  UNIRT_CUDNN(cudnnSetStream(h, s));
  struct Case { int64_t C, H; int k, stride; } cases[] = {{64, 56, 3, 1}, {64, 56, 5, 1}, {128, 28, 3, 1}, {128, 28, 5, 1},
                                                           {320, 14, 3, 1}, {512, 7, 3, 1}, {64, 56, 3, 2}};
  for (DType t : {DType::Float16, DType::Float32}) {
    for (int64_t N : {1, 32, 128}) {
      for (const auto& c : cases) {
        DepthwiseShape d;
        d.N = N, d.C = c.C, d.H = c.H, d.W = c.H;
        d.kh = d.kw = c.k;
        d.stride_h = d.stride_w = c.stride;
        d.pad_top = d.pad_left = c.k / 2;
        d.OH = (c.H + 2 * d.pad_top - c.k) / c.stride + 1;
        d.OW = d.OH;
        const size_t es = dtype_size(t);
        void *x, *w, *b, *y, *ws = nullptr;
        UNIRT_CUDA(cudaMalloc(&x, N * c.C * c.H * c.H * es));
        UNIRT_CUDA(cudaMalloc(&y, N * c.C * d.OH * d.OW * es));
        UNIRT_CUDA(cudaMalloc(&w, c.C * c.k * c.k * es));
        UNIRT_CUDA(cudaMalloc(&b, c.C * es));
        UNIRT_CUDA(cudaMemset(x, 0, N * c.C * c.H * c.H * es));
        UNIRT_CUDA(cudaMemset(w, 0, c.C * c.k * c.k * es));
        UNIRT_CUDA(cudaMemset(b, 0, c.C * es));
        const float own = time_ms([&] { depthwise_conv(t, d, x, w, b, y, s); }, iters, s);
        UNIRT_CUDA(cudaGetLastError());
        const cudnnDataType_t dt = t == DType::Float16 ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT;
        cudnnTensorDescriptor_t xd, yd, bd;
        cudnnFilterDescriptor_t wd;
        cudnnConvolutionDescriptor_t cd;
        UNIRT_CUDNN(cudnnCreateTensorDescriptor(&xd));
        UNIRT_CUDNN(cudnnCreateTensorDescriptor(&yd));
        UNIRT_CUDNN(cudnnCreateTensorDescriptor(&bd));
        UNIRT_CUDNN(cudnnCreateFilterDescriptor(&wd));
        UNIRT_CUDNN(cudnnCreateConvolutionDescriptor(&cd));
        UNIRT_CUDNN(cudnnSetTensor4dDescriptor(xd, CUDNN_TENSOR_NCHW, dt, int(N), int(c.C), int(c.H), int(c.H)));
        UNIRT_CUDNN(cudnnSetTensor4dDescriptor(yd, CUDNN_TENSOR_NCHW, dt, int(N), int(c.C), int(d.OH), int(d.OW)));
        UNIRT_CUDNN(cudnnSetTensor4dDescriptor(bd, CUDNN_TENSOR_NCHW, dt, 1, int(c.C), 1, 1));
        UNIRT_CUDNN(cudnnSetFilter4dDescriptor(wd, dt, CUDNN_TENSOR_NCHW, int(c.C), 1, c.k, c.k));
        UNIRT_CUDNN(cudnnSetConvolution2dDescriptor(cd, c.k / 2, c.k / 2, c.stride, c.stride, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
        UNIRT_CUDNN(cudnnSetConvolutionGroupCount(cd, int(c.C)));
        UNIRT_CUDNN(cudnnSetConvolutionMathType(cd, t == DType::Float16 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH));
        cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        int found = 0;
        UNIRT_CUDNN(cudnnFindConvolutionForwardAlgorithm(h, xd, wd, cd, yd, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &found, perf));
        int pick = -1;
        for (int i = 0; i < found && pick < 0; ++i)
          if (perf[i].status == CUDNN_STATUS_SUCCESS) pick = i;
        float dnn = -1;
        if (pick >= 0) {
          if (perf[pick].memory) UNIRT_CUDA(cudaMalloc(&ws, perf[pick].memory));
          const float one = 1.f, zero = 0.f;
          dnn = time_ms([&] {
            UNIRT_CUDNN(cudnnConvolutionForward(h, &one, xd, x, wd, w, cd, perf[pick].algo, ws, perf[pick].memory, &zero, yd, y));
            UNIRT_CUDNN(cudnnAddTensor(h, &one, bd, b, &one, yd, y));
          }, iters, s);
        }
        std::printf("| %s | %lld | %lld | %lldx%lld | %d | %d | %.1f | %.1f (%d) | %.2fx |\n", dtype_name(t), (long long)N, (long long)c.C,
                    (long long)c.H, (long long)c.H, c.k, c.stride, own * 1e3, dnn * 1e3, pick >= 0 ? int(perf[pick].algo) : -1,
                    dnn / own);
        std::fflush(stdout);
        cudnnDestroyTensorDescriptor(xd);
        cudnnDestroyTensorDescriptor(yd);
        cudnnDestroyTensorDescriptor(bd);
        cudnnDestroyFilterDescriptor(wd);
        cudnnDestroyConvolutionDescriptor(cd);
        cudaFree(x), cudaFree(y), cudaFree(w), cudaFree(b);
        if (ws) cudaFree(ws), ws = nullptr;
      }
    }
  }
  return 0;
}
