// .npy read/write (C order, little endian) for the CLI's inputs and outputs.
#pragma once
#include <string>

#include "runtime/session.h"

namespace unirt {
HostTensor read_npy(const std::string& path, const std::string& name);
void write_npy(const std::string& path, const HostTensor& t);
// ImageNet-style preprocessing: decode, resize shorter side to size*256/224, centre crop, normalise, NCHW.
HostTensor load_image(const std::string& path, const std::string& name, int size);
}  // namespace unirt
