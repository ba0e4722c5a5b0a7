#include <gtest/gtest.h>

#include <set>
#include <sstream>

#include "backend/kernel.h"

using namespace unirt;

// Every registration states the types it covers (what `unirt ops` prints), in dtype names.
TEST(KernelRegistry, EveryKernelDeclaresItsTypes) {
  const std::set<std::string> names = {"any", "float32", "float16", "float64", "int64", "int32", "int8", "uint8", "bool", "float8e4m3fn"};
  for (const char* backend : {"cpu", "cuda"}) {
    const KernelRegistry& r = KernelRegistry::get(backend);
    for (const std::string& op : r.ops()) {
      const KernelInfo* k = r.info(op);
      ASSERT_NE(k, nullptr) << backend << " " << op;
      EXPECT_FALSE(k->types.empty()) << backend << " " << op << " declares no types";
      std::istringstream words(k->types);
      for (std::string w; words >> w;) EXPECT_TRUE(names.count(w)) << backend << " " << op << ": '" << w << "' is not a type name";
      EXPECT_TRUE(k->types == "any" || k->types.find("any") == std::string::npos) << backend << " " << op;
    }
  }
  EXPECT_GE(KernelRegistry::get("cpu").ops().size(), 70u);
}
