// libFuzzer harness (c): the CLI's readers of user files: .npy (first byte even) and images
// (stb_image: JPEG, PNG, BMP, GIF, ... ; first byte odd), then the parse of a shape string.
#include "image.h"
#include "npy.h"
#include "runtime/engine.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace unirt;
  if (size == 0) return 0;
  const std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    if (data[0] % 2 == 0) parse_npy(bytes, "fuzz.npy", "x");
    else decode_image(bytes, "fuzz.img", "x", 16);
  } catch (const Error&) {
  }
  try {
    parse_shapes(bytes.substr(0, 256));
  } catch (const Error&) {
  }
  return 0;
}
