// Precision placement for INT8 / FP8 engines built from a calibration cache (implicit
// quantization). Runs after the BatchNorm folds, before the other fusions, on the tensor names the
// calibration saw:
//   - layers: MatMul, Gemm and Conv (not depthwise convs, not a layer whose output is a graph
//     output: the classifier head, not the layers after a RoIAlign: the detector's box and mask
//     heads), unless `layer_precision` names them ("fp16"/"fp32" leaves one out, "int8"/"fp8"
//     takes one in);
//   - each activation input with a calibrated amax gets QuantizeLinear -> DequantizeLinear, scale
//     amax / 127 (int8, symmetric) or amax / 448 (float8 E4M3FN), zero point 0; one pair per
//     tensor, shared by its quantized readers;
//   - constant weights are quantized per output channel (symmetric, max |w| / 127 or / 448) and
//     stored dequantized: the values an int8/fp8 kernel computes with.
// With kernel_layers_only (CUDA FP16 engines) only layers an 8-bit kernel runs are taken; the
// Q -> DQ -> layer chains are then lowered to those kernels (lower_quantized_layers.cpp). Elsewhere
// the Q/DQ pairs run as written: a simulation of the quantization in float.
#include <algorithm>
#include <cmath>
#include <set>

#include "backend/float8_rule.h"
#include "passes/quantize_layers.h"

namespace unirt {
namespace {

bool reads_softmax(const Graph& g, const Node& n) {
  for (int v : n.inputs)
    if (v >= 0 && g.value(v).producer >= 0 && g.nodes[g.value(v).producer].op_type == "Softmax") return true;
  return false;
}

bool is_depthwise(const Graph& g, const Node& n) {
  const int64_t group = n.attr_i("group", 1);
  if (group <= 1 || n.inputs.size() < 2 || !g.value(n.inputs[1]).data) return false;
  const auto& w = g.value(n.inputs[1]).data->shape;
  return w.size() >= 2 && w[1] == 1;
}

// Nodes whose inputs depend on a RoiAlign's output (the detector's heads).
std::vector<char> after_roi_align(const Graph& g) {
  std::vector<char> tainted_value(g.values.size(), 0), after(g.nodes.size(), 0);
  for (size_t i = 0; i < g.nodes.size(); ++i) {  // nodes are in topological order
    const Node& n = g.nodes[i];
    bool t = n.op_type == "RoiAlign" || n.op_type == "unirt.MultiLevelRoiAlign";
    for (int v : n.inputs) t = t || (v >= 0 && tainted_value[v]);
    if (!t) continue;
    after[i] = n.op_type != "RoiAlign" && n.op_type != "unirt.MultiLevelRoiAlign";
    for (int v : n.outputs) tainted_value[v] = 1;
  }
  return after;
}

// A layer an 8-bit kernel runs once lowered (lower_quantized_layers.cpp): a MatMul by a constant
// 2-D weight, or a 1x1 stride-1 unpadded one-group Conv (a channels-last GEMM), with K and N
// multiples of 16 (the GEMM reads and writes 16-byte rows).
bool has_8bit_kernel(const Graph& g, const Node& n) {
  if (n.inputs.size() < 2 || !g.value(n.inputs[1]).data) return false;
  const auto& w = g.value(n.inputs[1]).data->shape;
  auto gemm_sized = [](int64_t k, int64_t nn) { return k > 0 && nn > 0 && k % 16 == 0 && nn % 16 == 0; };
  if (n.op_type == "MatMul") return w.size() == 2 && gemm_sized(w[0], w[1]);
  if (n.op_type != "Conv" || w.size() != 4 || w[2] != 1 || w[3] != 1 || n.attr_i("group", 1) != 1 || !gemm_sized(w[1], w[0])) return false;
  const auto pads = n.attr_ints("pads", {0, 0, 0, 0});
  const auto strides = n.attr_ints("strides", {1, 1});
  const std::string ap = n.attr_s("auto_pad", "NOTSET");
  return (ap == "NOTSET" || ap == "VALID") && strides == std::vector<int64_t>{1, 1} &&
         (ap == "VALID" || pads == std::vector<int64_t>{0, 0, 0, 0});
}

// The output-channel axis of a layer's constant weight, or -1 when input 1 is no constant weight.
int weight_axis(const Graph& g, const Node& n) {
  if (n.inputs.size() < 2 || !g.value(n.inputs[1]).data) return -1;
  const size_t rank = g.value(n.inputs[1]).data->shape.size();
  if (n.op_type == "Conv") return rank >= 2 ? 0 : -1;
  if (n.op_type == "Gemm") return rank == 2 ? (n.attr_i("transB", 0) ? 0 : 1) : -1;
  return rank >= 2 ? static_cast<int>(rank) - 1 : -1;  // MatMul [.., K, N]
}

// w <- dequantize(quantize(w)) per channel along `axis`; returns the scales.
std::vector<float> fake_quantize_weight(TensorData& w, int axis, QuantMode mode) {
  const auto& s = w.shape;
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; ++i) outer *= s[i];
  for (size_t i = axis + 1; i < s.size(); ++i) inner *= s[i];
  const int64_t C = s[axis];
  const float qmax = mode == QuantMode::Int8 ? 127.f : 448.f;
  std::vector<float> amax(static_cast<size_t>(C), 0.f), scale(static_cast<size_t>(C), 0.f);
  float* v = w.as<float>();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < inner; ++i) amax[c] = std::max(amax[c], std::fabs(v[(o * C + c) * inner + i]));
  for (int64_t c = 0; c < C; ++c) scale[c] = amax[c] > 0 && std::isfinite(amax[c]) ? amax[c] / qmax : 0.f;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < C; ++c) {
      if (scale[c] == 0.f) continue;  // an all-zero (or non-finite) channel is left as it is
      for (int64_t i = 0; i < inner; ++i) {
        float& x = v[(o * C + c) * inner + i];
        if (mode == QuantMode::Int8) x = std::clamp(std::nearbyint(x / scale[c]), -127.f, 127.f) * scale[c];
        else x = e4m3fn_to_float(float_to_e4m3fn(x / scale[c], true)) * scale[c];
      }
    }
  return scale;
}

