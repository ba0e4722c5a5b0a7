// Resize's coordinate rule, shared by the CPU and CUDA kernels so both pick the same source
// pixels: ONNX's coordinate_transformation_mode, then nearest_mode rounding or linear weights,
// clamped into the input as ONNX Runtime does.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>

#include "ir/graph.h"

#ifdef __CUDACC__
#define UNIRT_RESIZE_HD __host__ __device__
#else
#define UNIRT_RESIZE_HD
#endif

namespace unirt {

// Output index o of an axis reads in[i0] * (1 - w1) + in[i1] * w1.
struct ResizeTap {
  int64_t i0, i1;
  float w1;
};

struct ResizeRule {
  enum class Coord { HalfPixel, PytorchHalfPixel, AlignCorners, Asymmetric } coord = Coord::HalfPixel;
  enum class Nearest { RoundPreferFloor, RoundPreferCeil, Floor, Ceil } nearest = Nearest::RoundPreferFloor;
  bool linear = false;

  static ResizeRule from_node(const Node& n) {
    ResizeRule r;
    r.linear = n.attr_s("mode", "nearest") == "linear";
    const std::string c = n.attr_s("coordinate_transformation_mode", "half_pixel");
    r.coord = c == "asymmetric" ? Coord::Asymmetric : c == "align_corners" ? Coord::AlignCorners
              : c == "pytorch_half_pixel" ? Coord::PytorchHalfPixel : Coord::HalfPixel;
    const std::string m = n.attr_s("nearest_mode", "round_prefer_floor");
    r.nearest = m == "floor" ? Nearest::Floor : m == "ceil" ? Nearest::Ceil
                : m == "round_prefer_ceil" ? Nearest::RoundPreferCeil : Nearest::RoundPreferFloor;
    return r;
  }

  UNIRT_RESIZE_HD float source(int64_t o, int64_t in_len, int64_t out_len, float scale) const {
    switch (coord) {
      case Coord::Asymmetric: return static_cast<float>(o) / scale;
      case Coord::AlignCorners:
        return out_len == 1 ? 0.f : static_cast<float>(o) * static_cast<float>(in_len - 1) / static_cast<float>(out_len - 1);
      case Coord::PytorchHalfPixel:
        return out_len > 1 ? (static_cast<float>(o) + 0.5f) / scale - 0.5f : 0.f;
      default: return (static_cast<float>(o) + 0.5f) / scale - 0.5f;
    }
  }

  UNIRT_RESIZE_HD ResizeTap tap(int64_t o, int64_t in_len, int64_t out_len, float scale) const {
    const float x = source(o, in_len, out_len, scale);
    const float hi = static_cast<float>(in_len - 1);
    if (linear) {
      const float c = x < 0.f ? 0.f : (x > hi ? hi : x);
      const int64_t i0 = static_cast<int64_t>(floorf(c));
      const int64_t i1 = i0 + 1 < in_len ? i0 + 1 : in_len - 1;
      return {i0, i1, i1 == i0 ? 0.f : c - static_cast<float>(i0)};
    }
    float r;
    switch (nearest) {
      case Nearest::Floor: r = floorf(x); break;
      case Nearest::Ceil: r = ceilf(x); break;
      case Nearest::RoundPreferCeil: r = (x == floorf(x) + 0.5f) ? ceilf(x) : roundf(x); break;
      default: r = (x == floorf(x) + 0.5f) ? floorf(x) : roundf(x); break;
    }
    int64_t i = static_cast<int64_t>(r);
    i = i < 0 ? 0 : (i > in_len - 1 ? in_len - 1 : i);
    return {i, i, 0.f};
  }
};

}  // namespace unirt
