// .npy read/write (C order, little endian) for the CLI's inputs and outputs: float32, float16,
// float64, int64, int32, int8, uint8 and bool; Fortran order and other types are errors.
#pragma once
#include <string>

#include "runtime/session.h"

namespace unirt {
HostTensor read_npy(const std::string& path, const std::string& name);
// The same from the file's bytes; `path` names it in errors.
HostTensor parse_npy(const std::string& bytes, const std::string& path, const std::string& name);
void write_npy(const std::string& path, const HostTensor& t);
}  // namespace unirt
