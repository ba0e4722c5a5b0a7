// The pass pipeline an engine build runs, and what each pass reports.
#pragma once
#include <string>
#include <vector>

#include "ir/graph.h"
#include "runtime/kernel.h"

namespace unirt {

struct PassReport {
  std::string pass;
  int changes = 0;
  double ms = 0;
  std::vector<std::string> details;
};

struct PipelineOptions {
  Precision precision = Precision::FP32;
  std::string backend = "cpu";
  bool fuse = true;
  // Channels-last convolution regions (convert_to_nhwc); the CUDA backend's default.
  bool nhwc = false;
};

// infer_shapes -> fold_constants -> eliminate_dead_code -> fusions -> eliminate_dead_code ->
// infer_shapes -> compact. Throws Error naming the node on any failure.
std::vector<PassReport> run_passes(Graph& g, const PipelineOptions& o);

// Evaluates nodes whose inputs are all constant with the CPU kernels, and turns values whose
// shape value is fully known into constants. Returns the number of nodes folded.
int fold_constants(Graph& g);
// FP16: float32 activations and weights become float16, with Casts at the graph boundary.
int assign_precision(Graph& g, Precision p);
// Removes nodes that no graph output depends on and rewires Identity/Dropout. Returns removed count.
int eliminate_dead_code(Graph& g);

}  // namespace unirt
