// The part of a pooling window that a pool kernel visits, shared by the CPU and CUDA pools.
#pragma once
#include <cstdint>

#include "backend/host_device.h"

namespace unirt {

// Taps [lo, hi) of one window dimension whose position start + tap * dilation lies in [from, to),
// for a window of `taps` taps whose first position is `start` (output index * stride - pad begin).
// Pools visit only these, so a window much larger than its input (a kernel_shape of 2^40 in a
// hostile file) costs what the input holds, not what the window claims.
struct TapRange {
  int64_t lo, hi;
  UNIRT_HOST_DEVICE int64_t count() const { return hi - lo; }
};
UNIRT_HOST_DEVICE inline TapRange taps_within(int64_t start, int64_t dilation, int64_t taps, int64_t from, int64_t to) {
  int64_t lo = from > start ? (from - start + dilation - 1) / dilation : 0;
  int64_t hi = to > start ? (to - start + dilation - 1) / dilation : 0;
  if (lo > taps) lo = taps;
  if (hi > taps) hi = taps;
  if (hi < lo) hi = lo;
  return {lo, hi};
}

}  // namespace unirt
