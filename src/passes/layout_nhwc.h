// The steps of convert_to_nhwc (convert_to_nhwc.cpp runs them in order), and the permutation
// helpers they share.
#pragma once
#include <string>
#include <vector>

#include "ir/graph.h"

namespace unirt {

using Perm = std::vector<int64_t>;

Perm invert(const Perm& p);
// Transpose(Transpose(a, p), q) == Transpose(a, compose(p, q)).
Perm compose(const Perm& p, const Perm& q);
bool is_identity(const Perm& p);
// out.shape[i] = in.shape[perm[i]], any element type.
TensorData transpose_data(const TensorData& t, const Perm& perm);
// Adds Transpose(input, perm) writing `output` (a new value named after `base` when -1); returns it.
int add_transpose(Graph& g, int input, const Perm& perm, int output, const std::string& base);

// Step 1: every 4-D Conv with constant weights becomes
//   Transpose(NCHW -> NHWC) -> unirt.ConvNHWC, or unirt.Linear for a 1x1, -> Transpose(NHWC -> NCHW).
int wrap_convs_nhwc(Graph& g);
// Step 1b: ConvTranspose with kernel == stride -> channels-last unirt.Linear + depth-to-space,
// between the same transposes (nhwc_conv_transposes.cpp).
int conv_transposes_nhwc(Graph& g);
// Step 2: the BatchNormalizations left over as Mul/Add by [C, 1, 1] constants, which sink like any
// element-wise op.
int batchnorm_to_affine(Graph& g);
// Step 3: one sweep moving transposes towards the outputs (sink_transposes.cpp); 0 when settled.
int sink_transposes(Graph& g);
// Step 4: a one-group ConvNHWC reading the NCHW -> NHWC reformat of a tensor nothing else needs in
// channels-last gathers from NCHW itself.
int absorb_input_reformats(Graph& g);

}  // namespace unirt
