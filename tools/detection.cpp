#include "detection.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>
#include <stb_easy_font.h>

namespace unirt {

DetImageMeta detection_resize(int w, int h, int long_edge, int short_edge) {
  // mmcv.rescale_size: the largest scale that fits both edges, sizes rounded half up.
  const double max_long = std::max(long_edge, short_edge), max_short = std::min(long_edge, short_edge);
  const double scale = std::min(max_long / std::max(w, h), max_short / std::min(w, h));
  DetImageMeta m;
  m.ori_w = w;
  m.ori_h = h;
  m.new_w = std::max(1, static_cast<int>(w * scale + 0.5));
  m.new_h = std::max(1, static_cast<int>(h * scale + 0.5));
  m.w_scale = static_cast<float>(m.new_w) / static_cast<float>(w);
  m.h_scale = static_cast<float>(m.new_h) / static_cast<float>(h);
  return m;
}

namespace {

// Source index pair and weight of output coordinate o for a resize from `in` to `out` samples.
struct Tap {
  int i0, i1;
  float f;
};
std::vector<Tap> bilinear_taps(int in, int out) {
  std::vector<Tap> t(out);
  const double scale = static_cast<double>(in) / out;
  for (int o = 0; o < out; ++o) {
    double s = (o + 0.5) * scale - 0.5;
    s = std::clamp(s, 0.0, static_cast<double>(in - 1));
    const int i0 = static_cast<int>(s);
    t[o] = {i0, std::min(i0 + 1, in - 1), static_cast<float>(s - i0)};
  }
  return t;
}

}  // namespace

HostTensor preprocess_detection(const std::vector<RgbImage>& images, const std::string& name, const DetPreprocessOptions& o,
                                std::vector<DetImageMeta>* metas) {
  if (images.empty()) throw Error("detection needs at least one image");
  if (o.size_divisor < 1) throw Error("size divisor must be positive");
  std::vector<DetImageMeta> ms;
  int H = 0, W = 0;
  for (const RgbImage& img : images) {
    ms.push_back(detection_resize(img.width, img.height, o.long_edge, o.short_edge));
    H = std::max(H, ms.back().new_h);
    W = std::max(W, ms.back().new_w);
  }
  H = (H + o.size_divisor - 1) / o.size_divisor * o.size_divisor;
  W = (W + o.size_divisor - 1) / o.size_divisor * o.size_divisor;
  const int64_t N = static_cast<int64_t>(images.size());
  HostTensor t(name, DType::Float32, {N, 3, H, W}, std::vector<uint8_t>(static_cast<size_t>(N * 3 * H * W) * 4, 0));
  float* out = t.as<float>();
  for (int64_t n = 0; n < N; ++n) {
    const RgbImage& img = images[n];
    const DetImageMeta& m = ms[n];
    const auto tx = bilinear_taps(img.width, m.new_w), ty = bilinear_taps(img.height, m.new_h);
    // Rows are independent: one per thread.
#pragma omp parallel for schedule(static)
    for (int y = 0; y < m.new_h; ++y) {
      const Tap a = ty[y];
      const uint8_t* r0 = img.pixels.data() + static_cast<size_t>(a.i0) * img.width * 3;
      const uint8_t* r1 = img.pixels.data() + static_cast<size_t>(a.i1) * img.width * 3;
      for (int x = 0; x < m.new_w; ++x) {
        const Tap b = tx[x];
        for (int c = 0; c < 3; ++c) {
          const float top = r0[b.i0 * 3 + c] * (1 - b.f) + r0[b.i1 * 3 + c] * b.f;
          const float bot = r1[b.i0 * 3 + c] * (1 - b.f) + r1[b.i1 * 3 + c] * b.f;
          const float v = std::floor(top * (1 - a.f) + bot * a.f + 0.5f);  // back to 8 bits, as the resize writes uint8
          out[((n * 3 + c) * H + y) * W + x] = (v - o.mean[c]) / o.std[c];
        }
      }
    }
  }
  if (metas) *metas = std::move(ms);
  return t;
}

size_t RegionMask::area() const {
  size_t a = 0;
  for (uint8_t v : bits) a += v;
  return a;
}

RegionMask paste_mask(const float* mask, int mh, int mw, float x0, float y0, float x1, float y1, int img_w, int img_h, float thr) {
  // Only pixels near the box can see the mask (mmdetection's skip_empty region).
  const int px0 = std::max(0, static_cast<int>(std::floor(x0)) - 1), py0 = std::max(0, static_cast<int>(std::floor(y0)) - 1);
  const int px1 = std::min(img_w, static_cast<int>(std::ceil(x1)) + 1), py1 = std::min(img_h, static_cast<int>(std::ceil(y1)) + 1);
  RegionMask out;
  out.image_w = img_w, out.image_h = img_h, out.x0 = px0, out.y0 = py0;
  out.w = std::max(0, px1 - px0), out.h = std::max(0, py1 - py0);
  out.bits.assign(static_cast<size_t>(out.w) * out.h, 0);
  auto unit = [](float p, float lo, float hi) {  // pixel centre -> [-1, 1] across the box; inf -> 0 as mmdetection does
    const float g = (p + 0.5f - lo) / (hi - lo) * 2.f - 1.f;
    return std::isfinite(g) ? g : 0.f;
  };
  // Bilinear taps: index clamped into the mask, weight 0 for a tap outside it (it reads as 0, as
  // grid_sample's zero padding does). The column taps are the same on every row: computed once.
  struct Taps {
    int i0, i1;
    float w0, w1;
  };
  auto taps = [](float pos, int n) {
    const int i = static_cast<int>(std::floor(pos));
    const float w = pos - i;
    Taps t{std::clamp(i, 0, n - 1), std::clamp(i + 1, 0, n - 1), i >= 0 && i < n ? 1 - w : 0.f, i + 1 >= 0 && i + 1 < n ? w : 0.f};
    return t;
  };
  const int cols = std::max(0, px1 - px0);
  std::vector<Taps> xt(static_cast<size_t>(cols));
  for (int c = 0; c < cols; ++c) xt[c] = taps(((unit(static_cast<float>(px0 + c), x0, x1) + 1.f) * mw - 1.f) / 2.f, mw);
  for (int y = py0; y < py1; ++y) {
    const Taps yt = taps(((unit(static_cast<float>(y), y0, y1) + 1.f) * mh - 1.f) / 2.f, mh);
    const float* r0 = mask + yt.i0 * mw;
    const float* r1 = mask + yt.i1 * mw;
    uint8_t* row = out.bits.data() + static_cast<size_t>(y - py0) * out.w;
    for (int c = 0; c < cols; ++c) {
      const Taps& t = xt[c];
      // The same products, in the same order, as the four-tap sum with explicit zeros.
      const float v = r0[t.i0] * t.w0 * yt.w0 + r0[t.i1] * t.w1 * yt.w0 + r1[t.i0] * t.w0 * yt.w1 + r1[t.i1] * t.w1 * yt.w1;
      if (v >= thr) row[c] = 1;
    }
  }
  return out;
}

std::vector<std::vector<Detection>> decode_detections(const std::vector<HostTensor>& outputs, const std::vector<std::string>& names,
                                                      const std::vector<DetImageMeta>& metas, float score_thr, float mask_thr,
                                                      int64_t* not_finite) {
  auto find = [&](const char* n, bool required) -> const HostTensor* {
    for (size_t i = 0; i < names.size(); ++i)
      if (names[i] == n) return &outputs.at(i);
    if (required) throw Error(std::string("the engine has no output '") + n + "': detect needs dets [N, K, 5], labels [N, K], num_dets [N] (and masks [N, K, h, w])");
    return nullptr;
  };
  const HostTensor *dets = find("dets", true), *labels = find("labels", true), *num = find("num_dets", true), *masks = find("masks", false);
  const int64_t N = static_cast<int64_t>(metas.size());
  if (dets->dtype != DType::Float32 || dets->shape.size() != 3 || dets->shape[0] != N || dets->shape[2] != 5)
    throw Error("output 'dets' is " + std::string(dtype_name(dets->dtype)) + " " + dims_text(dets->shape) + ", expected float32 [" +
                std::to_string(N) + ", K, 5]");
  const int64_t K = dets->shape[1];
  if (labels->dtype != DType::Int64 || labels->shape != std::vector<int64_t>{N, K})
    throw Error("output 'labels' is " + std::string(dtype_name(labels->dtype)) + " " + dims_text(labels->shape) + ", expected int64 [" +
                std::to_string(N) + ", " + std::to_string(K) + "]");
  if (num->dtype != DType::Int64 || num->shape != std::vector<int64_t>{N})
    throw Error("output 'num_dets' is " + std::string(dtype_name(num->dtype)) + " " + dims_text(num->shape) + ", expected int64 [" +
                std::to_string(N) + "]");
  int64_t mh = 0, mw = 0;
  if (masks) {
    if (masks->dtype != DType::Float32 || masks->shape.size() != 4 || masks->shape[0] != N || masks->shape[1] != K)
      throw Error("output 'masks' is " + std::string(dtype_name(masks->dtype)) + " " + dims_text(masks->shape) + ", expected float32 [" +
                  std::to_string(N) + ", " + std::to_string(K) + ", h, w]");
    mh = masks->shape[2];
    mw = masks->shape[3];
  }
  std::vector<std::vector<Detection>> all(static_cast<size_t>(N));
  std::vector<std::vector<int64_t>> source(static_cast<size_t>(N));  // each detection's row k in the outputs
  for (int64_t n = 0; n < N; ++n) {
    const DetImageMeta& m = metas[n];
    const int64_t count = num->as<int64_t>()[n];
    if (count < 0 || count > K) throw Error("num_dets[" + std::to_string(n) + "] = " + std::to_string(count) + " is outside 0.." + std::to_string(K));
    for (int64_t k = 0; k < count; ++k) {
      const float* d = dets->as<float>() + (n * K + k) * 5;
      if (!(d[4] >= score_thr)) continue;
      if (std::isnan(d[0]) || std::isnan(d[1]) || std::isnan(d[2]) || std::isnan(d[3])) {
        if (not_finite) ++*not_finite;
        continue;
      }
      Detection det;
      // Clipped to the resized image (mmdetection clips to it, not to the padding), then rescaled.
      det.x0 = std::clamp(d[0], 0.f, static_cast<float>(m.new_w)) / m.w_scale;
      det.y0 = std::clamp(d[1], 0.f, static_cast<float>(m.new_h)) / m.h_scale;
      det.x1 = std::clamp(d[2], 0.f, static_cast<float>(m.new_w)) / m.w_scale;
      det.y1 = std::clamp(d[3], 0.f, static_cast<float>(m.new_h)) / m.h_scale;
      det.score = d[4];
      det.label = static_cast<int>(labels->as<int64_t>()[n * K + k]);
      all[n].push_back(std::move(det));
      source[n].push_back(k);
    }
  }
  if (!masks) return all;
  // Full-resolution masks (their nonzero region), one detection per thread.
  std::vector<std::pair<int64_t, size_t>> jobs;  // (image, detection)
  for (int64_t n = 0; n < N; ++n)
    for (size_t i = 0; i < all[n].size(); ++i) jobs.emplace_back(n, i);
#pragma omp parallel for schedule(dynamic, 4)
  for (int64_t j = 0; j < static_cast<int64_t>(jobs.size()); ++j) {
    const int64_t n = jobs[j].first;
    Detection& det = all[n][jobs[j].second];
    const DetImageMeta& m = metas[n];
    det.mask = paste_mask(masks->as<float>() + (n * K + source[n][jobs[j].second]) * mh * mw, static_cast<int>(mh), static_cast<int>(mw),
                          det.x0, det.y0, det.x1, det.y1, m.ori_w, m.ori_h, mask_thr);
  }
  return all;
}

std::string coco_rle(const RegionMask& mask) {
  // Runs over the column-major pixels, the first one of zeros (possibly empty); a column outside
  // the stored region, and the rows above and below it, are one stretch of zeros each.
  std::vector<int64_t> counts;
  uint8_t cur = 0;
  int64_t run = 0;
  auto push = [&](uint8_t v, int64_t n) {
    if (n <= 0) return;
    if (v != cur) {
      counts.push_back(run);
      run = 0;
      cur = v;
    }
    run += n;
  };
  const int h = mask.image_h, w = mask.image_w;
  for (int x = 0; x < w; ++x) {
    if (x < mask.x0 || x >= mask.x0 + mask.w || mask.h == 0) {
      push(0, h);
      continue;
    }
    push(0, mask.y0);
    for (int y = 0; y < mask.h; ++y) push(mask.bits[static_cast<size_t>(y) * mask.w + (x - mask.x0)] ? 1 : 0, 1);
    push(0, h - mask.y0 - mask.h);
  }
  counts.push_back(run);
  // pycocotools' rleToString: each count (minus the one two back, from the third on) in 5-bit
  // groups, low first, 0x20 marking "more", offset by 48 into printable characters.
  std::string s;
  for (size_t i = 0; i < counts.size(); ++i) {
    int64_t x = counts[i];
    if (i > 2) x -= counts[i - 2];
    bool more = true;
    while (more) {
      int64_t c = x & 0x1f;
      x >>= 5;  // arithmetic: negative deltas end at -1
      more = (c & 0x10) ? x != -1 : x != 0;
      if (more) c |= 0x20;
      s.push_back(static_cast<char>(c + 48));
    }
  }
  return s;
}

namespace {

void fill_rect(RgbImage& img, int x0, int y0, int x1, int y1, const uint8_t rgb[3], float alpha) {
  x0 = std::max(x0, 0), y0 = std::max(y0, 0), x1 = std::min(x1, img.width), y1 = std::min(y1, img.height);
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x)
      for (int c = 0; c < 3; ++c) {
        uint8_t& p = img.pixels[(static_cast<size_t>(y) * img.width + x) * 3 + c];
        p = static_cast<uint8_t>(std::lround(p * (1 - alpha) + rgb[c] * alpha));
      }
}

// A colour per detection index: well apart in hue, the same on every run.
void colour_of(int i, uint8_t rgb[3]) {
  const float h = std::fmod(i * 0.618034f, 1.f) * 6.f, s = 0.75f, v = 0.95f;
  const int k = static_cast<int>(h);
  const float f = h - k, p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  float r, g, b;
  switch (k % 6) {
    case 0: r = v, g = t, b = p; break;
    case 1: r = q, g = v, b = p; break;
    case 2: r = p, g = v, b = t; break;
    case 3: r = p, g = q, b = v; break;
    case 4: r = t, g = p, b = v; break;
    default: r = v, g = p, b = q; break;
  }
  rgb[0] = static_cast<uint8_t>(r * 255), rgb[1] = static_cast<uint8_t>(g * 255), rgb[2] = static_cast<uint8_t>(b * 255);
}

// stb_easy_font's quads (axis-aligned) scaled by `px`, at (x, y).
void draw_text(RgbImage& img, int x, int y, const std::string& text, int px) {
  std::vector<char> buf(text.size() * 300 + 64);
  const int quads = stb_easy_font_print(0, 0, const_cast<char*>(text.c_str()), nullptr, buf.data(), static_cast<int>(buf.size()));
  const uint8_t white[3] = {255, 255, 255};
  for (int q = 0; q < quads; ++q) {
    const float* v = reinterpret_cast<const float*>(buf.data() + q * 64);  // 4 vertices of x, y, z, colour
    const float qx0 = v[0], qy0 = v[1], qx1 = v[8], qy1 = v[9];
    fill_rect(img, x + static_cast<int>(qx0 * px), y + static_cast<int>(qy0 * px), x + static_cast<int>(qx1 * px),
              y + static_cast<int>(qy1 * px), white, 1.f);
  }
}

}  // namespace

