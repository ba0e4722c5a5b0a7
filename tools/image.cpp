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
// Zeroed allocations: Debian's stb_image mallocs its JPEG decoder state and uses Huffman tables a
// scan names even when no DHT defined them, reading their uninitialised deltas as indices (16777549
// into 256 symbols, found by fuzzing). Zeroed, an undefined table decodes nothing out of bounds.
#define STBI_MALLOC(size) std::calloc(1, size)
#define STBI_REALLOC(p, size) std::realloc(p, size)
#define STBI_FREE(p) std::free(p)
#include <cstdlib>
#include <stb_image.h>

namespace unirt {

HostTensor load_image(const std::string& path, const std::string& name, int size) {
  return decode_image(read_file(path, "image"), path, name, size);
}

namespace {

// Debian's stb_image (2022-09) trusts a JPEG's Huffman tables: a DHT table declaring more than
// 256 codes writes past stbi__huffman::size[257], and code lengths that overflow the code space
// make the decoder read past its symbol table (both fixed upstream later). Reject such files before
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
      // The code lengths must fit a prefix code (Kraft): more codes of a length than it has left
      // make stb's decoder index its 256 symbols with whatever the bits say (878 in one file).
      uint32_t code = 0;
      for (int len = 1; len <= 16; ++len) {
        code += byte(p + len);
        if (code > (1u << len))
          throw Error("cannot decode image '" + path + "': corrupt JPEG (a Huffman table's code lengths overflow at length " +
                      std::to_string(len) + ")");
        code <<= 1;
      }
      p += 17 + n;
      left -= static_cast<long>(17 + n);
    }
  }
}

// Decoded pixels at most: 16384 x 8192 (384 MiB as RGB). A header can claim 16384 x 16384 in a
// few bytes, and decoding it would allocate and fill that much before anything else could refuse.
constexpr int64_t kMaxImagePixels = int64_t{1} << 27;

uint32_t le32(const std::string& b, size_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(b[at + i]);
  return v;
}
uint16_t le16(const std::string& b, size_t at) { return static_cast<uint16_t>(static_cast<uint8_t>(b[at]) | (static_cast<uint8_t>(b[at + 1]) << 8)); }

// An uncompressed BMP must hold every row it declares: stb_image would read past the end as zeros
// (a 54-byte file claiming 14080 x 14080 pixels decodes for seconds into 595 MB of black).
void check_bmp_holds_its_pixels(const std::string& b, const std::string& path) {
  if (b.size() < 30 || b[0] != 'B' || b[1] != 'M') return;  // not a BMP: stb decides
  const uint32_t offset = le32(b, 10), header = le32(b, 14);
  int64_t w, h, bpp, compression = 0;
  if (header == 12) {
    w = le16(b, 18), h = le16(b, 20), bpp = le16(b, 24);
  } else if (header >= 40 && b.size() >= 34) {
    w = static_cast<int32_t>(le32(b, 18)), h = static_cast<int32_t>(le32(b, 22)), bpp = le16(b, 28), compression = le32(b, 30);
  } else {
    return;
  }
  // RLE data may be shorter than its rows (stb refuses RLE anyway); stb decodes every other value,
  // unknown ones included, as rows of pixels.
  if (compression == 1 || compression == 2) return;
  const int64_t rows = h < 0 ? -h : h, stride = (std::max<int64_t>(w, 0) * bpp + 31) / 32 * 4;
  if (w <= 0 || rows == 0 || w > (1 << 14) || rows > (1 << 14)) return;  // stb refuses these itself
  const int64_t need = static_cast<int64_t>(offset) + rows * stride;
  if (static_cast<int64_t>(b.size()) < need)
    throw Error("cannot decode image '" + path + "': a " + std::to_string(w) + "x" + std::to_string(rows) + " BMP needs " +
                std::to_string(need) + " bytes, the file has " + std::to_string(b.size()) + " (truncated)");
}

}  // namespace

RgbImage decode_rgb(const std::string& bytes, const std::string& path) {
  check_jpeg_huffman_tables(bytes, path);
  int w, h, c;
  if (bytes.size() > (size_t{1} << 31)) throw Error("image '" + path + "' is larger than 2 GiB");
  check_bmp_holds_its_pixels(bytes, path);
  int iw = 0, ih = 0, ic = 0;
  if (stbi_info_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()), static_cast<int>(bytes.size()), &iw, &ih, &ic) &&
      static_cast<int64_t>(iw) * ih > kMaxImagePixels)
    throw Error("image '" + path + "' is " + std::to_string(iw) + "x" + std::to_string(ih) + " pixels, above the limit of " +
                std::to_string(kMaxImagePixels) + " pixels");
  std::unique_ptr<unsigned char, void (*)(void*)> owned(
      stbi_load_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()), static_cast<int>(bytes.size()), &w, &h, &c, 3), stbi_image_free);
  if (!owned) throw Error("cannot decode image '" + path + "': " + stbi_failure_reason());
  // stb_image may hand back an empty image (a header declaring 0 rows): nothing to sample.
  if (w < 1 || h < 1) throw Error("cannot decode image '" + path + "': it is " + std::to_string(w) + "x" + std::to_string(h) + " pixels");
  RgbImage img;
  img.width = w;
  img.height = h;
  img.pixels.assign(owned.get(), owned.get() + static_cast<size_t>(w) * h * 3);
  return img;
}

HostTensor decode_image(const std::string& bytes, const std::string& path, const std::string& name, int size) {
  if (size < 1 || size > 8192) throw Error("image size " + std::to_string(size) + " is out of range (1..8192)");
  const RgbImage img = decode_rgb(bytes, path);
  const int w = img.width, h = img.height;
  const unsigned char* px = img.pixels.data();
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
