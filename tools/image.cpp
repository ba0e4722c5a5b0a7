#include "image.h"
#include "ir/file.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include <fstream>
#include <sstream>

#define STB_IMAGE_IMPLEMENTATION
#define STBI_FAILURE_USERMSG
// The formats a camera or a dataset gives; stb's other decoders (PNM, GIF, PSD, HDR, PIC, TGA)
// stay out, and with them their parsers' reach for damaged files.
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
// A header may claim any size; 16384 per side (768 MiB decoded) is the most an input needs.
#define STBI_MAX_DIMENSIONS (1 << 14)
#include <stb_image.h>

namespace unirt {

HostTensor load_image(const std::string& path, const std::string& name, int size) {
  return decode_image(read_file(path, "image"), path, name, size);
}

namespace {

// Debian's stb_image (2022-09) trusts a JPEG's Huffman table sizes: a DHT table declaring more than
// 256 codes writes past stbi__huffman::size[257] (fixed upstream later). Reject such files before
// stb sees them. Every DHT stb could parse starts at some 0xFF 0xC4 in the file (entropy-coded
// data never holds one: there 0xFF is followed by 0 or a restart marker), so each of them is read
// the way stb reads it: tables while the declared length lasts, even past the segment.
void check_jpeg_huffman_tables(const std::string& b, const std::string& path) {
  auto byte = [&](size_t i) { return i < b.size() ? static_cast<uint8_t>(b[i]) : 0; };
  size_t soi = 0;  // stb reads a JPEG as any number of 0xFF fill bytes, then 0xD8
  while (byte(soi) == 0xFF) ++soi;
  if (soi == 0 || byte(soi) != 0xD8) return;  // not a JPEG
  for (size_t i = 2; i + 1 < b.size(); ++i) {
    if (byte(i) != 0xFF || byte(i + 1) != 0xC4) continue;
    size_t p = i + 4;
    long left = ((static_cast<long>(byte(i + 2)) << 8) | byte(i + 3)) - 2;
    while (left > 0 && p < b.size()) {
      size_t n = 0;
      for (int k = 0; k < 16; ++k) n += byte(p + 1 + k);
      if (n > 256)
        throw Error("cannot decode image '" + path + "': corrupt JPEG (a Huffman table declares " + std::to_string(n) + " codes, at most 256)");
      p += 17 + n;
      left -= static_cast<long>(17 + n);
    }
  }
}

}  // namespace

HostTensor decode_image(const std::string& bytes, const std::string& path, const std::string& name, int size) {
  check_jpeg_huffman_tables(bytes, path);
  int w, h, c;
  if (size < 1 || size > 8192) throw Error("image size " + std::to_string(size) + " is out of range (1..8192)");
  if (bytes.size() > (size_t{1} << 31)) throw Error("image '" + path + "' is larger than 2 GiB");
  std::unique_ptr<unsigned char, void (*)(void*)> owned(
      stbi_load_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()), static_cast<int>(bytes.size()), &w, &h, &c, 3), stbi_image_free);
  const unsigned char* px = owned.get();
  if (!px) throw Error("cannot decode image '" + path + "': " + stbi_failure_reason());
  // stb_image may hand back an empty image (a header declaring 0 rows): nothing to sample.
  if (w < 1 || h < 1) throw Error("cannot decode image '" + path + "': it is " + std::to_string(w) + "x" + std::to_string(h) + " pixels");
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
