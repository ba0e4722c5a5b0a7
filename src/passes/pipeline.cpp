#include "passes/pipeline.h"

#include <chrono>

#include "passes/fusions.h"
#include "passes/shape_inference.h"

namespace unirt {

std::vector<PassReport> run_passes(Graph& g, const PipelineOptions& o) {
  std::vector<PassReport> reports;
  auto run = [&](const char* name, const std::function<int()>& fn) {
    auto t0 = std::chrono::steady_clock::now();
    PassReport r;
    r.pass = name;
    r.changes = fn();
    r.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    reports.push_back(r);
  };
  run("infer_shapes", [&] { infer_shapes(g); return 0; });
  run("fold_constants", [&] { return fold_constants(g, o.evaluate); });
  run("eliminate_dead_code", [&] { return eliminate_dead_code(g); });
  run("eliminate_common_subexpressions", [&] { return eliminate_common_subexpressions(g); });
  if (o.fuse || o.fold_batchnorm || o.quantization.mode != QuantMode::None) {
    run("fold_bn_after_conv", [&] { return fold_bn_after_conv(g); });
    run("fold_bn_before_conv", [&] { return fold_bn_before_conv(g); });
  }
  if (o.fold_batchnorm || o.quantization.mode != QuantMode::None)  // the folded BatchNorms leave dead nodes
    run("eliminate_dead_code", [&] { return eliminate_dead_code(g); });
  if (o.quantization.mode != QuantMode::None) {
    run("quantize_layers", [&] { return quantize_layers(g, o.quantization); });
    run("infer_shapes", [&] { infer_shapes(g); return 0; });  // the Q/DQ outputs: the fusions below match on shapes
  }
  if (o.fuse) {
    run("fuse_gelu", [&] { return fuse_gelu(g); });
    run("fuse_attention", [&] { return fuse_attention(g); });
    run("fuse_multilevel_roi_align", [&] { return fuse_multilevel_roi_align(g); });
    run("fuse_box_decode", [&] { return fuse_box_decode(g); });
    run("fuse_multilevel_topk", [&] { return fuse_multilevel_topk(g); });
    if (o.nhwc) run("convert_to_nhwc", [&] { return convert_to_nhwc(g); });
    run("fuse_linear", [&] { return fuse_linear(g); });
    run("infer_shapes", [&] { infer_shapes(g); return 0; });
    run("fuse_residual", [&] { return fuse_residual(g); });
    run("fuse_linear_gelu", [&] { return fuse_linear_gelu(g); });
    if (o.quantized_kernels) run("lower_quantized_layers", [&] { return lower_quantized_layers(g); });
    run("eliminate_dead_code", [&] { return eliminate_dead_code(g); });
  }
  run("infer_shapes", [&] { infer_shapes(g); return 0; });
  if (o.precision == Precision::FP16) {
    run("assign_precision", [&] { return assign_precision(g, o.precision); });
    // After precision assignment: the fused MLP kernel is a float16 tensor-core kernel.
    if (o.fuse) {
      run("fuse_mlp", [&] { return fuse_mlp(g); });
      if (o.quantized_kernels) run("fuse_quantized_mlp", [&] { return fuse_quantized_mlp(g); });
      run("eliminate_dead_code", [&] { return eliminate_dead_code(g); });
    }
  }
  return reports;
}

}  // namespace unirt
