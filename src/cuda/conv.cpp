// Conv through cuDNN: dense, grouped and depthwise, float32 or float16 (tensor cores, float32
// accumulation). The algorithm is chosen per input shape in prepare() by cuDNN's heuristics.
#include <map>

#include "cuda/cuda_common.h"

namespace unirt {
namespace cuda {
namespace {

struct ConvSetup {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr, b = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnConvolutionFwdAlgo_t algo{};
  size_t workspace = 0;
};

class ConvKernel : public CudaKernel {
 public:
  using CudaKernel::CudaKernel;
  ~ConvKernel() override {
    for (auto& kv : setups_) {
      cudnnDestroyTensorDescriptor(kv.second.x);
      cudnnDestroyTensorDescriptor(kv.second.y);
      cudnnDestroyTensorDescriptor(kv.second.b);
      cudnnDestroyFilterDescriptor(kv.second.w);
      cudnnDestroyConvolutionDescriptor(kv.second.conv);
    }
  }

  size_t prepare(const std::vector<TensorView>& in, const std::vector<TensorView>& out) override {
    if (patchify(in)) return static_cast<size_t>(out[0].numel() / out[0].shape[1] * in[1].numel() / in[1].shape[0]) * dtype_size(in[0].dtype);
    return setup_for(in, out).workspace;
  }

  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    if (patchify(in)) return run_patchify(in, out, ctx);
    auto it = setups_.find(in[0].shape);
    if (it == setups_.end()) fail("run() for an input shape prepare() never saw");
    const ConvSetup& c = it->second;
    if (ctx.workspace_bytes < c.workspace) fail("workspace too small");
    cudnnHandle_t h = handles().cudnn;
    UNIRT_CUDNN(cudnnSetStream(h, stream_of(ctx)));
    const float one = 1.f, zero = 0.f;
    UNIRT_CUDNN(cudnnConvolutionForward(h, &one, c.x, in[0].data, c.w, in[1].data, c.conv, c.algo, ctx.workspace, c.workspace, &zero,
                                        c.y, out[0].data));
    if (in.size() > 2 && in[2].data) UNIRT_CUDNN(cudnnAddTensor(h, &one, c.b, in[2].data, &one, c.y, out[0].data));
  }

 private:
  // Patch embedding (kernel == stride, no padding): gather patches into columns, then one GEMM per image.
  bool patchify(const std::vector<TensorView>& in) const {
    const auto& ws = in[1].shape;
    if (ws.size() != 4 || node_.attr_i("group", 1) != 1 || node_.attr_s("auto_pad", "NOTSET") != "NOTSET") return false;
    auto st = node_.attr_ints("strides", {1, 1});
    for (auto v : node_.attr_ints("pads", {0, 0, 0, 0})) if (v != 0) return false;
    for (auto v : node_.attr_ints("dilations", {1, 1})) if (v != 1) return false;
    return st[0] == ws[2] && st[1] == ws[3] && ws[2] > 1;
  }
  void run_patchify(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) {
    expect_floatish(in[0], "input");
    const auto& xs = in[0].shape;
    const auto& ws = in[1].shape;
    const auto& ys = out[0].shape;
    const int64_t N = xs[0], C = xs[1], H = xs[2], W = xs[3], kh = ws[2], kw = ws[3], OH = ys[2], OW = ys[3], Cout = ws[0];
    const int64_t K = C * kh * kw, P = OH * OW;
    if (N * P == 0) return;
    if (ctx.workspace_bytes < static_cast<size_t>(N * K * P) * dtype_size(in[0].dtype)) fail("workspace too small");
    cudaStream_t s = stream_of(ctx);
    // cols[n, c, ky, kx, oy, ox] = x[n, c, oy*kh + ky, ox*kw + kx]
    strided_copy(in[0].data, ctx.workspace, in[0].dtype, {N, C, kh, kw, OH, OW}, {C * H * W, H * W, W, 1, kh * W, kw}, 0, s);
    const bool bias = in.size() > 2 && in[2].data;
    if (bias) fill_channel_bias(out[0].dtype, in[2].data, out[0].data, N * Cout * P, Cout, P, s);
    cublasHandle_t h = handles().cublas;
    UNIRT_CUBLAS(cublasSetStream(h, s));
    gemm_rm(h, out[0].dtype, false, false, Cout, P, K, 1.f, in[1].data, K, 0, ctx.workspace, P, K * P, bias ? 1.f : 0.f, out[0].data, P,
            Cout * P, N);
  }

