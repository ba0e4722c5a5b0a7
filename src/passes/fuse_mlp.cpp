// fuse_mlp: unirt.Linear(X, W1, b1, activation gelu) -> unirt.Linear(H, W2, b2, R) becomes one
// unirt.Mlp(X, W1, b1, W2, b2, R) when the hidden activation H feeds only the second layer.
//
// Where it fires: float16 graphs (the pipeline runs it after assign_precision) whose MLP maps C
// channels back to C, C a multiple of 32 up to kMaxMlpChannels, through a hidden width in
// multiples of kMlpHiddenChunk:
// UniFormer's CBlock MLPs (64 -> 256 -> 64 and 128 -> 512 -> 128 channels). There the two GEMMs
// are memory-bound (K = 64 or 128), and the 4x-wide hidden activation is most of their traffic;
// the fused CUDA kernel keeps it on chip (src/cuda/mlp.cu). Wider MLPs (the SABlocks' 320 and 512
// channels) keep two GEMMs: their output tile would not fit in registers, and they are
// compute-bound anyway. float32 engines keep two GEMMs at full FP32 precision.
#include "passes/fusions.h"
#include "passes/match_util.h"
#include "passes/shape_inference.h"

namespace unirt {

int fuse_mlp(Graph& g) {
  int fired = 0;
  auto cons = g.consumers();
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& fc1 = g.nodes[i];
    if (fc1.op_type != "unirt.Linear" || fc1.attr_s("activation", "") != "gelu" || fc1.has_input(3)) continue;
    const int j = sole_consumer(g, cons, fc1.outputs[0]);
    if (j < 0) continue;
    const Node& fc2 = g.nodes[j];
    if (fc2.op_type != "unirt.Linear" || fc2.has_attr("activation") || fc2.inputs[0] != fc1.outputs[0]) continue;
    if (g.value(fc1.inputs[0]).dtype != DType::Float16) continue;
    int64_t c, hidden, hidden2, cout;
    if (!const_shape2(g, fc1.inputs[1], &c, &hidden) || !const_shape2(g, fc2.inputs[1], &hidden2, &cout)) continue;
    if (hidden != hidden2 || c != cout || c > kMaxMlpChannels || c % 32 != 0 || hidden % kMlpHiddenChunk != 0)
      continue;
    Node mlp;
    mlp.name = fc1.name;
    mlp.op_type = "unirt.Mlp";
    mlp.inputs = {fc1.inputs[0], fc1.inputs[1], fc1.has_input(2) ? fc1.inputs[2] : -1,
                  fc2.inputs[1], fc2.has_input(2) ? fc2.inputs[2] : -1, fc2.has_input(3) ? fc2.inputs[3] : -1};
    mlp.outputs = fc2.outputs;
    mlp.attrs["activation"] = std::string("gelu");
    mlp.notes = fc1.notes;
    mlp.notes.insert(mlp.notes.end(), fc2.notes.begin(), fc2.notes.end());
    mlp.notes.push_back("MLP '" + fc1.name + "' -> '" + fc2.name + "' in one kernel: the " + std::to_string(hidden) +
                        "-wide hidden activation stays on chip");
    g.nodes[i].op_type.clear();
    g.nodes[j].op_type.clear();
    g.add_node(std::move(mlp));
    ++fired;
  }
  if (fired) g.relink();
  return fired;
}

}  // namespace unirt
