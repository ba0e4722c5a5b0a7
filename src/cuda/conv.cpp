// Conv (2-D, NCHW), float32 or float16 with float32 accumulation. Three implementations, chosen per
// node in prepare():
//  - depthwise (group == C_in == C_out): the hand-written kernel of depthwise_conv.cu, faster than
//    cuDNN's NCHW depthwise on the UniFormer shapes (docs/kernels.md); UNIRT_CUDA_DEPTHWISE=cudnn
//    selects cuDNN instead;
//  - patch embedding (kernel == stride, no padding, group 1): gather patches into columns in the
//    workspace, then one cuBLASLt GEMM per image;
//  - everything else: cuDNN, with the algorithm measured by cudnnFindConvolutionForwardAlgorithm
//    per input shape (heuristic cudnnGetConvolutionForwardAlgorithm_v7 if measuring fails).
#include <cstdlib>
#include <map>
#include <memory>

#include "cuda/depthwise_conv.h"
#include "cuda/gemm.h"

namespace unirt {
namespace cuda {
namespace {

constexpr size_t kMaxConvWorkspace = size_t{256} << 20;

struct CudnnConv {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr, b = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnConvolutionFwdAlgo_t algo{};
  size_t workspace = 0;
  ~CudnnConv() {
    if (x) cudnnDestroyTensorDescriptor(x);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (b) cudnnDestroyTensorDescriptor(b);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
  }
};

struct ConvPlan {
  enum class Kind { Depthwise, Patchify, Cudnn } kind = Kind::Cudnn;
  DepthwiseShape dw;
  CudnnConv cudnn;
  LtGemm gemm;
  int64_t N = 0, C = 0, H = 0, W = 0, kh = 0, kw = 0, OH = 0, OW = 0, Cout = 0;
  size_t workspace = 0;
};

bool depthwise_via_cudnn() {
  const char* e = std::getenv("UNIRT_CUDA_DEPTHWISE");
  return e && std::string(e) == "cudnn";
}

class ConvKernel : public CudaKernel {
 public:
  explicit ConvKernel(const KernelCreateArgs& a) : CudaKernel(a), force_cudnn_dw_(depthwise_via_cudnn()) {
    group_ = node_.attr_i("group", 1);
    strides_ = node_.attr_ints("strides", {1, 1});
    dil_ = node_.attr_ints("dilations", {1, 1});
    pads_ = node_.attr_ints("pads", {0, 0, 0, 0});
    auto_pad_ = node_.attr_s("auto_pad", "NOTSET");
  }

  size_t prepare(const std::vector<TensorView>& in, const std::vector<TensorView>& out) override {
    auto it = plans_.find(in[0].shape);
    if (it != plans_.end()) return it->second->workspace;
    auto p = std::make_unique<ConvPlan>();
    plan(*p, in, out);
    const size_t ws = p->workspace;
    plans_.emplace(in[0].shape, std::move(p));
    return ws;
  }

  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    auto it = plans_.find(in[0].shape);
    if (it == plans_.end()) fail("run() for an input shape prepare() never saw");
    const ConvPlan& p = *it->second;
    if (ctx.workspace_bytes < p.workspace) fail("workspace of " + std::to_string(ctx.workspace_bytes) + " bytes, needs " + std::to_string(p.workspace));
    const void* bias = in.size() > 2 && in[2].data ? in[2].data : nullptr;
    cudaStream_t s = stream_of(ctx);
    switch (p.kind) {
      case ConvPlan::Kind::Depthwise:
        depthwise_conv(out[0].dtype, p.dw, in[0].data, in[1].data, bias, out[0].data, s);
        check_launch(node_);
        return;
      case ConvPlan::Kind::Patchify: return run_patchify(p, in, out, bias, ctx);
      case ConvPlan::Kind::Cudnn: {
        cudnnHandle_t h = context().cudnn;
        const float one = 1.f, zero = 0.f;
        guarded("cuDNN convolution", [&] {
          UNIRT_CUDNN(cudnnSetStream(h, s));
          UNIRT_CUDNN(cudnnConvolutionForward(h, &one, p.cudnn.x, in[0].data, p.cudnn.w, in[1].data, p.cudnn.conv, p.cudnn.algo,
                                              ctx.workspace, p.cudnn.workspace, &zero, p.cudnn.y, out[0].data));
          if (bias) UNIRT_CUDNN(cudnnAddTensor(h, &one, p.cudnn.b, bias, &one, p.cudnn.y, out[0].data));
        });
        return;
      }
    }
  }

