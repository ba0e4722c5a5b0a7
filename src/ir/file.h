// Reading a whole file the user named: the one place that opens ONNX models, engines, .npy
// inputs and images, so each gets the same checks and messages.
#pragma once
#include <string>

namespace unirt {

// The file's bytes. Throws Error "cannot read <what> '<path>': <reason>" when it is missing, a
// directory, unreadable, or larger than resource_limits().max_tensor_bytes.
std::string read_file(const std::string& path, const std::string& what);

}  // namespace unirt
