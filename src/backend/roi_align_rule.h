// RoiAlign's sampling rule (ONNX, as ONNX Runtime and torchvision compute it), shared by the CPU
// and CUDA kernels: a RoI scaled by spatial_scale (shifted by -0.5 in half_pixel mode, at least
// 1x1 in output_half_pixel mode), each output bin averaging grid_h x grid_w bilinear samples,
// grid = sampling_ratio or ceil(roi size / output size); samples more than one pixel outside the
// map count as 0.
#pragma once
#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define UNIRT_ROI_HD __host__ __device__
#else
#define UNIRT_ROI_HD
#endif

namespace unirt {

struct RoiBins {
  float x0, y0, bin_w, bin_h;
  int64_t grid_w, grid_h;
  float count;  // max(grid_h * grid_w, 1)
};

UNIRT_ROI_HD inline RoiBins roi_bins(const float* roi, float spatial_scale, bool half_pixel, int64_t out_h, int64_t out_w,
                                     int64_t sampling_ratio) {
  const float off = half_pixel ? 0.5f : 0.f;
  const float x0 = roi[0] * spatial_scale - off, y0 = roi[1] * spatial_scale - off;
  const float x1 = roi[2] * spatial_scale - off, y1 = roi[3] * spatial_scale - off;
  float rw = x1 - x0, rh = y1 - y0;
  if (!half_pixel) {
    rw = rw > 1.f ? rw : 1.f;
    rh = rh > 1.f ? rh : 1.f;
  }
  RoiBins b;
  b.x0 = x0;
  b.y0 = y0;
  b.bin_w = rw / static_cast<float>(out_w);
  b.bin_h = rh / static_cast<float>(out_h);
  // A NaN or huge box would make the sample grid unbounded: cap it at the 4096 a map could need.
  const float gw = sampling_ratio > 0 ? static_cast<float>(sampling_ratio) : ceilf(rw / static_cast<float>(out_w));
  const float gh = sampling_ratio > 0 ? static_cast<float>(sampling_ratio) : ceilf(rh / static_cast<float>(out_h));
  b.grid_w = gw >= 1.f ? (gw < 4096.f ? static_cast<int64_t>(gw) : 4096) : 0;
  b.grid_h = gh >= 1.f ? (gh < 4096.f ? static_cast<int64_t>(gh) : 4096) : 0;
  const int64_t c = b.grid_w * b.grid_h;
  b.count = static_cast<float>(c > 1 ? c : 1);
  return b;
}

// Bilinear weights and the four taps for the sample (y, x) of an H x W map; false when the sample
// is outside [-1, H] x [-1, W] (it then adds 0).
struct RoiTaps {
  int64_t y0, y1, x0, x1;
  float w00, w01, w10, w11;
};

UNIRT_ROI_HD inline bool roi_taps(float y, float x, int64_t H, int64_t W, RoiTaps& t) {
  if (!(y >= -1.f && y <= static_cast<float>(H) && x >= -1.f && x <= static_cast<float>(W))) return false;
  y = y <= 0.f ? 0.f : y;
  x = x <= 0.f ? 0.f : x;
  t.y0 = static_cast<int64_t>(y);
  t.x0 = static_cast<int64_t>(x);
  if (t.y0 >= H - 1) {
    t.y0 = t.y1 = H - 1;
    y = static_cast<float>(t.y0);
  } else {
    t.y1 = t.y0 + 1;
  }
  if (t.x0 >= W - 1) {
    t.x0 = t.x1 = W - 1;
    x = static_cast<float>(t.x0);
  } else {
    t.x1 = t.x0 + 1;
  }
  const float ly = y - static_cast<float>(t.y0), lx = x - static_cast<float>(t.x0);
  const float hy = 1.f - ly, hx = 1.f - lx;
  t.w00 = hy * hx;
  t.w01 = hy * lx;
  t.w10 = ly * hx;
  t.w11 = ly * lx;
  return true;
}

// The samples i of a grid of n, at base + (i + 0.5) * step, that can fall inside [-1, len]: a
// conservative range (the sample test still decides), so a RoI far larger than the map costs the
// map's size, not the RoI's.
struct SampleRange {
  int64_t lo, hi;
};
UNIRT_ROI_HD inline SampleRange samples_near_map(float base, float step, int64_t n, int64_t len) {
  if (!(step > 0.f)) return {0, n};
  const float a = (-1.f - base) / step - 0.5f, z = (static_cast<float>(len) - base) / step - 0.5f;
  if (!(a == a) || !(z == z)) return {0, n};
  const float lo = a - 1.f, hi = z + 2.f;
  SampleRange r;
  r.lo = lo <= 0.f ? 0 : (lo >= static_cast<float>(n) ? n : static_cast<int64_t>(lo));
  r.hi = hi <= 0.f ? 0 : (hi >= static_cast<float>(n) ? n : static_cast<int64_t>(hi));
  return r;
}

// The average of one output bin (py, px): load(i) reads element i of the H x W map, as a float
// or as a vector of channels with float-like +, * (by a float weight) and / (by the count).
template <typename Load>
UNIRT_ROI_HD inline auto roi_align_bin(const RoiBins& b, int64_t py, int64_t px, int64_t H, int64_t W, Load load) -> decltype(load(0)) {
  decltype(load(0)) acc{};
  const float step_y = b.bin_h / static_cast<float>(b.grid_h), step_x = b.bin_w / static_cast<float>(b.grid_w);
  const SampleRange ry = samples_near_map(b.y0 + static_cast<float>(py) * b.bin_h, step_y, b.grid_h, H);
  const SampleRange rx = samples_near_map(b.x0 + static_cast<float>(px) * b.bin_w, step_x, b.grid_w, W);
  for (int64_t iy = ry.lo; iy < ry.hi; ++iy) {
    const float sy = b.y0 + static_cast<float>(py) * b.bin_h + (static_cast<float>(iy) + 0.5f) * b.bin_h / static_cast<float>(b.grid_h);
    for (int64_t ix = rx.lo; ix < rx.hi; ++ix) {
      const float sx = b.x0 + static_cast<float>(px) * b.bin_w + (static_cast<float>(ix) + 0.5f) * b.bin_w / static_cast<float>(b.grid_w);
      RoiTaps t;
      if (!roi_taps(sy, sx, H, W, t)) continue;
      acc += t.w00 * load(t.y0 * W + t.x0) + t.w01 * load(t.y0 * W + t.x1) + t.w10 * load(t.y1 * W + t.x0) + t.w11 * load(t.y1 * W + t.x1);
    }
  }
  return acc / b.count;
}

}  // namespace unirt
