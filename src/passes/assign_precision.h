// Precision assignment (FP16 engines). Declared in passes/pipeline.h too; this header adds the
// conversion helper that tests and weight converters share.
#pragma once
#include <cstdint>

#include "ir/graph.h"
#include "ir/precision.h"

namespace unirt {

// FP16: float32 activations become float16, float32 graph inputs/outputs stay float32 behind Casts,
// float32 constants read by float16 ops become float16 (normalisation parameters stay float32);
// box coordinates, scores and their arithmetic before NMS and RoIAlign stay float32.
// Returns the number of changes. No-op for other precisions.
int assign_precision(Graph& g, Precision p);

}  // namespace unirt
