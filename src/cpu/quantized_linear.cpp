// unirt.QuantizedLinear (passes/lower_quantized_layers.cpp) on the CPU: the reference for the CUDA
// 8-bit GEMMs. int8 products accumulate exactly in int32 (float8 E4M3FN ones in float32), then
// Z = alpha[n] acc + bias[n], and either Z (+ residual) as float32 or act(Z) / out_scale rounded
// to nearest even and saturated to the 8-bit type (and, with q_scale, also the float output's codes).
// GELU is the tanh form the GPU epilogue uses.
// CPU engines do not lower to this op (they run the Q/DQ graph in float32); it exists so that
// every backend runs every op, and the CUDA kernel has an independent check.
#include <cmath>

#include "backend/float8_rule.h"
#include "backend/quantize_rule.h"
#include "cpu/cpu_util.h"
#include "cpu/quantized_gemm.h"
#include "ir/fused_attrs.h"

namespace unirt {
namespace cpu {
namespace {

class QuantizedLinearKernel : public CpuKernel {
 public:
  explicit QuantizedLinearKernel(const KernelCreateArgs& a) : CpuKernel(a), attrs_(QuantizedLinearAttrs::of(a.node)) {}
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const DType t = in[0].dtype;
    if (t != DType::Int8 && t != DType::Float8E4M3FN) fail(std::string("X is ") + dtype_name(t) + ": int8 or float8e4m3fn expected");
    if (in[1].dtype != t) fail(std::string("W is ") + dtype_name(in[1].dtype) + ", X is " + dtype_name(t));
    const auto& xs = in[0].shape;
    if (xs.empty() || in[1].shape.size() != 2 || in[1].shape[1] != xs.back())
      fail("X " + dims_text(xs) + " and W " + dims_text(in[1].shape) + " do not form [..., K] x [N, K]");
    const int64_t K = xs.back(), N = in[1].shape[0], M = K ? in[0].numel() / K : 0;
    auto ys = xs;
    ys.back() = N;
    expect_shape(out[0], ys, "output");
    if (in[2].dtype != DType::Float32 || in[2].numel() != N) fail("alpha must be float32 [" + std::to_string(N) + "]");
    const bool has_bias = present(in, 3), has_res = present(in, 4);
    if (has_bias && (in[3].dtype != DType::Float32 || in[3].numel() != N)) fail("bias must be float32 [" + std::to_string(N) + "]");
    if (has_res) {
      expect_float(in[4], "residual");
      expect_shape(in[4], ys, "residual");
    }
    const bool eight = attrs_.out_scale > 0.f;
    if (eight ? out[0].dtype != t : out[0].dtype != DType::Float32)
      fail(std::string("output is ") + dtype_name(out[0].dtype) + ", expected " + (eight ? dtype_name(t) : "float32"));
    const float* alpha = in[2].as<float>();
    const float* bias = has_bias ? in[3].as<float>() : nullptr;
    const float* res = has_res ? in[4].as<float>() : nullptr;
    const bool fp8 = t == DType::Float8E4M3FN;
    const float inv = eight ? 1.f / attrs_.out_scale : 1.f;
    uint8_t* codes = nullptr;  // q_scale: the output's codes (backend/quantize_rule.h's fused rule)
    const float qinv = attrs_.q_scale > 0.f ? 1.f / attrs_.q_scale : 1.f;
    if (attrs_.q_scale > 0.f) {
      if (out[1].dtype != t) fail(std::string("the codes output is ") + dtype_name(out[1].dtype) + ", X is " + dtype_name(t));
      expect_shape(out[1], ys, "codes output");
      codes = out[1].as<uint8_t>();
    }
#pragma omp parallel for num_threads(ctx.threads) if (M * N * K > (1 << 20))
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t n = 0; n < N; ++n) {
        const float acc = quantized_dot(fp8, in[0].as<uint8_t>() + m * K, in[1].as<uint8_t>() + n * K, K);
        float z = alpha[n] * acc + (bias ? bias[n] : 0.f);
        const int64_t i = m * N + n;
        if (!eight) {
          if (attrs_.gelu) z = gelu_tanh(z);
          const float y = z + (res ? res[i] : 0.f);
          out[0].as<float>()[i] = y;
          if (codes)
            codes[i] = fused_code(fp8, y, qinv);
          continue;
        }
        const float v = (attrs_.gelu ? gelu_tanh(z) : z) * inv;
        out[0].as<uint8_t>()[i] = requantize(fp8, v);
      }
    }
  }

 private:
  QuantizedLinearAttrs attrs_;
};
UNIRT_REGISTER_KERNEL(cpu, unirt.QuantizedLinear, QuantizedLinearKernel, "int8 float8e4m3fn float32",
                      "X [..., K], W [N, K]");

}  // namespace
}  // namespace cpu
}  // namespace unirt
