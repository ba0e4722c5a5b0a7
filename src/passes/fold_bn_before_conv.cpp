// BatchNormalization -> Conv (no padding, one group): the UniFormer CBlock normalises before its
// 1x1 convolutions (norm1 -> conv1, norm2 -> mlp.fc1), so the BN is an affine map on the conv's
// input channels and folds into the weights:
//   W'[o, i, ...] = W[o, i, ...] * s[i],  b'[o] = b[o] + sum_{i,...} W[o, i, ...] * t[i]
// with s = gamma / sqrt(var + eps), t = beta - mean * s. Zero padding would see BN(0) = t at the
// border instead of 0, so padded convs are left alone.
#include "passes/fusions.h"
#include "passes/match_util.h"

namespace unirt {

int fold_bn_before_conv(Graph& g) {
  int fired = 0;
  auto consumers = g.consumers();
  for (auto& bn : g.nodes) {
    const auto bn_map = batchnorm_affine(g, bn);
    if (!bn_map) continue;
    const int conv_idx = sole_consumer(g, consumers, bn.outputs[0]);
    if (conv_idx < 0) continue;
    Node& conv = g.nodes[conv_idx];
    if (conv.op_type != "Conv" || conv.inputs[0] != bn.outputs[0] || conv.attr_i("group", 1) != 1) continue;
    if (!g.value(conv.inputs[1]).is_const() || g.value(conv.inputs[1]).dtype != DType::Float32) continue;
    if (conv.has_input(2) && !g.value(conv.inputs[2]).is_const()) continue;
    if (conv.attr_s("auto_pad", "NOTSET") != "NOTSET" && conv.attr_s("auto_pad", "NOTSET") != "VALID") continue;
    bool padded = false;
    for (auto p : conv.attr_ints("pads")) padded |= p != 0;
    if (padded) continue;
    const TensorData& w = *g.value(conv.inputs[1]).data;
    if (w.shape.size() < 3) continue;
    const int64_t cout = w.shape[0], cin = w.shape[1], taps = w.numel() / (cout * cin);
    if (static_cast<int64_t>(bn_map->scale.size()) != cin) continue;
    std::vector<float> bias(cout, 0.f);
    if (conv.has_input(2)) bias = g.value(conv.inputs[2]).data->to_float();
    TensorData nw = w;
    float* wp = nw.as<float>();
    for (int64_t i = 0; i < cin; ++i) {
      const float s = bn_map->scale[i], t = bn_map->shift[i];
      for (int64_t o = 0; o < cout; ++o) {
        float* wi = wp + (o * cin + i) * taps;
        double shift = 0;
        for (int64_t k = 0; k < taps; ++k) {
          shift += static_cast<double>(wi[k]) * t;
          wi[k] *= s;
        }
        bias[o] += static_cast<float>(shift);
      }
    }
    conv.inputs[0] = bn.inputs[0];
    take_folded_batchnorm(g, conv, bn, std::move(nw), bias, "bn_folded", "folded the preceding BatchNormalization");
    consumers = g.consumers();
    ++fired;
  }
  return fired;
}

}  // namespace unirt