void draw_detections(RgbImage& img, const std::vector<Detection>& dets, const std::vector<std::string>& class_names) {
  const int px = std::max(1, std::min(img.width, img.height) / 400);
  for (size_t i = 0; i < dets.size(); ++i) {
    uint8_t rgb[3];
    colour_of(static_cast<int>(i), rgb);
    const Detection& d = dets[i];
    if (d.mask.empty()) continue;
    const RegionMask& m = d.mask;
    for (int y = std::max(0, m.y0); y < std::min(img.height, m.y0 + m.h); ++y)
      for (int x = std::max(0, m.x0); x < std::min(img.width, m.x0 + m.w); ++x)
        if (m.at(x, y)) fill_rect(img, x, y, x + 1, y + 1, rgb, 0.45f);
  }
  for (size_t i = 0; i < dets.size(); ++i) {
    uint8_t rgb[3];
    colour_of(static_cast<int>(i), rgb);
    const Detection& d = dets[i];
    const int x0 = static_cast<int>(d.x0), y0 = static_cast<int>(d.y0), x1 = static_cast<int>(d.x1), y1 = static_cast<int>(d.y1);
    const int t = std::max(1, px);
    fill_rect(img, x0, y0, x1, y0 + t, rgb, 1.f);
    fill_rect(img, x0, y1 - t, x1, y1, rgb, 1.f);
    fill_rect(img, x0, y0, x0 + t, y1, rgb, 1.f);
    fill_rect(img, x1 - t, y0, x1, y1, rgb, 1.f);
    char score[16];
    std::snprintf(score, sizeof(score), " %.2f", d.score);
    const std::string label = (d.label >= 0 && d.label < static_cast<int>(class_names.size()) ? class_names[d.label] : std::to_string(d.label)) + score;
    const int tw = stb_easy_font_width(const_cast<char*>(label.c_str())) * px + 2 * px, th = 10 * px;
    const int ty = y0 - th >= 0 ? y0 - th : y0;
    fill_rect(img, x0, ty, x0 + tw, ty + th, rgb, 0.85f);
    draw_text(img, x0 + px, ty + px, label, px);
  }
}

void write_png(const RgbImage& img, const std::string& path) {
  if (!stbi_write_png(path.c_str(), img.width, img.height, 3, img.pixels.data(), img.width * 3))
    throw Error("cannot write '" + path + "'");
}

}  // namespace unirt
