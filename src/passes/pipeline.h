// The pass pipeline an engine build runs, and what each pass reports.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "passes/quantize_layers.h"
#include "ir/precision.h"

namespace unirt {

struct PassReport {
  std::string pass;
  int changes = 0;
  double ms = 0;
  std::vector<std::string> details;
};

// Computes node n's outputs from its constant inputs while building. `outputs` arrive with dtype,
// shape and bytes sized from the graph (dtype Undefined for an omitted optional output); returns false when it cannot (no kernel for the op), and
// the node is then left to run time. The runtime supplies one backed by the CPU kernels, so the
// passes need no backend.
using ConstantEvaluator = std::function<bool(const Graph& g, const Node& n, const std::vector<const TensorData*>& inputs,
                                             std::vector<TensorData>& outputs)>;

struct PipelineOptions {
  Precision precision = Precision::FP32;
  // Folds nodes whose inputs are all constant; without one only shape values are folded.
  ConstantEvaluator evaluate;
  bool fuse = true;
  // Channels-last convolution regions (convert_to_nhwc); the CUDA backend's default.
  bool nhwc = false;
  // INT8 / FP8 placement (quantize_layers), after the BatchNorm folds.
  QuantizationOptions quantization;
  // Fold the BatchNorms even without fusions: calibration sees the tensors a quantized build
  // quantizes.
  bool fold_batchnorm = false;
  // Lower the quantized layers to 8-bit kernels (lower_quantized_layers): FP16 CUDA engines.
  bool quantized_kernels = false;
};

// infer_shapes -> fold_constants -> eliminate_dead_code -> fusions -> eliminate_dead_code ->
// infer_shapes -> compact. Throws Error naming the node on any failure.
std::vector<PassReport> run_passes(Graph& g, const PipelineOptions& o);

// Evaluates nodes whose inputs are all constant with `evaluate` (when given), and turns values
// whose shape value is fully known into constants. Returns the number of nodes folded.
int fold_constants(Graph& g, const ConstantEvaluator& evaluate = {});
// FP16: float32 activations and weights become float16, with Casts at the graph boundary.
int assign_precision(Graph& g, Precision p);
// Removes nodes that no graph output depends on and rewires Identity/Dropout. Returns removed count.
int eliminate_dead_code(Graph& g);
// Nodes with the same op, attributes and inputs merge into one (eliminate_common_subexpressions.cpp).
int eliminate_common_subexpressions(Graph& g);

}  // namespace unirt
