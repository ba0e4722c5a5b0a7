// INT8 / FP8 precision placement from a calibration cache (quantize_layers.cpp).
#pragma once
#include <map>
#include <string>

#include "ir/graph.h"

namespace unirt {

enum class QuantMode { None, Int8, Fp8 };
const char* quant_mode_name(QuantMode m);

struct QuantizationOptions {
  QuantMode mode = QuantMode::None;
  std::map<std::string, float> amax;                    // activation ranges by tensor name
  std::map<std::string, std::string> layer_precision;   // layer name -> fp16 | fp32 (left out) | int8 | fp8 (taken in)
  // Only the layers an 8-bit kernel runs (lower_quantized_layers): MatMul / Gemm by a constant
  // 2-D weight and 1x1 stride-1 unpadded one-group Convs. A layer without such a kernel would
  // pay a quantize and a dequantize pass around its float16 kernel, for no speed: it stays
  // float16, as TensorRT treats INT8 as permission rather than obligation. CUDA FP16 engines.
  bool kernel_layers_only = false;
};

// Quantizes the graph's MatMul / Gemm / Conv layers as QuantizationOptions says; returns how many.
// Throws Error for an override that names no layer or an unknown precision.
int quantize_layers(Graph& g, const QuantizationOptions& q);

}  // namespace unirt
