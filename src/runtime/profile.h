// Shape profile and symbols: ranges for the algebra, corners for the build-time check.
#pragma once
#include <map>
#include <string>

#include "runtime/engine.h"

namespace unirt {

struct SymbolProfile {
  int64_t lo = kDefaultDimMin, hi = kDefaultDimMax, opt = -1;
  bool from_profile = false;  // hi came from --max-shapes (corners are planned only then)
  std::string where;          // "'input' dimension 0", for messages
};

// Per symbol of the graph inputs: its range from the profile (intersected over the inputs that
// share it). Throws Error when the profile contradicts the model or itself.
std::map<std::string, SymbolProfile> symbol_profiles(const Graph& g, const ShapeProfile& prof);
// Gives every graph-input symbol its profile range (a pinned one becomes that constant). Shape
// inference then simplifies with the ranges.
void bind_profile_ranges(Graph& g, const ShapeProfile& prof);
// Plans every corner (each symbol at min/opt/max, all combinations) of a fully given profile;
// throws Error naming the failing check, the corner and a profile that works. Returns the
// number of plans made (0 without a full profile).
int check_profile_corners(const Engine& e);

}  // namespace unirt
