// The numeric precision an engine is built for: chosen at build time, stored in the engine, read by
// the passes (which ops change type) and by kernels (which math they use).
#pragma once
#include <cstdint>

namespace unirt {

enum class Precision : int32_t { FP32 = 0, FP16 = 1, INT8 = 2, FP8 = 3 };
const char* precision_name(Precision p);

}  // namespace unirt
