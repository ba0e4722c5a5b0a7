#include "npy.h"
#include "ir/file.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

namespace unirt {
namespace {

struct NpyType {
  const char* descr;
  DType dtype;
};
const NpyType kTypes[] = {{"<f4", DType::Float32}, {"<f2", DType::Float16}, {"<f8", DType::Float64}, {"<i8", DType::Int64},
                          {"<i4", DType::Int32},   {"|i1", DType::Int8},    {"|u1", DType::Uint8},   {"|b1", DType::Bool}};

std::string header_field(const std::string& h, const std::string& key, const std::string& path) {
  auto p = h.find("'" + key + "'");
  if (p == std::string::npos) throw Error(path + ": .npy header has no '" + key + "'");
  p = h.find(':', p);
  return h.substr(p + 1);
}

}  // namespace

HostTensor read_npy(const std::string& path, const std::string& name) {
  return parse_npy(read_file(path, ".npy input"), path, name);
}

HostTensor parse_npy(const std::string& b, const std::string& path, const std::string& name) {
  if (b.size() < 10 || b.compare(0, 6, "\x93NUMPY") != 0) throw Error(path + ": not a .npy file");
  const int major = b[6];
  size_t hlen, start;
  if (major == 1) {
    hlen = static_cast<uint8_t>(b[8]) | (static_cast<uint8_t>(b[9]) << 8);
    start = 10;
  } else {
    if (b.size() < 12) throw Error(path + ": truncated .npy header");
    uint32_t l;
    std::memcpy(&l, b.data() + 8, 4);
    hlen = l;
    start = 12;
  }
  if (start + hlen > b.size()) throw Error(path + ": truncated .npy header");
  const std::string h = b.substr(start, hlen);
  HostTensor t;
  t.name = name;
  std::string descr = header_field(h, "descr", path);
  bool known = false;
  for (const auto& k : kTypes)
    if (descr.find(std::string("'") + k.descr + "'") != std::string::npos) t.dtype = k.dtype, known = true;
  if (!known) throw Error(path + ": unsupported .npy dtype " + descr.substr(0, descr.find(',')));
  if (header_field(h, "fortran_order", path).find("True") < 3) throw Error(path + ": Fortran-order arrays are not supported; save with np.ascontiguousarray");
  std::string shape = header_field(h, "shape", path);
  shape = shape.substr(shape.find('(') + 1, shape.find(')') - shape.find('(') - 1);
  std::stringstream sh(shape);
  std::string d;
  while (std::getline(sh, d, ','))
    if (d.find_first_not_of(" \t") != std::string::npos) {
      try {
        size_t used = 0;
        const long long v = std::stoll(d, &used);
        if (v < 0 || d.find_first_not_of(" \tL", used) != std::string::npos) throw std::invalid_argument(d);
        t.shape.push_back(v);
      } catch (const std::exception&) {
        throw Error(path + ": bad .npy shape '(" + shape + ")'");
      }
    }
  const size_t bytes = checked_bytes(t.shape, t.dtype, path);
  if (start + hlen + bytes != b.size())
    throw Error(path + ": .npy holds " + std::to_string(b.size() - start - hlen) + " data bytes, shape needs " + std::to_string(bytes));
  t.bytes.assign(b.begin() + start + hlen, b.end());
  return t;
}

void write_npy(const std::string& path, const HostTensor& t) {
  const char* descr = nullptr;
  for (const auto& k : kTypes)
    if (k.dtype == t.dtype) descr = k.descr;
  if (!descr) throw Error("cannot write " + std::string(dtype_name(t.dtype)) + " to .npy");
  std::string shape = "(";
  for (size_t i = 0; i < t.shape.size(); ++i) shape += std::to_string(t.shape[i]) + (t.shape.size() == 1 ? "," : (i + 1 < t.shape.size() ? ", " : ""));
  shape += ")";
  std::string h = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + h.size() + 1) % 64) h += ' ';
  h += '\n';
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw Error("cannot write '" + path + "'");
  f.write("\x93NUMPY\x01\x00", 8);
  const uint16_t hl = static_cast<uint16_t>(h.size());
  f.write(reinterpret_cast<const char*>(&hl), 2);
  f.write(h.data(), static_cast<std::streamsize>(h.size()));
  f.write(reinterpret_cast<const char*>(t.bytes.data()), static_cast<std::streamsize>(t.bytes.size()));
}

}  // namespace unirt