  const ConvSetup& setup_for(const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
    auto it = setups_.find(in[0].shape);
    if (it != setups_.end()) return it->second;
    expect_floatish(in[0], "input");
    if (in[1].dtype != in[0].dtype) fail("weight type differs from the input type");
    const auto& xs = in[0].shape;
    const auto& ws = in[1].shape;
    const auto& ys = out[0].shape;
    if (xs.size() != 4) fail("the CUDA backend runs 2-D convolutions only, input " + std::to_string(xs.size()) + "-D");
    const int64_t group = node_.attr_i("group", 1);
    auto strides = node_.attr_ints("strides", {1, 1});
    auto dil = node_.attr_ints("dilations", {1, 1});
    auto pads = node_.attr_ints("pads", {0, 0, 0, 0});
    const std::string ap = node_.attr_s("auto_pad", "NOTSET");
    if (ap != "NOTSET" || pads[0] != pads[2] || pads[1] != pads[3])
      fail("the CUDA backend needs symmetric explicit pads (auto_pad NOTSET)");
    const cudnnDataType_t dt = in[0].dtype == DType::Float16 ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT;
    ConvSetup c;
    UNIRT_CUDNN(cudnnCreateTensorDescriptor(&c.x));
    UNIRT_CUDNN(cudnnCreateTensorDescriptor(&c.y));
    UNIRT_CUDNN(cudnnCreateTensorDescriptor(&c.b));
    UNIRT_CUDNN(cudnnCreateFilterDescriptor(&c.w));
    UNIRT_CUDNN(cudnnCreateConvolutionDescriptor(&c.conv));
    auto i32 = [](int64_t v) { return static_cast<int>(v); };
    UNIRT_CUDNN(cudnnSetTensor4dDescriptor(c.x, CUDNN_TENSOR_NCHW, dt, i32(xs[0]), i32(xs[1]), i32(xs[2]), i32(xs[3])));
    UNIRT_CUDNN(cudnnSetTensor4dDescriptor(c.y, CUDNN_TENSOR_NCHW, dt, i32(ys[0]), i32(ys[1]), i32(ys[2]), i32(ys[3])));
    UNIRT_CUDNN(cudnnSetTensor4dDescriptor(c.b, CUDNN_TENSOR_NCHW, dt, 1, i32(ys[1]), 1, 1));
    UNIRT_CUDNN(cudnnSetFilter4dDescriptor(c.w, dt, CUDNN_TENSOR_NCHW, i32(ws[0]), i32(ws[1]), i32(ws[2]), i32(ws[3])));
    UNIRT_CUDNN(cudnnSetConvolution2dDescriptor(c.conv, i32(pads[0]), i32(pads[1]), i32(strides[0]), i32(strides[1]), i32(dil[0]),
                                                i32(dil[1]), CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    UNIRT_CUDNN(cudnnSetConvolutionGroupCount(c.conv, i32(group)));
    UNIRT_CUDNN(cudnnSetConvolutionMathType(c.conv, dt == CUDNN_DATA_HALF ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH));
    cudnnConvolutionFwdAlgoPerf_t perf[8];
    int found = 0;
    UNIRT_CUDNN(cudnnGetConvolutionForwardAlgorithm_v7(handles().cudnn, c.x, c.w, c.conv, c.y, 8, &found, perf));
    bool ok = false;
    for (int i = 0; i < found && !ok; ++i) {
      if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;
      c.algo = perf[i].algo;
      ok = cudnnGetConvolutionForwardWorkspaceSize(handles().cudnn, c.x, c.w, c.conv, c.y, c.algo, &c.workspace) == CUDNN_STATUS_SUCCESS;
    }
    if (!ok) fail("cuDNN found no convolution algorithm for input " + std::to_string(xs[1]) + " channels");
    return setups_.emplace(xs, c).first->second;
  }

  std::map<std::vector<int64_t>, ConvSetup> setups_;
};

}  // namespace
UNIRT_REGISTER_KERNEL(cuda, Conv, ConvKernel);
}  // namespace cuda
}  // namespace unirt
