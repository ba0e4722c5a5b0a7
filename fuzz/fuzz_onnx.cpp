// libFuzzer harness (a): ONNX bytes -> importer -> shape inference -> passes -> plan -> CPU run at
// one small shape.
#include "fuzz_common.h"
#include "onnx/importer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace unirt;
  try {
    Graph g = import_onnx_bytes(std::string(reinterpret_cast<const char*>(data), size), "fuzz.onnx");
    BuildOptions o;
    const Engine e = build_engine(std::move(g), o);
    fuzz::run_small(e);
  } catch (const Error&) {
  }
  return 0;
}
