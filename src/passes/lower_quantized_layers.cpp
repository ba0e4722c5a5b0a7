// Q -> DQ -> unirt.Linear chains become unirt.QuantizedLinear: an 8-bit GEMM that reads the
// quantized tensor itself (the DequantizeLinear disappears), with the weights stored as int8 /
// float8 E4M3FN codes [N, K] and the two scales folded into one per-channel alpha. Where the
// Linear's GELU output is read only by a QuantizeLinear of the same 8-bit type, that Q is folded
// into the GEMM's epilogue too (fc1 writes fc2's 8-bit input directly), a LayerNormalization
// read only by a QuantizeLinear becomes unirt.LayerNormQuantize (the norm writes the codes), and a
// depthwise unirt.ConvNHWC, a residual QuantizedLinear or a unirt.Attention read by a
// QuantizeLinear writes the codes too (q_scale).
//
// Works on what the placement pass writes and on explicit QDQ graphs alike (onnxruntime's
// quantize_static): the conditions are only what the kernel computes exactly —
//   - the DQ has a constant per-tensor scale > 0 and a zero point of 0 (symmetric);
//   - the weight is a float32 constant [K, N] whose every column lies on a symmetric per-channel
//     grid (max |w| a code times the scale: weight_codes below): fake-quantized weights, or a
//     folded weight DequantizeLinear;
//     a float weight off the grid keeps the layer in float (quantizing it would change the model);
//   - K and N are multiples of 16 (16-byte rows for the tensor-memory copies);
//   - a GELU Linear is lowered only together with its output QuantizeLinear (the GEMM with a
//     float16 output has no GELU epilogue).
// Runs for FP16 CUDA engines (PipelineOptions::quantized_kernels), after the float fusions and
// before assign_precision, so alpha and bias are computed from float32 values.
#include <algorithm>
#include <cmath>
#include <optional>

#include "backend/float8_rule.h"
#include "ir/half.h"
#include "passes/fusions.h"
#include "passes/match_util.h"

namespace unirt {
namespace {

bool is_8bit(DType t) { return t == DType::Int8 || t == DType::Float8E4M3FN; }

float scalar_of(const TensorData& t) {
  if (t.dtype == DType::Float32) return t.as<float>()[0];
  if (t.dtype == DType::Float16) return half_to_float(t.as<uint16_t>()[0]);
  return NAN;
}

// The scale of a QuantizeLinear / DequantizeLinear that is per tensor and symmetric; nullopt else.
std::optional<float> symmetric_scale(const Graph& g, const Node& n) {
  if (n.inputs.size() < 2 || n.inputs[1] < 0 || n.attr_i("block_size", 0) != 0) return std::nullopt;
  const Value& s = g.value(n.inputs[1]);
  if (!s.data || s.data->numel() != 1) return std::nullopt;
  const float scale = scalar_of(*s.data);
  if (!(scale > 0.f) || !std::isfinite(scale)) return std::nullopt;
  if (n.has_input(2)) {
    const Value& z = g.value(n.inputs[2]);
    if (!z.data || z.data->numel() != 1 || z.data->bytes.empty() || z.data->bytes[0] != 0) return std::nullopt;
  }
  return scale;
}

// Column n of W [K, N] (stride N) as codes at scale s, when every value lies on that grid.
bool column_on_grid(const float* v, int64_t K, int64_t N, int64_t n, float s, float amax, DType t, uint8_t* codes) {
  for (int64_t k = 0; k < K; ++k) {
    const float x = v[k * N + n];
    float back;
    uint8_t c;
    if (t == DType::Int8) {
      const float q = std::nearbyint(x / s);
      if (std::fabs(q) > 127.f) return false;
      c = static_cast<uint8_t>(static_cast<int8_t>(q));
      back = q * s;
    } else {
      c = float_to_e4m3fn(x / s, true);
      back = e4m3fn_to_float(c) * s;
    }
    if (std::fabs(back - x) > 1e-5f * amax) return false;  // not on the grid
    codes[k] = c;
  }
  return true;
}

// W [K, N] float32 on a per-column symmetric grid -> codes [N, K] and the column scales. The
// column's largest |w| is its largest code times the scale: the full range (max |w| / 127 or
// / 448, what unirt's placement and onnxruntime write) is tried first, then every smaller code
// (modelopt's FP8 weights, for one, use a fraction of E4M3's range), so the scale the graph gave
// is honoured whichever it was.
bool weight_codes(const TensorData& w, DType t, TensorData& codes, std::vector<float>& scale) {
  if (w.dtype != DType::Float32 || w.shape.size() != 2) return false;
  const int64_t K = w.shape[0], N = w.shape[1];
  const float* v = w.as<float>();
  codes.dtype = t;
  codes.shape = {N, K};
  codes.bytes.assign(static_cast<size_t>(N * K), 0);
  scale.assign(static_cast<size_t>(N), 1.f);
  std::vector<uint8_t> col(static_cast<size_t>(K));
  for (int64_t n = 0; n < N; ++n) {
    float amax = 0.f;
    for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(v[k * N + n]));
    if (!std::isfinite(amax)) return false;
    if (amax == 0.f) continue;  // an all-zero column: codes 0
    bool found = false;
    // int8: largest code 127 down to 1; E4M3FN: the positive finite codes 0x7E (448) down to 0x01.
    for (int top = t == DType::Int8 ? 127 : 0x7E; top >= 1 && !found; --top) {
      const float cmax = t == DType::Int8 ? static_cast<float>(top) : e4m3fn_to_float(static_cast<uint8_t>(top));
      const float s = amax / cmax;
      if (column_on_grid(v, K, N, n, s, amax, t, col.data())) {
        scale[n] = s;
        std::copy(col.begin(), col.end(), codes.bytes.begin() + n * K);
        found = true;
      }
    }
    if (!found) return false;
  }
  return true;
}

}  // namespace

