// Helpers the pattern-matching passes share.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace unirt {

// The only consumer of `value`, or -1 when it has none or several (or is a graph output).
int sole_consumer(const Graph& g, const std::vector<std::vector<int>>& consumers, int value);
// Adds the fused node `f` in place of the nodes a matcher has cleared (op_type empty): relinks the
// graph and refreshes `consumers` for the next match.
void add_fused_node(Graph& g, Node f, std::vector<std::vector<int>>& consumers);
// The [rows, cols] of `value` when it is a constant matrix (a weight); false otherwise.
bool const_shape2(const Graph& g, int value, int64_t* rows, int64_t* cols);
// True when `value` is a constant float scalar (any rank with one element) equal to `x` within tol.
bool is_scalar_const(const Graph& g, int value, float x, float tol = 1e-4f);

// An inference BatchNormalization as the affine map y = x * scale[c] + shift[c], with
// scale = gamma / sqrt(var + eps) and shift = beta - mean * scale.
struct BatchNormAffine {
  std::vector<float> scale, shift;
};
// The affine map of `bn` when it is in inference mode with constant float32 parameters of one
// length; nullopt otherwise (the fold passes then leave it alone).
std::optional<BatchNormAffine> batchnorm_affine(const Graph& g, const Node& bn);
// Gives `conv` new constant weight and bias (named after the conv and `tag`), notes why, and
// removes the BatchNormalization `bn` that was folded into them; the caller rewires the data edge.
void take_folded_batchnorm(Graph& g, Node& conv, Node& bn, TensorData weight, const std::vector<float>& bias, const std::string& tag,
                           const std::string& note);

}  // namespace unirt
