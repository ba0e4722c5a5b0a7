// unirt.BoxDecode's arithmetic for one box, shared by the CPU and CUDA kernels: the operations of
// the unfused graph (passes/fuse_box_decode.cpp) in their order, each rounded to float32, so both
// backends and the unfused graph give the same bits. Clip and Min as the elementwise kernels do
// them (a NaN passes through Clip and wins a Min).
#pragma once

#include <cfloat>
#include <cmath>
#include <string>
#include <vector>

#include "backend/host_device.h"

namespace unirt {

struct BoxDecodeParams {
  float stds[4];
  float max_ratio;
};

// No fused multiply-add: the unfused graph rounds every product and sum.
#ifdef __CUDA_ARCH__
__device__ inline float bd_mul(float a, float b) { return __fmul_rn(a, b); }
__device__ inline float bd_add(float a, float b) { return __fadd_rn(a, b); }
__device__ inline float bd_sub(float a, float b) { return __fsub_rn(a, b); }
__device__ inline float bd_exp(float a) { return expf(a); }
#else
inline float bd_mul(float a, float b) { return a * b; }
inline float bd_add(float a, float b) { return a + b; }
inline float bd_sub(float a, float b) { return a - b; }
inline float bd_exp(float a) { return std::exp(a); }
#endif

UNIRT_HOST_DEVICE inline float bd_clip(float x, float lo, float hi) {
  const float v = x < lo ? lo : x;
  return v > hi ? hi : v;
}
UNIRT_HOST_DEVICE inline float bd_min(float a, float b) { return a < b || a != a ? a : b; }

// Which rois box a deltas box reads when rois broadcast (a dimension of 1 repeats): the box
// dimensions (all but the last 4) of deltas and, per dimension, the rois stride or 0.
constexpr int kBoxDecodeMaxRank = 8;
struct BoxBroadcast {
  int rank = 0;
  long long dims[kBoxDecodeMaxRank] = {};
  long long rois_stride[kBoxDecodeMaxRank] = {};
};
UNIRT_HOST_DEVICE inline long long rois_box(const BoxBroadcast& b, long long box) {
  long long r = 0;
  for (int i = b.rank - 1; i >= 0; --i) {
    r += (box % b.dims[i]) * b.rois_stride[i];
    box /= b.dims[i];
  }
  return r;
}

// The broadcast of rois [..., 4] to deltas [..., 4] (same rank, each rois dimension equal or 1).
inline std::string box_broadcast(const std::vector<int64_t>& rs, const std::vector<int64_t>& ds, BoxBroadcast* bb) {
  auto text = [](const std::vector<int64_t>& s) {
    std::string t = "[";
    for (size_t i = 0; i < s.size(); ++i) t += (i ? "," : "") + std::to_string(s[i]);
    return t + "]";
  };
  if (ds.empty() || ds.back() != 4 || rs.size() != ds.size() || rs.back() != 4 || ds.size() - 1 > kBoxDecodeMaxRank)
    return "rois " + text(rs) + " and deltas " + text(ds) + " must be [..., 4] of one rank (at most " + std::to_string(kBoxDecodeMaxRank + 1) + ")";
  bb->rank = static_cast<int>(ds.size()) - 1;
  long long stride = 1;
  for (int i = bb->rank - 1; i >= 0; --i) {
    if (rs[i] != ds[i] && rs[i] != 1) return "rois " + text(rs) + " do not broadcast to deltas " + text(ds);
    bb->dims[i] = ds[i];
    bb->rois_stride[i] = rs[i] == 1 ? 0 : stride;
    stride *= rs[i];
  }
  return "";
}

// What both kernels check before a launch: the rois/deltas broadcast, the bound's size
// (bound_numel -1: no bound) and the node's attributes, taken as the kernels use them. Empty when
// all hold, else what is wrong.
inline std::string box_decode_setup(const std::vector<int64_t>& rois, const std::vector<int64_t>& deltas, int64_t bound_numel,
                                    const std::vector<float>& stds, float max_ratio, BoxBroadcast* bb, BoxDecodeParams* p) {
  const std::string why = box_broadcast(rois, deltas, bb);
  if (!why.empty()) return why;
  if (bound_numel >= 0 && bound_numel != 2) return "bound must hold (max x, max y), has " + std::to_string(bound_numel) + " values";
  if (stds.size() != 4) return "stds must hold 4 values";
  for (int k = 0; k < 4; ++k) p->stds[k] = stds[k];
  if (!(max_ratio > 0.f)) return "max_ratio must be positive";
  p->max_ratio = max_ratio;
  return "";
}

// r: (x0, y0, x1, y1); d: (dx, dy, dw, dh); bound: (max x, max y) or null; out: (x0, y0, x1, y1).
UNIRT_HOST_DEVICE inline void decode_box(const float* r, const float* d, const BoxDecodeParams& p, const float* bound, float* out) {
  for (int k = 0; k < 2; ++k) {
    const float dxy = bd_mul(d[k], p.stds[k]);
    const float dwh = bd_clip(bd_mul(d[k + 2], p.stds[k + 2]), -p.max_ratio, p.max_ratio);
    const float centre = bd_mul(bd_add(r[k], r[k + 2]), 0.5f);
    const float size = bd_sub(r[k + 2], r[k]);
    const float xy = bd_add(centre, bd_mul(size, dxy));
    const float half = bd_mul(bd_mul(size, bd_exp(dwh)), 0.5f);
    // A Clip without a max clips at the largest float (as both Clip kernels do): +inf becomes FLT_MAX.
    float lo = bd_clip(bd_sub(xy, half), 0.f, FLT_MAX);
    float hi = bd_clip(bd_add(xy, half), 0.f, FLT_MAX);
    if (bound) lo = bd_min(lo, bound[k]), hi = bd_min(hi, bound[k]);
    out[k] = lo;
    out[k + 2] = hi;
  }
}

}  // namespace unirt
