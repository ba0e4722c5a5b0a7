// unirt.QuantizedMlp (passes/fuse_quantized_mlp.cpp) on the CPU: the reference for the fused CUDA
// kernel, and exactly unirt.QuantizedLinear's fc1 (GELU, requantize to hidden_scale) then fc2
// (alpha, bias, residual) row by row (cpu/quantized_gemm.h holds the shared arithmetic). CPU
// engines do not create it (they run Q/DQ graphs in float32); it exists so every backend runs every op.
#include <vector>

#include "cpu/cpu_util.h"
#include "cpu/quantized_gemm.h"
#include "ir/fused_attrs.h"

namespace unirt {
namespace cpu {
namespace {

class QuantizedMlpKernel : public CpuKernel {
 public:
  explicit QuantizedMlpKernel(const KernelCreateArgs& a) : CpuKernel(a), attrs_(QuantizedMlpAttrs::of(a.node)) {}
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const DType t = in[0].dtype;
    if (t != DType::Int8 && t != DType::Float8E4M3FN) fail(std::string("X is ") + dtype_name(t) + ": int8 or float8e4m3fn expected");
    for (size_t i : {size_t(1), size_t(4)})
      if (in[i].dtype != t) fail(std::string(i == 1 ? "W1" : "W2") + " is " + dtype_name(in[i].dtype) + ", X is " + dtype_name(t));
    const auto& xs = in[0].shape;
    if (xs.empty() || in[1].shape.size() != 2 || in[4].shape.size() != 2 || in[1].shape[1] != xs.back() ||
        in[4].shape != std::vector<int64_t>{xs.back(), in[1].shape[0]})
      fail("X " + dims_text(xs) + ", W1 " + dims_text(in[1].shape) + " and W2 " + dims_text(in[4].shape) +
           " do not form [..., C] x [H, C] x [C, H]");
    const int64_t C = xs.back(), H = in[1].shape[0], M = C ? in[0].numel() / C : 0;
    expect_shape(out[0], xs, "output");
    expect_float(out[0], "output");
    auto vec = [&](size_t i, int64_t n, const char* what) -> const float* {
      if (!present(in, i)) return nullptr;
      if (in[i].dtype != DType::Float32 || in[i].numel() != n) fail(std::string(what) + " must be float32 [" + std::to_string(n) + "]");
      return in[i].as<float>();
    };
    const float* alpha1 = vec(2, H, "alpha1");
    const float* bias1 = vec(3, H, "bias1");
    const float* alpha2 = vec(5, C, "alpha2");
    const float* bias2 = vec(6, C, "bias2");
    if (!alpha1 || !alpha2) fail("alpha1 and alpha2 are required");
    const float* res = nullptr;
    if (present(in, 7)) {
      expect_float(in[7], "residual");
      expect_shape(in[7], xs, "residual");
      res = in[7].as<float>();
    }
    const bool fp8 = t == DType::Float8E4M3FN;
    const float inv = 1.f / attrs_.hidden_scale;
    const uint8_t* x = in[0].as<uint8_t>();
    const uint8_t* w1 = in[1].as<uint8_t>();
    const uint8_t* w2 = in[4].as<uint8_t>();
    float* y = out[0].as<float>();
#pragma omp parallel num_threads(ctx.threads) if (M * C * H > (1 << 20))
    {
      std::vector<uint8_t> hidden(static_cast<size_t>(H));
#pragma omp for
      for (int64_t m = 0; m < M; ++m) {
        for (int64_t h = 0; h < H; ++h) {
          const float z = alpha1[h] * quantized_dot(fp8, x + m * C, w1 + h * C, C) + (bias1 ? bias1[h] : 0.f);
          hidden[h] = requantize(fp8, gelu_tanh(z) * inv);
        }
        for (int64_t n = 0; n < C; ++n) {
          const float z = alpha2[n] * quantized_dot(fp8, hidden.data(), w2 + n * H, H) + (bias2 ? bias2[n] : 0.f);
          y[m * C + n] = z + (res ? res[m * C + n] : 0.f);
        }
      }
    }
  }

 private:
  QuantizedMlpAttrs attrs_;
};
UNIRT_REGISTER_KERNEL(cpu, unirt.QuantizedMlp, QuantizedMlpKernel, "int8 float8e4m3fn float32", "X [..., C], W1 [H, C], W2 [C, H]");

}  // namespace
}  // namespace cpu
}  // namespace unirt
