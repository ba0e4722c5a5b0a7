// QuantizeLinear and DequantizeLinear (ONNX opsets 10-21): per-tensor, per-axis and blocked
// scales, int8, uint8 and float8 E4M3FN, float32 or float16 on the float side; the arithmetic of
// backend/quantize_rule.h, which the CUDA kernels share.
#include "backend/quantize_rule.h"
#include "cpu/cpu_util.h"
#include "ir/half.h"

namespace unirt {
namespace cpu {
namespace {

float load_float(const TensorView& t, int64_t i) {
  return t.dtype == DType::Float16 ? half_to_float(t.as<uint16_t>()[i]) : t.as<float>()[i];
}

int32_t load_int(const TensorView& t, int64_t i) {
  switch (t.dtype) {
    case DType::Int8: return t.as<int8_t>()[i];
    case DType::Uint8: return t.as<uint8_t>()[i];
    default: return t.as<int32_t>()[i];
  }
}

class QuantKernelBase : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;

 protected:
  void expect_scale(const TensorView& scale) const {
    if (scale.dtype != DType::Float32 && scale.dtype != DType::Float16) fail("scale must be float32 or float16, not " + std::string(dtype_name(scale.dtype)));
  }
};

class QuantizeLinearKernel : public QuantKernelBase {
 public:
  using QuantKernelBase::QuantKernelBase;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    const TensorView &x = in[0], &scale = in[1], &y = out[0];
    const TensorView* zp = in.size() > 2 && in[2].data ? &in[2] : nullptr;
    if (x.dtype != DType::Float32 && x.dtype != DType::Float16) unsupported_type(x, "input");
    expect_scale(scale);
    int32_t lo = 0, hi = 0;
    const bool fp8 = y.dtype == DType::Float8E4M3FN;
    if (!fp8 && !quant_range(y.dtype, lo, hi)) fail(std::string("output type ") + dtype_name(y.dtype) + ": int8, uint8 or float8e4m3fn expected");
    if (zp && zp->dtype != y.dtype) fail("zero point type " + std::string(dtype_name(zp->dtype)) + " differs from the output's");
    expect_shape(y, x.shape, "output");
    const QuantLayout q = checked_quant_layout(node_, x.shape, scale.shape, zp ? &zp->shape : nullptr);
    const int64_t n = x.numel();
    if (fp8) {
      const bool saturate = node_.attr_i("saturate", 1) != 0;
#pragma omp parallel for schedule(static) if (n > 65536)
      for (int64_t i = 0; i < n; ++i) {
        const int64_t k = quant_scale_index(q, i);
        y.as<uint8_t>()[i] = quantize_e4m3fn(load_float(x, i), load_float(scale, k), zp ? zp->as<uint8_t>()[k] : 0, saturate);
      }
      return;
    }
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) {
      const int64_t k = quant_scale_index(q, i);
      const int32_t v = quantize_value(load_float(x, i), load_float(scale, k), zp ? load_int(*zp, k) : 0, lo, hi);
      if (y.dtype == DType::Int8) y.as<int8_t>()[i] = static_cast<int8_t>(v);
      else y.as<uint8_t>()[i] = static_cast<uint8_t>(v);
    }
  }
};
UNIRT_REGISTER_KERNEL(cpu, QuantizeLinear, QuantizeLinearKernel, "float32 float16 int8 uint8 float8e4m3fn", "per tensor, per axis or blocked scales");

class DequantizeLinearKernel : public QuantKernelBase {
 public:
  using QuantKernelBase::QuantKernelBase;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    const TensorView &x = in[0], &scale = in[1], &y = out[0];
    const TensorView* zp = in.size() > 2 && in[2].data ? &in[2] : nullptr;
    const bool fp8 = x.dtype == DType::Float8E4M3FN;
    if (x.dtype != DType::Int8 && x.dtype != DType::Uint8 && x.dtype != DType::Int32 && !fp8) unsupported_type(x, "input");
    expect_scale(scale);
    if (zp && zp->dtype != x.dtype) fail("zero point type " + std::string(dtype_name(zp->dtype)) + " differs from the input's");
    if (y.dtype != DType::Float32 && y.dtype != DType::Float16) unsupported_type(y, "output");
    expect_shape(y, x.shape, "output");
    const QuantLayout q = checked_quant_layout(node_, x.shape, scale.shape, zp ? &zp->shape : nullptr);
    const int64_t n = x.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) {
      const int64_t k = quant_scale_index(q, i);
      const float v = fp8 ? dequantize_e4m3fn(x.as<uint8_t>()[i], zp ? zp->as<uint8_t>()[k] : 0, load_float(scale, k))
                          : dequantize_value(load_int(x, i), zp ? load_int(*zp, k) : 0, load_float(scale, k));
      if (y.dtype == DType::Float16) y.as<uint16_t>()[i] = float_to_half(v);
      else y.as<float>()[i] = v;
    }
  }
};
UNIRT_REGISTER_KERNEL(cpu, DequantizeLinear, DequantizeLinearKernel, "int8 uint8 int32 float8e4m3fn float32 float16", "per tensor, per axis or blocked scales");

}  // namespace
}  // namespace cpu
}  // namespace unirt