 private:
  void plan(ConvPlan& p, const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
    expect_floatish(in[0], "input X");
    if (in[1].dtype != in[0].dtype)
      fail(std::string("weight W is ") + dtype_name(in[1].dtype) + ", input X " + dtype_name(in[0].dtype) + "; they must match");
    if (in.size() > 2 && in[2].data && in[2].dtype != in[0].dtype) fail("bias B type differs from the input type");
    const auto& xs = in[0].shape;
    const auto& ws = in[1].shape;
    const auto& ys = out[0].shape;
    if (xs.size() != 4 || ws.size() != 4 || ys.size() != 4)
      fail("the CUDA backend runs 2-D convolutions only, input X is " + std::to_string(xs.size()) + "-D");
    if (strides_.size() != 2 || dil_.size() != 2 || pads_.size() != 4) fail("strides/dilations/pads must describe 2 spatial dims");
    p.N = xs[0], p.C = xs[1], p.H = xs[2], p.W = xs[3];
    p.Cout = ws[0], p.kh = ws[2], p.kw = ws[3], p.OH = ys[2], p.OW = ys[3];
    if (p.C != ws[1] * group_) fail("input X has " + std::to_string(p.C) + " channels, W expects " + std::to_string(ws[1] * group_));
    // Explicit pads from auto_pad so every implementation sees the same geometry.
    int64_t pt = pads_[0], pl = pads_[1], pb = pads_[2], pr = pads_[3];
    if (auto_pad_ == "SAME_UPPER" || auto_pad_ == "SAME_LOWER") {
      auto same = [&](int64_t in_d, int64_t out_d, int64_t k, int64_t s, int64_t d, int64_t& lo, int64_t& hi) {
        const int64_t total = std::max<int64_t>(0, (out_d - 1) * s + (k - 1) * d + 1 - in_d);
        lo = auto_pad_ == "SAME_UPPER" ? total / 2 : total - total / 2;
        hi = total - lo;
      };
      same(p.H, p.OH, p.kh, strides_[0], dil_[0], pt, pb);
      same(p.W, p.OW, p.kw, strides_[1], dil_[1], pl, pr);
    } else if (auto_pad_ == "VALID") {
      pt = pl = pb = pr = 0;
    }
    const bool depthwise = group_ == p.C && p.Cout == p.C && ws[1] == 1 && dil_[0] == 1 && dil_[1] == 1;
    // Measured (docs/kernels.md): the own kernel wins at stride 1 everywhere and at stride 2 on
    // small maps; cuDNN wins stride 2 once the output passes ~1M elements.
    const bool strided_large = (strides_[0] > 1 || strides_[1] > 1) && p.N * p.C * p.OH * p.OW >= (int64_t{1} << 20);
    if (depthwise && !force_cudnn_dw_ && !strided_large) {
      p.dw = DepthwiseShape{p.N, p.C, p.H, p.W, p.OH, p.OW, static_cast<int>(p.kh), static_cast<int>(p.kw), static_cast<int>(strides_[0]),
                            static_cast<int>(strides_[1]), static_cast<int>(pt), static_cast<int>(pl)};
      if (depthwise_supported(p.dw)) {
        p.kind = ConvPlan::Kind::Depthwise;
        return;
      }
    }
    const bool patchify = group_ == 1 && pt == 0 && pl == 0 && pb == 0 && pr == 0 && dil_[0] == 1 && dil_[1] == 1 &&
                          strides_[0] == p.kh && strides_[1] == p.kw && p.kh * p.kw > 1;
    if (patchify) {
      p.kind = ConvPlan::Kind::Patchify;
      const int64_t K = p.C * p.kh * p.kw, P = p.OH * p.OW;
      p.workspace = static_cast<size_t>(p.N * K * P) * dtype_size(in[0].dtype);
      p.workspace = (p.workspace + 255) / 256 * 256;
      if (p.N * P == 0) return;
      GemmShape g;  // Y[n] (Cout x P) = W (Cout x K) * cols[n] (K x P)
      g.type = in[0].dtype;
      g.M = p.Cout;
      g.N = P;
      g.K = K;
      g.lda = K;
      g.ldb = P;
      g.ldc = P;
      g.batch = p.N;
      g.stride_a = 0;
      g.stride_b = K * P;
      g.stride_c = p.Cout * P;
      size_t gws = 0;
      guarded("cuBLASLt patch-embedding GEMM plan", [&] { gws = p.gemm.setup(g); });
      p.workspace += gws;
      return;
    }
    if (pt != pb || pl != pr) fail("cuDNN needs symmetric pads, found top/left " + std::to_string(pt) + "/" + std::to_string(pl) +
                                   " bottom/right " + std::to_string(pb) + "/" + std::to_string(pr));
    guarded("cuDNN convolution setup", [&] { setup_cudnn(p, in[0].dtype, pt, pl); });
    p.workspace = p.cudnn.workspace;
  }

