// Channels-last layout for convolution regions, TensorRT-style: convolutions are wrapped in
// NCHW <-> NHWC transposes (nhwc_wrap_convs.cpp; kernel == stride ConvTransposes as GEMMs,
// nhwc_conv_transposes.cpp), leftover BatchNormalizations become affine maps
// (batchnorm_to_affine.cpp), the transposes sink until they cancel (sink_transposes.cpp), and the
// image's reformat into the first convolution is absorbed (absorb_input_reformats.cpp).
#include "passes/fusions.h"
#include "passes/layout_nhwc.h"
#include "passes/pipeline.h"
#include "passes/shape_inference.h"

namespace unirt {

int convert_to_nhwc(Graph& g) {
  const int convs = wrap_convs_nhwc(g) + conv_transposes_nhwc(g);
  if (convs == 0) return 0;
  batchnorm_to_affine(g);
  eliminate_dead_code(g);
  infer_shapes(g);
  int rewrites = 0;
  for (int round = 0; round < 200; ++round) {
    const int n = sink_transposes(g);
    eliminate_dead_code(g);
    infer_shapes(g);
    rewrites += n;
    if (n == 0) break;
  }
  if (absorb_input_reformats(g)) {
    eliminate_dead_code(g);
    infer_shapes(g);
  }
  return convs;
}

}  // namespace unirt
