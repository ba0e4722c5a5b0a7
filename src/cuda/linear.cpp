// unirt.Linear (passes/fuse_linear.cpp; 1x1 convs from passes/nhwc_wrap_convs.cpp):
// Y[M, N] = X[M, K] W[K, N] + bias[N] + R[M, N] as one cuBLASLt GEMM, M = all leading dims of X.
// The bias rides in the epilogue and the residual enters as C with beta = 1, so neither costs a
// pass over memory. One plan (descriptors + heuristic algorithm) per M, made in prepare().
#include <map>
#include <memory>

#include "cuda/gemm.h"
#include "ir/fused_attrs.h"

namespace unirt {
namespace cuda {
namespace {

// activation "gelu": float16 takes cuBLASLt's GELU epilogue (its tanh form differs from erf by
// less than float16 resolves at the magnitudes involved; parity is measured end to end in
// tests/python/test_gpu_parity.py); float32 keeps the exact erf form in a separate in-place pass.
class LinearKernel : public CudaKernel {
 public:
  explicit LinearKernel(const KernelCreateArgs& a) : CudaKernel(a) {
    gelu_ = LinearAttrs::of(a.node).gelu;
  }

  size_t prepare(const std::vector<TensorView>& in, const std::vector<TensorView>& out) override {
    expect_floatish(in[0], "X");
    const auto& xs = in[0].shape;
    if (xs.empty() || in[1].shape.size() != 2 || in[1].shape[0] != xs.back())
      fail("X and W do not form [..., K] x [K, N]");
    for (size_t i : {size_t(1), size_t(2), size_t(3)})
      if (i < in.size() && has(i) && in[i].dtype != in[0].dtype)
        fail(std::string("input ") + std::to_string(i) + " is " + dtype_name(in[i].dtype) + ", X is " + dtype_name(in[0].dtype));
    if (out[0].dtype != in[0].dtype) fail("output type differs from X");
    const int64_t K = xs.back(), N = in[1].shape[1], M = K ? in[0].numel() / K : 0;
    if (has(2) && in[2].numel() != N) fail("bias must hold " + std::to_string(N) + " values");
    if (has(3) && in[3].shape != out[0].shape) fail("residual shape differs from the output");
    if (M == 0 || N == 0 || K == 0) return 0;
    GemmShape g = dense_gemm(in[0].dtype, M, N, K, has(2));
    g.gelu = gelu_ && g.type == DType::Float16;
    size_t ws = 0;
    guarded("cuBLASLt plan", [&] { ws = plans_.prepare(g, has(3)); });
    return ws;
  }

  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const int64_t K = in[0].shape.back(), N = in[1].shape[1], M = K ? in[0].numel() / K : 0;
    if (M == 0 || N == 0) return;
    if (K == 0) fail("K == 0 is not supported by the CUDA Linear kernel");
    const LtGemm* gemm = plans_.find(M);
    if (!gemm) fail("run() for an input shape prepare() never saw");
    const bool res = has(3);
    guarded("cuBLASLt Linear", [&] {
      gemm->run(1.f, in[0].data, in[1].data, res ? 1.f : 0.f, res ? in[3].data : nullptr, out[0].data,
                           has(2) ? in[2].data : nullptr, ctx.workspace, ctx.workspace_bytes, stream_of(ctx));
    });
    if (gelu_ && in[0].dtype != DType::Float16) {
      gelu_inplace(out[0].dtype, out[0].data, out[0].numel(), stream_of(ctx));
      check_launch(node_);
    }
  }

 private:
  GemmPlans plans_;
  bool gelu_ = false;

 public:
  std::string tactic() const override { return plans_.tactic; }
  void use_tactic(const std::string& t) override { plans_.recorded = t; }
};
UNIRT_REGISTER_KERNEL(cuda, unirt.Linear, LinearKernel, "float32 float16", "X [..., K], W [K, N]");

}  // namespace
}  // namespace cuda
}  // namespace unirt
