// Image input: decode (stb_image: JPEG, PNG, BMP) and, for classifiers, ImageNet preprocessing.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/session.h"

namespace unirt {
// Decoded 8-bit RGB pixels, row-major, 3 bytes per pixel.
struct RgbImage {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;
};
// Decode the file's bytes (JPEG, PNG, BMP) after the hostile-input checks; `path` names it in
// errors.
RgbImage decode_rgb(const std::string& bytes, const std::string& path);

// Decode, bilinear-resize the shorter side to size*256/224 (256 for 224), centre-crop size x size,
// normalise with the ImageNet mean/std; returns a [1,3,size,size] float32 tensor named `name`.
HostTensor load_image(const std::string& path, const std::string& name, int size);
// The same from the file's bytes; `path` names it in errors.
HostTensor decode_image(const std::string& bytes, const std::string& path, const std::string& name, int size);
}  // namespace unirt
