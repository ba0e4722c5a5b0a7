#include "ir/precision.h"

namespace unirt {

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::FP32: return "fp32";
    case Precision::FP16: return "fp16";
    case Precision::INT8: return "int8";
    case Precision::FP8: return "fp8";
  }
  return "?";
}

}  // namespace unirt
