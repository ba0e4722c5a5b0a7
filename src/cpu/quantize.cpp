// QuantizeLinear and DequantizeLinear (ONNX opsets 10-21): per-tensor, per-axis and blocked
// scales, int8 and uint8, float32 or float16 on the float side; the arithmetic of
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
  // The scale layout of x, and the zero point's agreement with the scale.
  QuantLayout layout(const TensorView& x, const TensorView& scale, const TensorView* zp) const {
    QuantLayout q;
    const std::string err = quant_node_layout(node_, x.shape, scale.shape, zp ? &zp->shape : nullptr, q);
    if (!err.empty()) fail(err);
    return q;
  }
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
    int32_t lo, hi;
    if (!quant_range(y.dtype, lo, hi)) fail(std::string("output type ") + dtype_name(y.dtype) + ": int8 or uint8 expected");
    if (zp && zp->dtype != y.dtype) fail("zero point type " + std::string(dtype_name(zp->dtype)) + " differs from the output's");
    expect_shape(y, x.shape, "output");
    const QuantLayout q = layout(x, scale, zp);
    const int64_t n = x.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) {
      const int64_t k = quant_scale_index(q, i);
      const int32_t v = quantize_value(load_float(x, i), load_float(scale, k), zp ? load_int(*zp, k) : 0, lo, hi);
      if (y.dtype == DType::Int8) y.as<int8_t>()[i] = static_cast<int8_t>(v);
      else y.as<uint8_t>()[i] = static_cast<uint8_t>(v);
    }
  }
};
UNIRT_REGISTER_KERNEL(cpu, QuantizeLinear, QuantizeLinearKernel, "float32 float16 int8 uint8", "per tensor, per axis or blocked scales");

class DequantizeLinearKernel : public QuantKernelBase {
 public:
  using QuantKernelBase::QuantKernelBase;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    const TensorView &x = in[0], &scale = in[1], &y = out[0];
    const TensorView* zp = in.size() > 2 && in[2].data ? &in[2] : nullptr;
    if (x.dtype != DType::Int8 && x.dtype != DType::Uint8 && x.dtype != DType::Int32) unsupported_type(x, "input");
    expect_scale(scale);
    if (zp && zp->dtype != x.dtype) fail("zero point type " + std::string(dtype_name(zp->dtype)) + " differs from the input's");
    if (y.dtype != DType::Float32 && y.dtype != DType::Float16) unsupported_type(y, "output");
    expect_shape(y, x.shape, "output");
    const QuantLayout q = layout(x, scale, zp);
    const int64_t n = x.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) {
      const int64_t k = quant_scale_index(q, i);
      const float v = dequantize_value(load_int(x, i), zp ? load_int(*zp, k) : 0, load_float(scale, k));
      if (y.dtype == DType::Float16) y.as<uint16_t>()[i] = float_to_half(v);
      else y.as<float>()[i] = v;
    }
  }
};
UNIRT_REGISTER_KERNEL(cpu, DequantizeLinear, DequantizeLinearKernel, "int8 uint8 int32 float32 float16", "per tensor, per axis or blocked scales");

}  // namespace
}  // namespace cpu
}  // namespace unirt
