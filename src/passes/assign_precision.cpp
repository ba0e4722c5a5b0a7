// FP16 engines: every float32 activation becomes float16; graph inputs and outputs stay float32
// with a Cast at the boundary, so callers feed and read float32 as with an FP32 engine.
//
// Constants: float32 weights read by float16 ops are converted once here (round to nearest even).
// Normalisation parameters (LayerNormalization scale/bias, BatchNormalization scale/bias/mean/var)
// stay float32: the CUDA kernels read them as float32 next to float16 activations, and a variance
// or a small scale in float16 would cost accuracy for no speed (they are a few KiB).
// Kernels accumulate statistics, softmax and GEMMs in float32.
#include <cmath>
#include <cstring>

#include "passes/assign_precision.h"
#include "passes/pipeline.h"
#include "passes/shape_inference.h"
#include "ir/half.h"

namespace unirt {

namespace {

std::shared_ptr<TensorData> to_half(const TensorData& t) {
  auto h = std::make_shared<TensorData>();
  h->dtype = DType::Float16;
  h->shape = t.shape;
  h->bytes.resize(static_cast<size_t>(t.numel()) * 2);
  for (int64_t i = 0; i < t.numel(); ++i) h->as<uint16_t>()[i] = float_to_half(t.as<float>()[i]);
  return h;
}

// Inputs that kernels read as float32 whatever the activation type.
bool keeps_float32(const Node& n, size_t input) {
  if (n.op_type == "LayerNormalization") return input >= 1;
  if (n.op_type == "BatchNormalization") return input >= 1;
  if (n.op_type == "NonMaxSuppression") return true;  // box coordinates and thresholds stay float32
  return false;
}

// Ops that run in float32 inside an FP16 engine: their float16 activation inputs get a Cast.
bool runs_in_float32(const Node& n) { return n.op_type == "NonMaxSuppression"; }

Node make_cast(Graph& g, const std::string& base, int in, int out, DType to) {
  Node c;
  c.name = g.unique_name(base + "/cast_" + dtype_name(to));
  c.op_type = "Cast";
  c.inputs = {in};
  c.outputs = {out};
  c.attrs["to"] = static_cast<int64_t>(to);
  c.notes.push_back(std::string("precision boundary: ") + dtype_name(to));
  return c;
}

}  // namespace


int assign_precision(Graph& g, Precision p) {
  if (p != Precision::FP16) return 0;
  int changes = 0;
  const auto consumers = g.consumers();

  // 1. Constants: convert unless every reader keeps float32.
  for (size_t v = 0; v < g.values.size(); ++v) {
    Value& val = g.values[v];
    if (!val.data || val.dtype != DType::Float32 || val.data->dtype != DType::Float32) continue;
    bool all_fp32_readers = !consumers[v].empty();
    for (int ni : consumers[v]) {
      const Node& n = g.nodes[ni];
      for (size_t i = 0; i < n.inputs.size(); ++i)
        if (n.inputs[i] == static_cast<int>(v) && !keeps_float32(n, i)) all_fp32_readers = false;
    }
    if (all_fp32_readers || g.is_graph_output(static_cast<int>(v))) continue;
    val.data = to_half(*val.data);
    val.dtype = DType::Float16;
    ++changes;
  }

  // 2. Ops that create float32 from nothing or from integers now create float16.
  for (auto& n : g.nodes) {
    if (n.op_type == "Cast" && n.attr_i("to", 0) == static_cast<int64_t>(DType::Float32)) {
      n.attrs["to"] = static_cast<int64_t>(DType::Float16);
      ++changes;
    } else if (n.op_type == "ConstantOfShape") {
      if (!n.has_attr("value")) {
        n.attrs["value"] = *to_half(TensorData::from_float({0.f}, {1}));
        ++changes;
      } else if (n.attr_t("value").dtype == DType::Float32) {
        n.attrs["value"] = *to_half(n.attr_t("value"));
        ++changes;
      }
    }
  }

  // 3. The float32 boundary: a Cast after each float input and before each float output.
  const size_t original_nodes = g.nodes.size();
  for (int in : std::vector<int>(g.inputs)) {
    if (g.value(in).dtype != DType::Float32) continue;
    const std::string base = g.value(in).name;
    const int h = g.add_value(g.unique_name(base + "/fp16"), DType::Float16);
    for (size_t i = 0; i < original_nodes; ++i)
      for (int& x : g.nodes[i].inputs)
        if (x == in) x = h;
    g.add_node(make_cast(g, base, in, h, DType::Float16));
    ++changes;
  }
  for (int out : std::vector<int>(g.outputs)) {
    const Value& v = g.value(out);
    if (v.dtype != DType::Float32 || v.is_const() || v.producer < 0) continue;
    const std::string base = v.name;
    const int h = g.add_value(g.unique_name(base + "/fp16"), DType::Float16);
    for (auto& n : g.nodes) {
      for (int& x : n.outputs)
        if (x == out) x = h;
      for (int& x : n.inputs)
        if (x == out) x = h;
    }
    g.add_node(make_cast(g, base, h, out, DType::Float32));
    ++changes;
  }

  // 4. Activations: every remaining float32 intermediate is float16; shape inference confirms.
  for (size_t v = 0; v < g.values.size(); ++v) {
    Value& val = g.values[v];
    if (val.is_const() || val.dtype != DType::Float32 || val.producer < 0) continue;
    if (g.is_graph_output(static_cast<int>(v))) continue;
    val.dtype = DType::Float16;
  }
  // 5. Float32 islands (NonMaxSuppression): their activation inputs are cast back to float32.
  const size_t before_islands = g.nodes.size();
  for (size_t i = 0; i < before_islands; ++i) {
    if (!runs_in_float32(g.nodes[i])) continue;
    for (size_t k = 0; k < g.nodes[i].inputs.size(); ++k) {
      const int in = g.nodes[i].inputs[k];
      if (in < 0 || g.value(in).dtype != DType::Float16 || g.value(in).is_const()) continue;
      // Straight from a float32 graph input: read the input itself, not its float16 rounding.
      const int p = g.value(in).producer;
      if (p >= 0 && g.nodes[p].op_type == "Cast" && g.nodes[p].inputs[0] >= 0 && g.value(g.nodes[p].inputs[0]).dtype == DType::Float32) {
        g.nodes[i].inputs[k] = g.nodes[p].inputs[0];
        ++changes;
        continue;
      }
      const std::string base = g.value(in).name;
      const int f = g.add_value(g.unique_name(base + "/fp32"), DType::Float32);
      g.nodes[i].inputs[k] = f;
      g.add_node(make_cast(g, base, in, f, DType::Float32));
      ++changes;
    }
  }
  g.relink();
  g.compact();
  infer_shapes(g);
  return changes;
}

}  // namespace unirt
