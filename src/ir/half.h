// IEEE 754 binary16 <-> binary32 on the host, the one converter every stage uses (FP16 weights
// in assign_precision, the CPU Cast kernel, .npy output, TensorData::to_float).
#pragma once
#include <cstdint>

namespace unirt {

// Round to nearest even; a value past 65504 that rounds up becomes infinity; NaN becomes the quiet
// NaN 0x7e00 with its sign; subnormal halves are produced exactly. Independent of the FP rounding mode.
uint16_t float_to_half(float f);
// Exact (every half is a float): subnormals renormalised, infinities kept, NaN payloads kept.
float half_to_float(uint16_t h);

}  // namespace unirt
