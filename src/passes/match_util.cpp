#include "passes/match_util.h"

#include <algorithm>
#include <cmath>

namespace unirt {

int sole_consumer(const Graph& g, const std::vector<std::vector<int>>& consumers, int value) {
  if (value < 0 || g.is_graph_output(value) || consumers[value].size() != 1) return -1;
  return consumers[value][0];
}

void add_fused_node(Graph& g, Node f, std::vector<std::vector<int>>& consumers) {
  g.add_node(std::move(f));
  g.relink();
  consumers = g.consumers();
}

bool const_shape2(const Graph& g, int value, int64_t* rows, int64_t* cols) {
  const Value& w = g.value(value);
  if (!w.data || w.data->shape.size() != 2) return false;
  *rows = w.data->shape[0];
  *cols = w.data->shape[1];
  return true;
}

bool is_scalar_const(const Graph& g, int value, float x, float tol) {
  if (value < 0) return false;
  const Value& v = g.value(value);
  if (!v.data || v.data->numel() != 1 || (v.dtype != DType::Float32 && v.dtype != DType::Float64)) return false;
  return std::fabs(v.data->to_float()[0] - x) <= tol * std::max(1.f, std::fabs(x));
}

std::optional<BatchNormAffine> batchnorm_affine(const Graph& g, const Node& bn) {
  if (bn.op_type != "BatchNormalization" || bn.inputs.size() < 5 || bn.outputs.size() != 1 || bn.attr_i("training_mode", 0) != 0)
    return std::nullopt;
  for (int i = 1; i < 5; ++i)
    if (bn.inputs[i] < 0 || !g.value(bn.inputs[i]).is_const() || g.value(bn.inputs[i]).dtype != DType::Float32) return std::nullopt;
  const auto gamma = g.value(bn.inputs[1]).data->to_float(), beta = g.value(bn.inputs[2]).data->to_float();
  const auto mean = g.value(bn.inputs[3]).data->to_float(), var = g.value(bn.inputs[4]).data->to_float();
  if (beta.size() != gamma.size() || mean.size() != gamma.size() || var.size() != gamma.size()) return std::nullopt;
  const float eps = bn.attr_f("epsilon", 1e-5f);
  BatchNormAffine a;
  a.scale.resize(gamma.size());
  a.shift.resize(gamma.size());
  for (size_t c = 0; c < gamma.size(); ++c) {
    a.scale[c] = gamma[c] / std::sqrt(var[c] + eps);
    a.shift[c] = beta[c] - mean[c] * a.scale[c];
  }
  return a;
}

void take_folded_batchnorm(Graph& g, Node& conv, Node& bn, TensorData weight, const std::vector<float>& bias, const std::string& tag,
                           const std::string& note) {
  const int64_t cout = static_cast<int64_t>(bias.size());
  const int wid = g.add_constant(g.unique_name(conv.name + "/" + tag + "_weight"), std::move(weight));
  const int bid = g.add_constant(g.unique_name(conv.name + "/" + tag + "_bias"), TensorData::from_float(bias, {cout}));
  conv.inputs.resize(3);
  conv.inputs[1] = wid;
  conv.inputs[2] = bid;
  conv.notes.push_back(note + " '" + bn.name + "'");
  bn.op_type.clear();
  g.relink();
}

}  // namespace unirt
