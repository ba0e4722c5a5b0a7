// Element types, numbered as in onnx.proto's TensorProto.DataType so the importer and the
// engine file can store the ONNX code directly.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace unirt {

enum class DType : int32_t {
  Undefined = 0,
  Float32 = 1,
  Uint8 = 2,
  Int8 = 3,
  Int32 = 6,
  Int64 = 7,
  Bool = 9,
  Float16 = 10,
  Float64 = 11,
  Float8E4M3FN = 17,  // FP8 E4M3 (backend/float8_rule.h)
};

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float32: return 4;
    case DType::Uint8: return 1;
    case DType::Int8: return 1;
    case DType::Int32: return 4;
    case DType::Int64: return 8;
    case DType::Bool: return 1;
    case DType::Float16: return 2;
    case DType::Float64: return 8;
    case DType::Float8E4M3FN: return 1;
    default: return 0;
  }
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Uint8: return "uint8";
    case DType::Int8: return "int8";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::Bool: return "bool";
    case DType::Float16: return "float16";
    case DType::Float64: return "float64";
    case DType::Float8E4M3FN: return "float8e4m3fn";
    default: return "undefined";
  }
}

// True for the ONNX codes unirt can hold in a tensor.
// Is the element of type t at p nonzero, as NonZero counts it? -0.0 is zero and NaN is not (a C++
// comparison with 0); integers and bool by any set bit.
inline bool element_nonzero(DType t, const void* p) {
  const auto* b = static_cast<const uint8_t*>(p);
  switch (t) {
    case DType::Float32: { float v; std::memcpy(&v, b, 4); return v != 0.0f; }
    case DType::Float64: { double v; std::memcpy(&v, b, 8); return v != 0.0; }
    case DType::Float16: { uint16_t v; std::memcpy(&v, b, 2); return (v & 0x7fff) != 0; }
    case DType::Float8E4M3FN: return (b[0] & 0x7f) != 0;
    default:
      for (size_t k = 0; k < dtype_size(t); ++k)
        if (b[k]) return true;
      return false;
  }
}

inline bool dtype_supported(int32_t code) {
  switch (static_cast<DType>(code)) {
    case DType::Float32: case DType::Uint8: case DType::Int8: case DType::Int32:
    case DType::Int64: case DType::Bool: case DType::Float16: case DType::Float64: case DType::Float8E4M3FN:
      return true;
    default:
      return false;
  }
}

}  // namespace unirt
