// fuse_quantized_mlp: unirt.QuantizedLinear(X, W1, alpha1, bias1; GELU, 8-bit output) ->
// unirt.QuantizedLinear(H, W2, alpha2, bias2, R) becomes one unirt.QuantizedMlp when the hidden
// codes H feed only the second layer.
//
// Where it fires: UniFormer's CBlock MLPs in INT8/FP8 engines (64 -> 256 -> 64 and 128 -> 512 ->
// 128 channels, C and H multiples of 32 up to kMaxQuantizedMlpChannels / kMaxQuantizedMlpHidden).
// As two GEMMs these are memory-bound on the 4C-wide hidden codes (stage 1 at batch 128: 103 MB
// written by fc1 and read back by fc2); the fused CUDA kernel keeps them on chip
// (src/cuda/quantized_mlp.cu), and its prepare() still times the pair where that is faster (few
// rows). Runs after assign_precision, so the layers' output and residual types are settled.
#include "ir/fused_attrs.h"
#include "passes/fusions.h"
#include "passes/match_util.h"

namespace unirt {

int fuse_quantized_mlp(Graph& g) {
  int fired = 0;
  auto cons = g.consumers();
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& fc1 = g.nodes[i];
    if (fc1.op_type != "unirt.QuantizedLinear" || fc1.outputs.size() != 1 || fc1.has_input(4)) continue;
    const QuantizedLinearAttrs a1 = QuantizedLinearAttrs::of(fc1);
    if (!a1.gelu || !(a1.out_scale > 0.f)) continue;
    const int j = sole_consumer(g, cons, fc1.outputs[0]);
    if (j < 0) continue;
    const Node& fc2 = g.nodes[j];
    if (fc2.op_type != "unirt.QuantizedLinear" || fc2.outputs.size() != 1 || fc2.inputs[0] != fc1.outputs[0]) continue;
    const QuantizedLinearAttrs a2 = QuantizedLinearAttrs::of(fc2);
    if (a2.gelu || a2.out_scale > 0.f || a2.q_scale > 0.f) continue;
    const DType t = g.value(fc1.inputs[0]).dtype;
    if (g.value(fc2.inputs[0]).dtype != t) continue;
    int64_t hidden, c, cout, hidden2;
    if (!const_shape2(g, fc1.inputs[1], &hidden, &c) || !const_shape2(g, fc2.inputs[1], &cout, &hidden2)) continue;
    if (hidden != hidden2 || c != cout || c % 32 || hidden % 32 || c > kMaxQuantizedMlpChannels || hidden > kMaxQuantizedMlpHidden) continue;
    Node mlp;
    mlp.name = fc1.name;
    mlp.op_type = "unirt.QuantizedMlp";
    mlp.domain = fc1.domain;
    mlp.inputs = {fc1.inputs[0], fc1.inputs[1], fc1.inputs[2], fc1.has_input(3) ? fc1.inputs[3] : -1,
                  fc2.inputs[1], fc2.inputs[2], fc2.has_input(3) ? fc2.inputs[3] : -1, fc2.has_input(4) ? fc2.inputs[4] : -1};
    while (mlp.inputs.back() < 0) mlp.inputs.pop_back();
    mlp.outputs = fc2.outputs;
    mlp.attrs["hidden_scale"] = a1.out_scale;
    mlp.attrs["output_dtype"] = static_cast<int64_t>(a2.output_dtype);
    mlp.notes = fc1.notes;
    mlp.notes.insert(mlp.notes.end(), fc2.notes.begin(), fc2.notes.end());
    mlp.notes.push_back("8-bit MLP '" + fc1.name + "' -> '" + fc2.name + "' in one kernel: the " + std::to_string(hidden) + "-wide hidden " +
                        dtype_name(t) + " codes stay on chip");
    g.nodes[i].op_type.clear();
    g.nodes[j].op_type.clear();
    g.add_node(std::move(mlp));
    ++fired;
  }
  if (fired) g.relink();
  return fired;
}

}  // namespace unirt
