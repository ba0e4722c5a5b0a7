// FP16 engines: every float32 activation becomes float16; graph inputs and outputs stay float32
// with a Cast at the boundary, so callers feed and read float32 as with an FP32 engine. A
// detector's box arithmetic stays float32: the float32 region (float32_region below) runs from the
// inputs of NonMaxSuppression and RoiAlign back to the convolutions and GEMMs that feed it, with a
// Cast wherever the two precisions meet.
//
// Constants: float32 weights read by float16 ops are converted once here (round to nearest even).
// Normalisation parameters (LayerNormalization scale/bias, BatchNormalization scale/bias/mean/var)
// stay float32: the CUDA kernels read them as float32 next to float16 activations, and a variance
// or a small scale in float16 would cost accuracy for no speed (they are a few KiB). So do the
// scales of QuantizeLinear / DequantizeLinear: the quantization grid is the one the graph gives.
// Kernels accumulate statistics, softmax and GEMMs in float32.
#include <cmath>
#include <cstring>
#include <map>
#include <set>

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
  if (n.op_type == "RoiAlign") return input == 1;     // RoI coordinates stay float32
  if (n.op_type == "unirt.MultiLevelRoiAlign") return input == 0 || input == 2;  // coordinates and levels too
  if (n.op_type == "QuantizeLinear" || n.op_type == "DequantizeLinear") return input == 1;  // scales: the quantization grid as given
  if (n.op_type == "unirt.QuantizedLinear") return input == 2 || input == 3;  // alpha and bias enter the float32 epilogue
  if (n.op_type == "unirt.LayerNormQuantize") return input >= 1;
  return false;
}

// Ops that run in float32 inside an FP16 engine: their float16 activation inputs get a Cast.
bool runs_in_float32(const Node& n) { return n.op_type == "NonMaxSuppression"; }

bool is_box_arithmetic(const Node& n) { return n.op_type == "unirt.BoxDecode" || n.op_type == "unirt.MultiLevelTopK"; }

// The compute of a network: these produce float16 in an FP16 engine and end the float32 region.
bool is_heavy(const Node& n) {
  static const std::set<std::string> heavy = {"Conv", "ConvTranspose", "MatMul", "Gemm", "LayerNormalization",
                                              "BatchNormalization", "RoiAlign", "Resize", "MaxPool", "AveragePool",
                                              "GlobalAveragePool", "Erf", "Gelu"};
  // unirt.BoxDecode and unirt.MultiLevelTopK are the box arithmetic and score selection: they stay
  // in the float32 region.
  return heavy.count(n.op_type) || (n.op_type.rfind("unirt.", 0) == 0 && !is_box_arithmetic(n));
}

bool is_float(DType t) { return t == DType::Float32 || t == DType::Float16; }