  void setup_cudnn(ConvPlan& p, DType t, int64_t pt, int64_t pl) {
    const cudnnDataType_t dt = t == DType::Float16 ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT;
    CudnnConv& c = p.cudnn;
    UNIRT_CUDNN(cudnnCreateTensorDescriptor(&c.x));
    UNIRT_CUDNN(cudnnCreateTensorDescriptor(&c.y));
    UNIRT_CUDNN(cudnnCreateTensorDescriptor(&c.b));
    UNIRT_CUDNN(cudnnCreateFilterDescriptor(&c.w));
    UNIRT_CUDNN(cudnnCreateConvolutionDescriptor(&c.conv));
    auto i32 = [](int64_t v) { return static_cast<int>(v); };
    UNIRT_CUDNN(cudnnSetTensor4dDescriptor(c.x, CUDNN_TENSOR_NCHW, dt, i32(p.N), i32(p.C), i32(p.H), i32(p.W)));
    UNIRT_CUDNN(cudnnSetTensor4dDescriptor(c.y, CUDNN_TENSOR_NCHW, dt, i32(p.N), i32(p.Cout), i32(p.OH), i32(p.OW)));
    UNIRT_CUDNN(cudnnSetTensor4dDescriptor(c.b, CUDNN_TENSOR_NCHW, dt, 1, i32(p.Cout), 1, 1));
    UNIRT_CUDNN(cudnnSetFilter4dDescriptor(c.w, dt, CUDNN_TENSOR_NCHW, i32(p.Cout), i32(p.C / group_), i32(p.kh), i32(p.kw)));
    UNIRT_CUDNN(cudnnSetConvolution2dDescriptor(c.conv, i32(pt), i32(pl), i32(strides_[0]), i32(strides_[1]), i32(dil_[0]), i32(dil_[1]),
                                                CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    UNIRT_CUDNN(cudnnSetConvolutionGroupCount(c.conv, i32(group_)));
    // float32 stays true FP32 (no TF32) so FP32 engines match the CPU reference.
    UNIRT_CUDNN(cudnnSetConvolutionMathType(c.conv, dt == CUDNN_DATA_HALF ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH));
    cudnnHandle_t h = context().cudnn;
    UNIRT_CUDNN(cudnnSetStream(h, nullptr));  // the handle may still name a stream of a finished backend
    if (p.N == 0) return;
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int found = 0;
    // Measured search; it allocates its own scratch, so it can fail under memory pressure.
    if (cudnnFindConvolutionForwardAlgorithm(h, c.x, c.w, c.conv, c.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &found, perf) !=
        CUDNN_STATUS_SUCCESS) {
      cudaGetLastError();
      found = 0;
    }
    if (pick(c, perf, found)) return;
    UNIRT_CUDNN(cudnnGetConvolutionForwardAlgorithm_v7(h, c.x, c.w, c.conv, c.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &found, perf));
    if (pick(c, perf, found)) return;
    fail("cuDNN has no forward algorithm for input " + std::to_string(p.C) + "x" + std::to_string(p.H) + "x" + std::to_string(p.W) +
         " with group " + std::to_string(group_));
  }

  static bool pick(CudnnConv& c, const cudnnConvolutionFwdAlgoPerf_t* perf, int found) {
    for (int i = 0; i < found; ++i) {
      if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > kMaxConvWorkspace) continue;
      size_t ws = 0;
      if (cudnnGetConvolutionForwardWorkspaceSize(context().cudnn, c.x, c.w, c.conv, c.y, perf[i].algo, &ws) != CUDNN_STATUS_SUCCESS) continue;
      c.algo = perf[i].algo;
      c.workspace = ws;
      return true;
    }
    return false;
  }

  void run_patchify(const ConvPlan& p, const std::vector<TensorView>& in, const std::vector<TensorView>& out, const void* bias,
                    const RunContext& ctx) {
    const int64_t K = p.C * p.kh * p.kw, P = p.OH * p.OW;
    if (p.N * P == 0) return;
    cudaStream_t s = stream_of(ctx);
    const size_t cols_bytes = (static_cast<size_t>(p.N * K * P) * dtype_size(in[0].dtype) + 255) / 256 * 256;
    // cols[n, c, ky, kx, oy, ox] = x[n, c, oy*kh + ky, ox*kw + kx]
    strided_copy(in[0].data, ctx.workspace, in[0].dtype, {p.N, p.C, p.kh, p.kw, p.OH, p.OW},
                 {p.C * p.H * p.W, p.H * p.W, p.W, 1, p.kh * p.W, p.kw}, 0, s);
    check_launch(node_);
    if (bias) {
      fill_channel_bias(out[0].dtype, bias, out[0].data, p.N * p.Cout * P, p.Cout, P, s);
      check_launch(node_);
    }
    guarded("cuBLASLt patch-embedding GEMM", [&] {
      p.gemm.run(1.f, in[1].data, ctx.workspace, bias ? 1.f : 0.f, bias ? out[0].data : nullptr, out[0].data, nullptr,
                 static_cast<char*>(ctx.workspace) + cols_bytes, ctx.workspace_bytes - cols_bytes, s);
    });
  }

  bool force_cudnn_dw_;
  int64_t group_;
  std::vector<int64_t> strides_, dil_, pads_;
  std::string auto_pad_;
  std::map<std::vector<int64_t>, std::unique_ptr<ConvPlan>> plans_;
};

}  // namespace
UNIRT_REGISTER_KERNEL(cuda, Conv, ConvKernel, "float32 float16", "2-D NCHW only (4-D X, W, Y)");
}  // namespace cuda
}  // namespace unirt
