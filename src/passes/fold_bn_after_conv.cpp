// Conv -> BatchNormalization (constant statistics, the conv output used only by the BN): the BN
// scales and shifts each output channel, so it folds into the conv's weights and bias:
//   W'[o, ...] = W[o, ...] * s[o],  b'[o] = b[o] * s[o] + t[o]
// with s, t the BN's affine map (match_util.h).
#include "passes/fusions.h"
#include "passes/match_util.h"

namespace unirt {

int fold_bn_after_conv(Graph& g) {
  int fired = 0;
  auto consumers = g.consumers();
  for (auto& conv : g.nodes) {
    if (conv.op_type != "Conv" || !g.value(conv.inputs[1]).is_const() ||
        g.value(conv.inputs[1]).dtype != DType::Float32)
      continue;
    if (conv.has_input(2) && !g.value(conv.inputs[2]).is_const()) continue;
    const int bn_idx = sole_consumer(g, consumers, conv.outputs[0]);
    if (bn_idx < 0) continue;
    Node& bn = g.nodes[bn_idx];
    const auto bn_map = batchnorm_affine(g, bn);
    if (!bn_map) continue;
    const TensorData& w = *g.value(conv.inputs[1]).data;
    if (w.shape.empty() || w.shape[0] <= 0) continue;
    const int64_t cout = w.shape[0], per = w.numel() / cout;
    if (static_cast<int64_t>(bn_map->scale.size()) != cout) continue;
    std::vector<float> bias(cout, 0.f);
    if (conv.has_input(2)) bias = g.value(conv.inputs[2]).data->to_float();
    TensorData nw = w;
    for (int64_t c = 0; c < cout; ++c) {
      const float s = bn_map->scale[c];
      for (int64_t i = 0; i < per; ++i) nw.as<float>()[c * per + i] *= s;
      bias[c] = bias[c] * s + bn_map->shift[c];
    }
    conv.outputs[0] = bn.outputs[0];
    take_folded_batchnorm(g, conv, bn, std::move(nw), bias, "folded", "folded BatchNormalization");
    consumers = g.consumers();
    ++fired;
  }
  return fired;
}

}  // namespace unirt
