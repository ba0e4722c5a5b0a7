// The detector's host side: mmdetection's test-time preprocessing (keep-ratio resize, normalise,
// pad), turning dets/labels/masks outputs back into detections on the original image (boxes
// rescaled, masks pasted at full resolution as mmdetection's _do_paste_mask does), COCO RLE
// encoding, and drawing.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "image.h"
#include "runtime/session.h"

namespace unirt {

// mmdetection's Resize(img_scale=(1333, 800), keep_ratio=True) of one image.
struct DetImageMeta {
  int ori_w = 0, ori_h = 0;  // decoded image
  int new_w = 0, new_h = 0;  // resized, before padding
  float w_scale = 1, h_scale = 1;
};
DetImageMeta detection_resize(int w, int h, int long_edge = 1333, int short_edge = 800);

struct DetPreprocessOptions {
  int long_edge = 1333, short_edge = 800, size_divisor = 32;
  float mean[3] = {123.675f, 116.28f, 103.53f};  // RGB, on 0..255 pixels
  float std[3] = {58.395f, 57.12f, 57.375f};
};

// Bilinear resize (half-pixel centres, no antialiasing, as cv2's INTER_LINEAR), rounded back to
// 8 bits, normalised, padded at the bottom/right with zeros to a multiple of size_divisor, and
// batched (every image padded to the largest). Returns [N, 3, H, W] float32 named `name`.
HostTensor preprocess_detection(const std::vector<RgbImage>& images, const std::string& name, const DetPreprocessOptions& o,
                                std::vector<DetImageMeta>* metas);

// A binary mask of an image_w x image_h image, stored as the rectangle that can be nonzero (a
// pasted mask touches only its box and a pixel around it): w x h bytes, 0/1, at (x0, y0). Full
// masks would be a megabyte each at 1333x800, most of it zeros.
struct RegionMask {
  int image_w = 0, image_h = 0, x0 = 0, y0 = 0, w = 0, h = 0;
  std::vector<uint8_t> bits;
  bool empty() const { return image_w == 0 || image_h == 0; }  // no mask (the engine has none)
  uint8_t at(int x, int y) const {
    return x >= x0 && x < x0 + w && y >= y0 && y < y0 + h ? bits[static_cast<size_t>(y - y0) * w + (x - x0)] : 0;
  }
  size_t area() const;
};

struct Detection {
  float x0, y0, x1, y1, score;  // original-image pixels
  int label;
  RegionMask mask;  // empty when the engine has no masks
};

// dets [N, K, 5], labels [N, K], masks [N, K, mh, mw] (optional), num_dets [N] in input-tensor
// pixels -> per image its detections with score >= score_thr, boxes clipped to the resized image
// and divided by its scale, masks pasted and thresholded at mask_thr (>=). A detection whose box
// holds NaN has no place on the image: it is left out and counted in *not_finite.
std::vector<std::vector<Detection>> decode_detections(const std::vector<HostTensor>& outputs, const std::vector<std::string>& names,
                                                      const std::vector<DetImageMeta>& metas, float score_thr, float mask_thr,
                                                      int64_t* not_finite = nullptr);

// One 28x28 (mh x mw) probability mask of a box (x0, y0, x1, y1) pasted into an img_h x img_w
// image: bilinear, zero outside the mask, sampled at pixel centres (torch grid_sample,
// align_corners=False), thresholded with >= thr.
RegionMask paste_mask(const float* mask, int mh, int mw, float x0, float y0, float x1, float y1, int img_w, int img_h, float thr);

// COCO's compressed RLE of a binary mask over its whole image (column-major runs, pycocotools'
// string form); the zeros outside the stored region cost nothing.
std::string coco_rle(const RegionMask& mask);

// Boxes, "label score" captions and translucent masks drawn onto `img` (in place).
void draw_detections(RgbImage& img, const std::vector<Detection>& dets, const std::vector<std::string>& class_names);
void write_png(const RgbImage& img, const std::string& path);

}  // namespace unirt
