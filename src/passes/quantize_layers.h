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
};

// Quantizes the graph's MatMul / Gemm / Conv layers as QuantizationOptions says; returns how many.
// Throws Error for an override that names no layer or an unknown precision.
int quantize_layers(Graph& g, const QuantizationOptions& q);

}  // namespace unirt
