// ONNX NonMaxSuppression's rule for one pair of boxes, shared by the CPU and CUDA kernels so that
// both suppress exactly the same boxes (float32 arithmetic in the same order).
#pragma once

#include "backend/host_device.h"

namespace unirt {

struct NmsBox {
  float x0, y0, x1, y1;  // x0 <= x1, y0 <= y1
};

UNIRT_HOST_DEVICE inline float nms_min(float a, float b) { return a < b ? a : b; }
UNIRT_HOST_DEVICE inline float nms_max(float a, float b) { return a < b ? b : a; }

// A box as stored: [y1, x1, y2, x2] with either diagonal (center_point_box 0) or
// [x_center, y_center, width, height] (center_point_box 1).
UNIRT_HOST_DEVICE inline NmsBox nms_box(const float* b, bool center) {
  if (center) {
    const float hw = b[2] / 2, hh = b[3] / 2;
    return {b[0] - hw, b[1] - hh, b[0] + hw, b[1] + hh};
  }
  return {nms_min(b[1], b[3]), nms_min(b[0], b[2]), nms_max(b[1], b[3]), nms_max(b[0], b[2])};
}

// True when the lower-scored box b is suppressed by the selected box a: IoU > threshold. Boxes
// without area never suppress (nor are suppressed).
UNIRT_HOST_DEVICE inline bool nms_suppresses(const NmsBox& a, const NmsBox& b, float iou_threshold) {
  const float ix0 = nms_max(a.x0, b.x0), ix1 = nms_min(a.x1, b.x1);
  if (ix1 <= ix0) return false;
  const float iy0 = nms_max(a.y0, b.y0), iy1 = nms_min(a.y1, b.y1);
  if (iy1 <= iy0) return false;
  const float inter = (ix1 - ix0) * (iy1 - iy0);
  if (inter <= 0) return false;
  const float area_a = (a.x1 - a.x0) * (a.y1 - a.y0), area_b = (b.x1 - b.x0) * (b.y1 - b.y0);
  const float uni = area_a + area_b - inter;
  if (area_a <= 0 || area_b <= 0 || uni <= 0) return false;
  return inter / uni > iou_threshold;
}

}  // namespace unirt
