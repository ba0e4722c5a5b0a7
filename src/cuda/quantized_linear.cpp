// unirt.QuantizedLinear (passes/lower_quantized_layers.cpp) on the GPU: one CUTLASS 8-bit GEMM
// (quant_gemm.h) with the dequantize (alpha[n] = X scale x W channel scale), the bias, and either
// the residual (float16 out, optionally with its 8-bit codes as a second output) or GELU and the
// requantize to the next layer's scale (8-bit out) in its epilogue. The activations stay 8-bit
// between an fc1 and its fc2; nothing is simulated.
#include <cstdio>
#include <map>

#include "cuda/cuda_context.h"
#include "cuda/quant_gemm.h"
#include "ir/fused_attrs.h"

namespace unirt {
namespace cuda {
namespace {

class QuantizedLinearKernel : public CudaKernel {
 public:
  explicit QuantizedLinearKernel(const KernelCreateArgs& a) : CudaKernel(a), attrs_(QuantizedLinearAttrs::of(a.node)) {}

  size_t prepare(const std::vector<TensorView>& in, const std::vector<TensorView>& out) override {
    const DType t = in[0].dtype;
    if (t != DType::Int8 && t != DType::Float8E4M3FN) fail(std::string("X is ") + dtype_name(t) + ": int8 or float8e4m3fn expected");
    if (in[1].dtype != t) fail(std::string("W is ") + dtype_name(in[1].dtype) + ", X is " + dtype_name(t));
    const auto& xs = in[0].shape;
    if (xs.empty() || in[1].shape.size() != 2 || in[1].shape[1] != xs.back()) fail("X and W do not form [..., K] x [N, K]");
    const int64_t K = xs.back(), N = in[1].shape[0];
    if (in[2].dtype != DType::Float32 || in[2].numel() != N) fail("alpha must be float32 [" + std::to_string(N) + "]");
    if (has(3) && (in[3].dtype != DType::Float32 || in[3].numel() != N)) fail("bias must be float32 [" + std::to_string(N) + "]");
    const bool eight = attrs_.out_scale > 0.f;
    if (eight ? out[0].dtype != t : out[0].dtype != DType::Float16)
      fail(std::string("output is ") + dtype_name(out[0].dtype) + ", expected " + (eight ? dtype_name(t) : "float16"));
    if (has(4) && (in[4].dtype != DType::Float16 || in[4].shape != out[0].shape)) fail("residual must be float16 of the output's shape");
    if (attrs_.q_scale > 0.f && (out.size() < 2 || out[1].dtype != t || out[1].shape != out[0].shape))
      fail(std::string("the codes output must be ") + dtype_name(t) + " of the output's shape");
    QGemmArgs q = args(in, out);
    if (q.M == 0 || N == 0) return 0;
    if (K == 0) fail("K == 0 is not supported by the 8-bit GEMM");
    const std::string why = qgemm_unsupported(q);
    if (!why.empty()) fail(why);
    // The tile: the engine's recorded one for this M (no re-timing on load), else timed now.
    int tile = -1;
    long long m = -1;
    if (std::sscanf(recorded_.c_str(), "M=%lld qgemm tile %d", &m, &tile) != 2 || m != q.M || tile < 0 || tile >= kQGemmTiles) tile = -1;
    const bool reuse = tile >= 0;
    std::string report;
    guarded("8-bit GEMM tuning", [&] {
      if (!reuse) tile = qgemm_autotune(type(t), q, &report);
      qgemm_prepare(type(t), q, tile);
    });
    tiles_[q.M] = tile;
    tactic_ = reuse ? recorded_
                    : report + (eight                    ? ", GELU + requantize epilogue"
                                : attrs_.q_scale > 0.f ? ", residual + 8-bit copy epilogue"
                                : has(4)               ? ", residual epilogue"
                                                       : "");
    return 0;
  }

  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    QGemmArgs q = args(in, out);
    if (q.M == 0 || q.N == 0) return;
    for (size_t i = 0; i < in.size(); ++i)
      if (has(i) && !aligned16(in[i].data)) fail("input " + std::to_string(i) + " is not 16-byte aligned");
    for (size_t i = 0; i < out.size(); ++i)
      if (!aligned16(out[i].data)) fail("output " + std::to_string(i) + " is not 16-byte aligned");
    auto it = tiles_.find(q.M);
    if (it == tiles_.end()) fail("run() for an input shape prepare() never saw");
    guarded("8-bit GEMM", [&] { qgemm_run(type(in[0].dtype), q, it->second, stream_of(ctx)); });
    check_launch(node_);
  }
  std::string tactic() const override { return tactic_; }
  void use_tactic(const std::string& t) override { recorded_ = t; }

 private:
  static QGemmType type(DType t) { return t == DType::Int8 ? QGemmType::Int8 : QGemmType::Fp8; }
  QGemmArgs args(const std::vector<TensorView>& in, const std::vector<TensorView>& out) const {
    QGemmArgs q;
    q.K = in[0].shape.back();
    q.N = in[1].shape[0];
    q.M = q.K ? in[0].numel() / q.K : 0;
    q.a = in[0].data;
    q.b = in[1].data;
    q.alpha = in[2].as<float>();
    q.bias = has(3) ? in[3].as<float>() : nullptr;
    q.residual = has(4) ? in[4].as<__half>() : nullptr;
    q.has_residual = has(4);
    q.d = out[0].data;
    q.out8 = attrs_.out_scale > 0.f;
    q.gelu = attrs_.gelu;
    q.inv_out_scale = q.out8 ? 1.f / attrs_.out_scale : 1.f;
    if (attrs_.q_scale > 0.f && out.size() > 1) {
      q.has_aux = true;
      q.aux = out[1].data;
      q.aux_inv_scale = 1.f / attrs_.q_scale;
    }
    return q;
  }
  QuantizedLinearAttrs attrs_;
  std::string tactic_, recorded_;
  std::map<int64_t, int> tiles_;  // M -> tile
};
UNIRT_REGISTER_KERNEL(cuda, unirt.QuantizedLinear, QuantizedLinearKernel, "int8 float8e4m3fn float16",
                      "X [..., K], W [N, K]; K % 16 == 0, N % 16 == 0");

}  // namespace
}  // namespace cuda
}  // namespace unirt
