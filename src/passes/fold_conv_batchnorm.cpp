#include <cmath>

#include "passes/fusions.h"

namespace unirt {

int sole_consumer(const Graph& g, const std::vector<std::vector<int>>& consumers, int value) {
  if (value < 0 || g.is_graph_output(value) || consumers[value].size() != 1) return -1;
  return consumers[value][0];
}

bool is_scalar_const(const Graph& g, int value, float x, float tol) {
  if (value < 0) return false;
  const Value& v = g.value(value);
  if (!v.data || v.data->numel() != 1 || (v.dtype != DType::Float32 && v.dtype != DType::Float64)) return false;
  return std::fabs(v.data->to_float()[0] - x) <= tol * std::max(1.f, std::fabs(x));
}

int fold_conv_batchnorm(Graph& g) {
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
    if (bn.op_type != "BatchNormalization" || bn.outputs.size() != 1) continue;
    bool params_const = true;
    for (int i = 1; i < 5; ++i) params_const &= g.value(bn.inputs[i]).is_const();
    if (!params_const) continue;
    const TensorData& w = *g.value(conv.inputs[1]).data;
    const int64_t cout = w.shape[0], per = w.numel() / cout;
    auto gamma = g.value(bn.inputs[1]).data->to_float(), beta = g.value(bn.inputs[2]).data->to_float();
    auto mean = g.value(bn.inputs[3]).data->to_float(), var = g.value(bn.inputs[4]).data->to_float();
    if (static_cast<int64_t>(gamma.size()) != cout) continue;
    const float eps = bn.attr_f("epsilon", 1e-5f);
    std::vector<float> bias(cout, 0.f);
    if (conv.has_input(2)) bias = g.value(conv.inputs[2]).data->to_float();
    TensorData nw = w;
    for (int64_t c = 0; c < cout; ++c) {
      const float s = gamma[c] / std::sqrt(var[c] + eps);
      for (int64_t i = 0; i < per; ++i) nw.as<float>()[c * per + i] *= s;
      bias[c] = (bias[c] - mean[c]) * s + beta[c];
    }
    const int wid = g.add_constant(g.unique_name(conv.name + "/folded_weight"), std::move(nw));
    const int bid = g.add_constant(g.unique_name(conv.name + "/folded_bias"), TensorData::from_float(bias, {cout}));
    conv.inputs.resize(3);
    conv.inputs[1] = wid;
    conv.inputs[2] = bid;
    conv.outputs[0] = bn.outputs[0];
    conv.notes.push_back("folded BatchNormalization '" + bn.name + "'");
    bn.op_type.clear();
    g.relink();
    consumers = g.consumers();
    ++fired;
  }
  return fired;
}

}  // namespace unirt