// The float32 region of an FP16 engine: the arithmetic that box coordinates and scores go through
// before NonMaxSuppression and RoiAlign (anchors, delta decoding, clipping, score selection, the
// per-class offsets), and unirt.BoxDecode wherever it is. Backwards from those inputs (and from
// the decoded boxes) through every op that is not heavy, then
// forwards through ops whose float activations all come from the region (the RoI level mapping).
std::vector<char> float32_region(const Graph& g) {
  std::vector<char> in_r(g.nodes.size(), 0);
  std::vector<int> stack;
  auto seed = [&](int v) {
    if (v >= 0 && !g.value(v).is_const()) stack.push_back(v);
  };
  for (const Node& n : g.nodes) {
    if (n.op_type == "NonMaxSuppression") {
      seed(n.inputs[0]);
      if (n.inputs.size() > 1) seed(n.inputs[1]);
    } else if (n.op_type == "RoiAlign" && n.inputs.size() > 1) {
      seed(n.inputs[1]);
    } else if (n.op_type == "unirt.MultiLevelRoiAlign") {
      seed(n.inputs[0]);
      seed(n.inputs[2]);
    } else if (is_box_arithmetic(n)) {
      seed(n.outputs[0]);  // box arithmetic itself: float32 whoever reads the boxes or scores
    }
  }
  while (!stack.empty()) {
    const int v = stack.back();
    stack.pop_back();
    const int p = g.value(v).producer;
    if (p < 0 || in_r[p] || is_heavy(g.nodes[p])) continue;
    in_r[p] = 1;
    for (int in : g.nodes[p].inputs)
      if (in >= 0 && !g.value(in).is_const() && is_float(g.value(in).dtype)) stack.push_back(in);
  }
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (in_r[i] || is_heavy(n) || runs_in_float32(n)) continue;
    bool any = false, all = true;
    for (int in : n.inputs) {
      if (in < 0 || g.value(in).is_const() || !is_float(g.value(in).dtype)) continue;
      const int p = g.value(in).producer;
      any = true;
      all = all && p >= 0 && in_r[p];
    }
    if (any && all) in_r[i] = 1;
  }
  return in_r;
}

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
  const std::vector<char> in_r = float32_region(g);
  auto reads_float32 = [&](int ni, size_t i) { return in_r[ni] || runs_in_float32(g.nodes[ni]) || keeps_float32(g.nodes[ni], i); };

  // 1. Constants: convert unless every reader keeps float32; a constant read both ways gets a
  //    float32 copy for its float32 readers.
  const size_t original_values = g.values.size();
  for (size_t v = 0; v < original_values; ++v) {
    if (!g.values[v].data || g.values[v].dtype != DType::Float32 || g.values[v].data->dtype != DType::Float32) continue;
    bool fp32_reader = false, fp16_reader = false;
    for (int ni : consumers[v]) {
      const Node& n = g.nodes[ni];
      for (size_t i = 0; i < n.inputs.size(); ++i)
        if (n.inputs[i] == static_cast<int>(v)) (reads_float32(ni, i) ? fp32_reader : fp16_reader) = true;
    }
    if (!fp16_reader || g.is_graph_output(static_cast<int>(v))) continue;
    if (fp32_reader) {
      const int copy = g.add_value(g.unique_name(g.values[v].name + "/fp32"), DType::Float32);
      const std::string name = g.values[copy].name;
      g.values[copy] = g.values[v];  // shape, has_shape and data: the planner reads them all
      g.values[copy].name = name;
      for (int ni : consumers[v])
        for (size_t i = 0; i < g.nodes[ni].inputs.size(); ++i)
          if (g.nodes[ni].inputs[i] == static_cast<int>(v) && reads_float32(ni, i)) g.nodes[ni].inputs[i] = copy;
    }
    g.values[v].data = to_half(*g.values[v].data);
    g.values[v].dtype = DType::Float16;
    ++changes;
  }

  // 2. Ops outside the float32 region that create float32 from nothing or from integers now
  //    create float16 (Cast, ConstantOfShape, DequantizeLinear, unirt.QuantizedLinear).
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    Node& n = g.nodes[i];
    if (in_r[i]) continue;
    if (n.op_type == "Cast" && n.attr_i("to", 0) == static_cast<int64_t>(DType::Float32)) {
      n.attrs["to"] = static_cast<int64_t>(DType::Float16);
      ++changes;
    } else if (n.op_type == "DequantizeLinear" && n.attr_i("output_dtype", 0) == 0 && g.value(n.inputs[1]).dtype == DType::Float32) {
      n.attrs["output_dtype"] = static_cast<int64_t>(DType::Float16);  // from float32 scales, float16 activations
      ++changes;
    } else if (n.op_type == "unirt.QuantizedLinear" && n.attr_i("output_dtype", 1) == static_cast<int64_t>(DType::Float32)) {
      n.attrs["output_dtype"] = static_cast<int64_t>(DType::Float16);  // from 8-bit operands, float16 activations
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

  // 3. The float32 boundary: a Cast after each float input (the float32 region reads the input
  //    itself) and before each float output the region does not produce.
  const size_t original_nodes = g.nodes.size();
  for (int in : std::vector<int>(g.inputs)) {
    if (g.value(in).dtype != DType::Float32) continue;
    const std::string base = g.value(in).name;
    const int h = g.add_value(g.unique_name(base + "/fp16"), DType::Float16);
    bool used = false;
    for (size_t i = 0; i < original_nodes; ++i)
      for (size_t k = 0; k < g.nodes[i].inputs.size(); ++k)
        if (g.nodes[i].inputs[k] == in && !reads_float32(static_cast<int>(i), k)) {
          g.nodes[i].inputs[k] = h;
          used = true;
        }
    if (!used) continue;
    g.add_node(make_cast(g, base, in, h, DType::Float16));
    ++changes;
  }
  for (int out : std::vector<int>(g.outputs)) {
    const Value& v = g.value(out);
    if (v.dtype != DType::Float32 || v.is_const() || v.producer < 0 || in_r[v.producer]) continue;
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

  // 4. Activations: every remaining float32 intermediate outside the region is float16.
  for (size_t v = 0; v < g.values.size(); ++v) {
    Value& val = g.values[v];
    if (val.is_const() || val.dtype != DType::Float32 || val.producer < 0) continue;
    if (g.is_graph_output(static_cast<int>(v))) continue;
    if (static_cast<size_t>(val.producer) < in_r.size() && in_r[val.producer]) continue;
    val.dtype = DType::Float16;
  }

  // 5. Where the two precisions meet, a Cast: float16 activations into the region and into
  //    float32 ops (NonMaxSuppression), region values into float16 ops. One Cast per value and type.
  g.relink();
  std::map<std::pair<int, DType>, int> casts;
  auto cast_of = [&](int in, DType to) {
    auto it = casts.find({in, to});
    if (it != casts.end()) return it->second;
    // Straight from a float32 graph input: read the input itself, not its float16 rounding.
    const int p = g.value(in).producer;
    if (to == DType::Float32 && p >= 0 && g.nodes[p].op_type == "Cast" && g.nodes[p].inputs[0] >= 0 &&
        g.value(g.nodes[p].inputs[0]).dtype == DType::Float32 && g.value(g.nodes[p].inputs[0]).producer < 0)
      return casts[{in, to}] = g.nodes[p].inputs[0];
    const std::string base = g.value(in).name;
    const int f = g.add_value(g.unique_name(base + (to == DType::Float32 ? "/fp32" : "/fp16")), to);
    g.add_node(make_cast(g, base, in, f, to));
    ++changes;
    return casts[{in, to}] = f;
  };
  const size_t before_casts = g.nodes.size();
  for (size_t i = 0; i < before_casts; ++i) {
    const bool fp32_node = (i < in_r.size() && in_r[i]) || runs_in_float32(g.nodes[i]);
    const std::string op = g.nodes[i].op_type;
    if (op == "Shape" || op == "Size" || op == "Cast") continue;  // any float type will do
    for (size_t k = 0; k < g.nodes[i].inputs.size(); ++k) {
      const int in = g.nodes[i].inputs[k];
      if (in < 0 || g.value(in).is_const() || !is_float(g.value(in).dtype)) continue;
      const bool kept = keeps_float32(g.nodes[i], k);
      if (kept && (op == "LayerNormalization" || op == "BatchNormalization")) continue;  // parameters, read as given
      const DType want = fp32_node || kept ? DType::Float32 : DType::Float16;
      if (g.value(in).dtype != want) g.nodes[i].inputs[k] = cast_of(in, want);
    }
  }
  g.relink();
  g.compact();
  infer_shapes(g);
  return changes;
}

}  // namespace unirt