std::string scale_text(float s) {
  char b[32];
  std::snprintf(b, sizeof b, "%.6g", s);
  return b;
}

}  // namespace

const char* quant_mode_name(QuantMode m) { return m == QuantMode::Int8 ? "int8" : m == QuantMode::Fp8 ? "fp8" : "none"; }

int quantize_layers(Graph& g, const QuantizationOptions& q) {
  if (q.mode == QuantMode::None) return 0;
  for (const auto& [name, p] : q.layer_precision)
    if (p != "fp16" && p != "fp32" && p != "int8" && p != "fp8")
      throw Error("--layer-precision " + name + "=" + p + ": expected fp16, fp32, int8 or fp8");
  std::set<std::string> names_seen;
  for (const Node& n : g.nodes) names_seen.insert(n.name);
  for (const auto& kv : q.layer_precision)
    if (!names_seen.count(kv.first)) throw Error("--layer-precision names '" + kv.first + "', which is not a layer of this model");
  const std::set<int> graph_outputs(g.outputs.begin(), g.outputs.end());
  const std::vector<char> in_head = after_roi_align(g);
  const DType qtype = q.mode == QuantMode::Int8 ? DType::Int8 : DType::Float8E4M3FN;
  const float qmax = q.mode == QuantMode::Int8 ? 127.f : 448.f;
  std::map<int, int> dequantized;  // activation value -> its DequantizeLinear output
  const size_t original = g.nodes.size();
  std::vector<std::vector<Node>> before(original);  // Q/DQ pairs, placed before their first reader
  int layers = 0;
  for (size_t i = 0; i < original; ++i) {
    const Node& n = g.nodes[i];
    if (n.op_type != "MatMul" && n.op_type != "Gemm" && n.op_type != "Conv") continue;
    auto over = q.layer_precision.find(n.name);
    const bool forced = over != q.layer_precision.end() && (over->second == "int8" || over->second == "fp8");
    if (over != q.layer_precision.end() && !forced) continue;
    bool head = in_head[i];
    for (int o : n.outputs) head = head || graph_outputs.count(o);
    if (!forced && (head || (n.op_type == "Conv" && is_depthwise(g, n)))) continue;
    if (!forced && q.kernel_layers_only && !has_8bit_kernel(g, n)) continue;
    const int waxis = weight_axis(g, n);
    const size_t acts = n.op_type == "MatMul" && waxis < 0 ? 2 : 1;
    if (!forced && acts == 2 && q.mode == QuantMode::Int8 && reads_softmax(g, n)) continue;
    // Every activation input needs a range, or the layer stays in float.
    bool ranged = true;
    for (size_t k = 0; k < acts; ++k) {
      const Value& v = g.value(n.inputs[k]);
      auto it = q.amax.find(v.name);
      ranged = ranged && !v.is_const() && it != q.amax.end() && it->second > 0 && std::isfinite(it->second);
    }
    if (!ranged) continue;
    std::string note = std::string(quant_mode_name(q.mode)) + ": activation scale";
    for (size_t k = 0; k < acts; ++k) note += (k ? ", " : " ") + scale_text(q.amax.at(g.value(n.inputs[k]).name) / qmax);
    for (size_t k = 0; k < acts; ++k) {
      const int x = n.inputs[k];
      auto done = dequantized.find(x);
      if (done == dequantized.end()) {
        const Value xv = g.value(x);  // a copy: adding values may move them
        const float scale = q.amax.at(xv.name) / qmax;
        const std::string base = g.unique_name(xv.name + "/quant");
        TensorData zero;
        zero.dtype = qtype;
        zero.bytes.assign(1, 0);
        const int s = g.add_constant(base + "/scale", TensorData::from_float({scale}, {}));
        const int z = g.add_constant(base + "/zero_point", zero);
        const int qv = g.add_value(base + "/q", qtype);
        const int dv = g.add_value(base + "/dq", xv.dtype);
        Node qn, dn;
        qn.name = base + "/QuantizeLinear";
        qn.op_type = "QuantizeLinear";
        qn.inputs = {x, s, z};
        qn.outputs = {qv};
        dn.name = base + "/DequantizeLinear";
        dn.op_type = "DequantizeLinear";
        dn.inputs = {qv, s, z};
        dn.outputs = {dv};
        char qnote[96];
        std::snprintf(qnote, sizeof qnote, "%s activation, amax %.6g (scale %.6g)", quant_mode_name(q.mode), q.amax.at(xv.name), scale);
        qn.notes.push_back(qnote);
        before[i].push_back(qn);
        before[i].push_back(dn);
        done = dequantized.emplace(x, dv).first;
      }
      g.nodes[i].inputs[k] = done->second;
    }
    if (waxis >= 0 && g.value(g.nodes[i].inputs[1]).data->dtype == DType::Float32) {
      // A copy for this layer: the constant may have other readers.
      const Value w = g.value(g.nodes[i].inputs[1]);
      TensorData fq = *w.data;
      const std::vector<float> scales = fake_quantize_weight(fq, waxis, q.mode);
      g.nodes[i].inputs[1] = g.add_constant(g.unique_name(w.name + "/" + quant_mode_name(q.mode)), std::move(fq));
      const auto [lo, hi] = std::minmax_element(scales.begin(), scales.end());
      note += "; weights per output channel, " + std::to_string(scales.size()) + " scales in [" + scale_text(*lo) + ", " + scale_text(*hi) + "]";
    } else {
      note += acts == 2 ? " (both operands per tensor)" : "; weights as given";
    }
    g.nodes[i].notes.push_back(note);
    ++layers;
  }
  if (!layers) return 0;
  std::vector<Node> nodes;
  for (size_t i = 0; i < original; ++i) {
    for (Node& a : before[i]) nodes.push_back(std::move(a));
    nodes.push_back(std::move(g.nodes[i]));
  }
  g.nodes = std::move(nodes);
  g.relink();
  return layers;
}

}  // namespace unirt
