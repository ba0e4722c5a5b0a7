// libFuzzer harness (b): engine-file payload bytes -> loader -> plan -> CPU run at one small shape.
// The input is the payload; the harness frames it with a valid checksum, so mutations reach the
// parser and the graph checks instead of stopping at the checksum.
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace unirt;
  try {
    const Engine e = load_engine_bytes(frame_engine_payload(std::string(reinterpret_cast<const char*>(data), size)), "fuzz.engine");
    if (e.options.backend == "cpu") fuzz::run_small(e);
  } catch (const Error&) {
  }
  return 0;
}
