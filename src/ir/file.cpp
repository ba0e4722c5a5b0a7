#include "ir/file.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ir/graph.h"

namespace unirt {

std::string read_file(const std::string& path, const std::string& what) {
  namespace fs = std::filesystem;
  auto refuse = [&](const std::string& why) -> Error { return Error("cannot read " + what + " '" + path + "': " + why); };
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) throw refuse("no such file");
  if (fs::is_directory(st)) throw refuse("it is a directory");
  if (fs::is_regular_file(st)) {
    const auto size = fs::file_size(path, ec);
    if (!ec && size > static_cast<uintmax_t>(resource_limits().max_tensor_bytes))
      throw refuse(std::to_string(size) + " bytes, above the limit of " + std::to_string(resource_limits().max_tensor_bytes) +
                   " (--max-tensor-bytes)");
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) throw refuse(std::strerror(errno));
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) throw refuse("read error");
  return ss.str();
}

}  // namespace unirt
