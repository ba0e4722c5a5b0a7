#include "image.h"

#include <algorithm>
#include <cmath>
#include <memory>

#define STB_IMAGE_IMPLEMENTATION
#define STBI_FAILURE_USERMSG
#include <stb_image.h>

namespace unirt {

HostTensor load_image(const std::string& path, const std::string& name, int size) {
  int w, h, c;
  if (size < 1 || size > 8192) throw Error("image size " + std::to_string(size) + " is out of range (1..8192)");
  std::unique_ptr<unsigned char, void (*)(void*)> owned(stbi_load(path.c_str(), &w, &h, &c, 3), stbi_image_free);
  const unsigned char* px = owned.get();
  if (!px) throw Error("cannot decode image '" + path + "': " + stbi_failure_reason());
  const int short_side = size * 256 / 224;
  const double scale = static_cast<double>(short_side) / std::min(w, h);
  const int rw = std::max(size, static_cast<int>(std::lround(w * scale))), rh = std::max(size, static_cast<int>(std::lround(h * scale)));
  const int x0 = (rw - size) / 2, y0 = (rh - size) / 2;
  const float mean[3] = {0.485f, 0.456f, 0.406f}, stdv[3] = {0.229f, 0.224f, 0.225f};
  HostTensor t;
  t.name = name;
  t.shape = {1, 3, size, size};
  t.bytes.resize(3 * size * size * 4);
  float* out = t.as<float>();
  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size; ++x) {
      // Bilinear sample of the resized image at the crop position.
      const double sx = std::clamp((x + x0 + 0.5) / scale - 0.5, 0.0, w - 1.0), sy = std::clamp((y + y0 + 0.5) / scale - 0.5, 0.0, h - 1.0);
      const int ix = static_cast<int>(sx), iy = static_cast<int>(sy);
      const int ix1 = std::min(ix + 1, w - 1), iy1 = std::min(iy + 1, h - 1);
      const double fx = sx - ix, fy = sy - iy;
      for (int ch = 0; ch < 3; ++ch) {
        auto p = [&](int xx, int yy) { return px[(yy * w + xx) * 3 + ch] / 255.0; };
        const double v = (1 - fy) * ((1 - fx) * p(ix, iy) + fx * p(ix1, iy)) + fy * ((1 - fx) * p(ix, iy1) + fx * p(ix1, iy1));
        out[(ch * size + y) * size + x] = static_cast<float>((v - mean[ch]) / stdv[ch]);
      }
    }
  return t;
}

}  // namespace unirt