int lower_quantized_layers(Graph& g) {
  int lowered = 0;
  auto cons = g.consumers();
  const size_t original = g.nodes.size();
  for (size_t i = 0; i < original; ++i) {
    if (g.nodes[i].op_type != "unirt.Linear") continue;
    const Node lin = g.nodes[i];  // a copy: adding constants may move nodes' storage
    const Value& xv = g.value(lin.inputs[0]);
    if (xv.producer < 0 || g.nodes[xv.producer].op_type != "DequantizeLinear") continue;
    const Node& dq = g.nodes[xv.producer];
    const DType t = g.value(dq.inputs[0]).dtype;
    const auto sx = symmetric_scale(g, dq);
    if (!is_8bit(t) || !sx) continue;
    const Value& wv = g.value(lin.inputs[1]);
    if (!wv.data || wv.data->shape.size() != 2) continue;
    const int64_t K = wv.data->shape[0], N = wv.data->shape[1];
    if (K % 16 || N % 16 || K == 0 || N == 0) continue;
    if (lin.has_input(2) && (!g.value(lin.inputs[2]).data || g.value(lin.inputs[2]).data->dtype != DType::Float32)) continue;
    const bool gelu = lin.attr_s("activation", "") == "gelu";
    // A GELU layer: only with the QuantizeLinear of its output folded in.
    int qi = -1;
    std::optional<float> sy;
    if (gelu) {
      if (lin.has_input(3)) continue;
      qi = sole_consumer(g, cons, lin.outputs[0]);
      if (qi < 0 || g.nodes[qi].op_type != "QuantizeLinear" || g.nodes[qi].attr_i("saturate", 1) == 0) continue;
      sy = symmetric_scale(g, g.nodes[qi]);
      if (!sy || g.value(g.nodes[qi].outputs[0]).dtype != t) continue;
    }
    TensorData codes;
    std::vector<float> sw;
    if (!weight_codes(*wv.data, t, codes, sw)) continue;
    std::vector<float> alpha(sw.size());
    for (size_t n = 0; n < sw.size(); ++n) alpha[n] = *sx * sw[n];
    Node ql;
    ql.name = lin.name;
    ql.op_type = "unirt.QuantizedLinear";
    ql.domain = lin.domain;
    ql.notes = lin.notes;
    const std::string base = g.unique_name(lin.name + "/quantized");
    const int wq = g.add_constant(base + "/weight", std::move(codes));
    const int al = g.add_constant(base + "/alpha", TensorData::from_float(alpha, {N}));
    ql.inputs = {dq.inputs[0], wq, al, lin.has_input(2) ? lin.inputs[2] : -1, lin.has_input(3) ? lin.inputs[3] : -1};
    while (!ql.inputs.empty() && ql.inputs.back() < 0) ql.inputs.pop_back();
    ql.outputs = lin.outputs;
    ql.attrs["output_dtype"] = static_cast<int64_t>(g.value(lin.outputs[0]).dtype);
    const char* tn = t == DType::Int8 ? "int8" : "fp8";
    char note[160];
    std::snprintf(note, sizeof note, "%s GEMM: reads '%s' (scale %.6g) directly; weights as %s codes, %lld channel scales", tn,
                  g.value(dq.inputs[0]).name.c_str(), *sx, tn, static_cast<long long>(N));
    ql.notes.push_back(note);
    if (gelu) {
      Node& q = g.nodes[qi];
      ql.attrs["activation"] = std::string("gelu");
      ql.attrs["out_scale"] = *sy;
      ql.attrs["output_dtype"] = static_cast<int64_t>(t);
      ql.outputs = q.outputs;
      std::snprintf(note, sizeof note, "QuantizeLinear '%s' (scale %.6g) in its epilogue: writes %s", q.name.c_str(), *sy, tn);
      ql.notes.push_back(note);
      q.op_type.clear();
    }
    g.nodes[i] = std::move(ql);
    ++lowered;
  }
  if (lowered) g.relink();  // the DequantizeLinear nodes are left to eliminate_dead_code

  // LayerNormalization (last axis, float32 Scale/B) read only by a symmetric per-tensor
  // QuantizeLinear -> unirt.LayerNormQuantize: the norm writes the 8-bit codes itself.
  cons = g.consumers();
  int norms = 0;
  for (auto& q : g.nodes) {
    if (q.op_type != "QuantizeLinear" || q.attr_i("saturate", 1) == 0) continue;
    const auto s = symmetric_scale(g, q);
    const Value& xv = g.value(q.inputs[0]);
    if (!s || !is_8bit(g.value(q.outputs[0]).dtype) || xv.producer < 0 || !xv.has_shape || xv.shape.empty()) continue;
    Node& ln = g.nodes[xv.producer];
    if (ln.op_type != "LayerNormalization" || sole_consumer(g, cons, q.inputs[0]) < 0) continue;
    const int64_t rank = static_cast<int64_t>(xv.shape.size());
    const int64_t axis = ln.attr_i("axis", -1);
    if (axis != -1 && axis != rank - 1) continue;
    bool stats_used = false;
    for (size_t k = 1; k < ln.outputs.size(); ++k) stats_used = stats_used || (ln.outputs[k] >= 0 && !cons[ln.outputs[k]].empty());
    if (stats_used) continue;
    bool params_ok = true;
    for (int k = 1; k <= 2; ++k) {
      if (!ln.has_input(k)) continue;
      const Value& p = g.value(ln.inputs[k]);
      params_ok = params_ok && p.data && p.data->dtype == DType::Float32 && p.data->shape.size() == 1 && xv.shape.back().is_const(p.data->shape[0]);
    }
    if (!params_ok || !ln.has_input(1)) continue;
    Node f;
    f.name = ln.name;
    f.op_type = "unirt.LayerNormQuantize";
    f.notes = ln.notes;
    f.inputs = {ln.inputs[0], ln.inputs[1]};
    if (ln.has_input(2)) f.inputs.push_back(ln.inputs[2]);
    f.outputs = q.outputs;
    f.attrs["epsilon"] = ln.attr_f("epsilon", 1e-5f);
    f.attrs["y_scale"] = *s;
    f.attrs["output_dtype"] = static_cast<int64_t>(g.value(q.outputs[0]).dtype);
    char note[160];
    std::snprintf(note, sizeof note, "QuantizeLinear '%s' (scale %.6g) fused: writes %s", q.name.c_str(), *s,
                  dtype_name(g.value(q.outputs[0]).dtype));
    f.notes.push_back(note);
    ln = std::move(f);
    q.op_type.clear();
    ++norms;
  }
  if (norms) g.relink();

  // A depthwise unirt.ConvNHWC (the CBlocks' 5x5 token mixer, the pos_embed 3x3 with its residual)
  // whose output a symmetric per-tensor QuantizeLinear reads: the conv writes the codes as well
  // (q_scale), in place of its float output when the Q is its only reader, as a second output
  // otherwise (the residual stream is also read by a later Add). Likewise a float16
  // unirt.QuantizedLinear with a residual (conv2 + x, read by the next fc1's Q and its residual:
  // a second output only), and a unirt.Attention read only by the projection's Q (in place only).
  cons = g.consumers();
  int producers = 0;
  for (auto& q : g.nodes) {
    if (q.op_type != "QuantizeLinear" || q.attr_i("saturate", 1) == 0) continue;
    const auto s = symmetric_scale(g, q);
    const DType t = g.value(q.outputs[0]).dtype;
    const Value& xv = g.value(q.inputs[0]);
    if (!s || !is_8bit(t) || xv.producer < 0) continue;
    Node& p = g.nodes[xv.producer];
    if (p.has_attr("q_scale") || p.outputs.size() != 1) continue;
    const bool only_reader = sole_consumer(g, cons, q.inputs[0]) >= 0;
    bool in_place = false;
    if (p.op_type == "unirt.QuantizedLinear") {
      // The codes are of X's type (the epilogue stores A's element type).
      if (only_reader || p.attr_f("out_scale", 0.f) > 0.f || !p.has_input(4) || g.value(p.inputs[0]).dtype != t) continue;
    } else if (p.op_type == "unirt.Attention") {
      if (!only_reader) continue;
      in_place = true;
    } else if (p.op_type == "unirt.ConvNHWC") {
      const Value& w = g.value(p.inputs[1]);
      const int64_t group = p.attr_i("group", 1);
      if (group < 2 || !w.has_shape || w.shape.size() != 4 || !w.shape[2].is_const(1) || !w.shape[3].is_const(group)) continue;
      in_place = only_reader;
    } else {
      continue;
    }
    p.attrs["q_scale"] = *s;
    if (p.op_type != "unirt.QuantizedLinear") p.attrs["q_dtype"] = static_cast<int64_t>(t);
    if (in_place) p.outputs = q.outputs;
    else p.outputs.push_back(q.outputs[0]);
    char note[200];
    std::snprintf(note, sizeof note, "QuantizeLinear '%s' (scale %.6g) fused: writes %s%s", q.name.c_str(), *s, dtype_name(t),
                  in_place ? "" : " as a second output");
    p.notes.push_back(note);
    q.op_type.clear();
    ++producers;
  }
  if (producers) g.relink();
  return lowered + norms + producers;
}

}  // namespace unirt
