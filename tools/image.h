// Image input for classifiers: decode (stb_image: JPEG, PNG, BMP) and ImageNet preprocessing.
#pragma once
#include <string>

#include "runtime/session.h"

namespace unirt {
// Decode, bilinear-resize the shorter side to size*256/224 (256 for 224), centre-crop size x size,
// normalise with the ImageNet mean/std; returns a [1,3,size,size] float32 tensor named `name`.
HostTensor load_image(const std::string& path, const std::string& name, int size);
// The same from the file's bytes; `path` names it in errors.
HostTensor decode_image(const std::string& bytes, const std::string& path, const std::string& name, int size);
}  // namespace unirt
