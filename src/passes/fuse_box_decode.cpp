// Box decoding as detection exports write it (mmdetection's DeltaXYWHBBoxCoder.decode, unirt_models'
// delta2bbox), on (x, y) pairs of the last axis:
//
//   d = deltas * stds;  centre = (r[:2] + r[2:]) * 0.5;  size = r[2:] - r[:2]
//   xy = centre + size * d[:2];  wh = size * exp(clip(d[2:], -max_ratio, max_ratio))
//   out = concat(min(clip(xy - wh * 0.5, 0), bound), min(clip(xy + wh * 0.5, 0), bound))
//
// (the Min with bound optional) becomes one unirt.BoxDecode(rois, deltas[, bound]): a dozen
// elementwise passes over every candidate box (80k per image in a box head) become one. The same
// float32 operations in the same order, so the boxes are bit-equal to the unfused graph's.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "passes/fusions.h"
#include "passes/match_util.h"

namespace unirt {
namespace {

int producer_of(const Graph& g, int v, const char* op) {
  if (v < 0) return -1;
  const int p = g.value(v).producer;
  return p >= 0 && g.nodes[p].op_type == op ? p : -1;
}

std::optional<std::vector<int64_t>> const_ints(const Graph& g, const Node& n, size_t i) {
  if (i >= n.inputs.size() || n.inputs[i] < 0) return std::nullopt;
  const Value& v = g.value(n.inputs[i]);
  if (!v.data || (v.data->dtype != DType::Int64 && v.data->dtype != DType::Int32)) return std::nullopt;
  return v.data->to_int64();
}

// A Slice of the last axis of a [..., 4] tensor taking elements [begin, begin + 2): the source, or -1.
int pair_slice(const Graph& g, int v, int64_t begin) {
  const int p = producer_of(g, v, "Slice");
  if (p < 0) return -1;
  const Node& s = g.nodes[p];
  const Value& src = g.value(s.inputs[0]);
  if (!src.has_shape || src.shape.empty() || !src.shape.back().is_const() || src.shape.back().value() != 4) return -1;
  const auto starts = const_ints(g, s, 1), ends = const_ints(g, s, 2);
  if (!starts || !ends || starts->size() != 1 || ends->size() != 1) return -1;
  const int64_t rank = static_cast<int64_t>(src.shape.size());
  if (s.inputs.size() > 3 && s.inputs[3] >= 0) {
    const auto axes = const_ints(g, s, 3);
    if (!axes || axes->size() != 1 || ((*axes)[0] != -1 && (*axes)[0] != rank - 1)) return -1;
  } else if (rank != 1) {
    return -1;  // no axes: axis 0, which is the last one only for a 1-D tensor
  }
  if (s.inputs.size() > 4 && s.inputs[4] >= 0) {
    const auto steps = const_ints(g, s, 4);
    if (!steps || steps->size() != 1 || (*steps)[0] != 1) return -1;
  }
  const int64_t b = (*starts)[0] < 0 ? (*starts)[0] + 4 : (*starts)[0];
  const int64_t e = std::min<int64_t>((*ends)[0] < 0 ? (*ends)[0] + 4 : (*ends)[0], 4);
  return b == begin && e == begin + 2 ? s.inputs[0] : -1;
}

// The other input of a two-input node when one of them is `v`, else -1.
int other_input(const Node& n, int v) {
  if (n.inputs.size() != 2) return -1;
  if (n.inputs[0] == v) return n.inputs[1];
  if (n.inputs[1] == v) return n.inputs[0];
  return -1;
}

// Mul(x, constant c) in either order: x, or -1.
int times_const(const Graph& g, int v, float c) {
  const int p = producer_of(g, v, "Mul");
  if (p < 0) return -1;
  const Node& m = g.nodes[p];
  for (int k = 0; k < 2; ++k)
    if (is_scalar_const(g, m.inputs[k], c, 0.f)) return m.inputs[1 - k];
  return -1;
}

// Clip(x, min, max) with constant scalar bounds (max absent: +inf): x, or -1.
int clip_of(const Graph& g, int v, float* lo, float* hi) {
  const int p = producer_of(g, v, "Clip");
  if (p < 0) return -1;
  const Node& c = g.nodes[p];
  auto bound = [&](size_t i, float dflt, float* out) {
    if (i >= c.inputs.size() || c.inputs[i] < 0) return *out = dflt, true;
    const Value& b = g.value(c.inputs[i]);
    if (!b.data || b.data->numel() != 1 || b.data->dtype != DType::Float32) return false;
    *out = b.data->to_float()[0];
    return true;
  };
  if (c.has_attr("min") || c.has_attr("max")) return -1;  // opset < 11 form: not what exports write today
  if (!bound(1, -std::numeric_limits<float>::infinity(), lo) || !bound(2, std::numeric_limits<float>::infinity(), hi)) return -1;
  return c.inputs[0];
}

struct Match {
  int rois = -1, deltas = -1, bound = -1, out = -1;
  std::vector<float> stds;
  float max_ratio = 0;
  std::vector<int> nodes;  // the matched nodes, for the note
};

// From the Exp of the width/height deltas outward; every check names what the formula needs.
std::optional<Match> match_at(const Graph& g, const std::vector<std::vector<int>>& cons, int exp_node) {
  Match m;
  const Node& e = g.nodes[exp_node];
  float lo = 0, hi = 0;
  const int dwh = clip_of(g, e.inputs[0], &lo, &hi);
  if (dwh < 0 || !(hi > 0) || lo != -hi || !std::isfinite(hi)) return std::nullopt;
  m.max_ratio = hi;
  const int scaled = pair_slice(g, dwh, 2);
  const int mul_std = producer_of(g, scaled, "Mul");
  if (mul_std < 0) return std::nullopt;
  {
    const Node& ms = g.nodes[mul_std];
    for (int k = 0; k < 2; ++k) {
      const Value& c = g.value(ms.inputs[k]);
      if (c.data && c.data->dtype == DType::Float32 && c.data->numel() == 4 && c.data->shape.size() == 1) {
        m.stds = c.data->to_float();
        m.deltas = ms.inputs[1 - k];
      }
    }
  }
  if (m.deltas < 0 || g.value(m.deltas).dtype != DType::Float32) return std::nullopt;
  // wh = size * exp(...), half = wh * 0.5
  const int ev = e.outputs[0];
  const int mul_wh = sole_consumer(g, cons, ev);
  if (mul_wh < 0 || g.nodes[mul_wh].op_type != "Mul") return std::nullopt;
  const int size = other_input(g.nodes[mul_wh], ev);
  const int sub_size = producer_of(g, size, "Sub");
  if (sub_size < 0) return std::nullopt;
  m.rois = pair_slice(g, g.nodes[sub_size].inputs[0], 2);
  if (m.rois < 0 || pair_slice(g, g.nodes[sub_size].inputs[1], 0) != m.rois || g.value(m.rois).dtype != DType::Float32) return std::nullopt;
  const int half_node = sole_consumer(g, cons, g.nodes[mul_wh].outputs[0]);
  if (half_node < 0 || g.nodes[half_node].op_type != "Mul" || times_const(g, g.nodes[half_node].outputs[0], 0.5f) != g.nodes[mul_wh].outputs[0])
    return std::nullopt;
  const int half = g.nodes[half_node].outputs[0];
  if (cons[half].size() != 2 || g.is_graph_output(half)) return std::nullopt;
  int sub_lo = -1, add_hi = -1;
  for (int c : cons[half]) {
    if (g.nodes[c].op_type == "Sub" && g.nodes[c].inputs[1] == half) sub_lo = c;
    if (g.nodes[c].op_type == "Add") add_hi = c;
  }
  if (sub_lo < 0 || add_hi < 0) return std::nullopt;
  // xy = centre + size * d[:2] is the other operand of both.
  const int xy = g.nodes[sub_lo].inputs[0];
  if (other_input(g.nodes[add_hi], half) != xy) return std::nullopt;
  const int add_xy = producer_of(g, xy, "Add");
  if (add_xy < 0) return std::nullopt;
  bool xy_ok = false;
  for (int k = 0; k < 2 && !xy_ok; ++k) {
    const int shift = producer_of(g, g.nodes[add_xy].inputs[k], "Mul");
    const int centre_sum = times_const(g, g.nodes[add_xy].inputs[1 - k], 0.5f);
    const int add_c = producer_of(g, centre_sum, "Add");
    if (shift < 0 || add_c < 0) continue;
    const int dxy = other_input(g.nodes[shift], size);
    const bool centre_ok = (pair_slice(g, g.nodes[add_c].inputs[0], 0) == m.rois && pair_slice(g, g.nodes[add_c].inputs[1], 2) == m.rois) ||
                           (pair_slice(g, g.nodes[add_c].inputs[0], 2) == m.rois && pair_slice(g, g.nodes[add_c].inputs[1], 0) == m.rois);
    xy_ok = dxy >= 0 && pair_slice(g, dxy, 0) == g.nodes[mul_std].outputs[0] && centre_ok;
  }
  if (!xy_ok) return std::nullopt;
  // Each side: Clip(min 0), then Min(bound) or not, into one Concat of the last axis.
  int concat = -1;
  int ends[2] = {-1, -1}, bounds[2] = {-1, -1};
  const int sides[2] = {g.nodes[sub_lo].outputs[0], g.nodes[add_hi].outputs[0]};
  for (int s = 0; s < 2; ++s) {
    const int clip = sole_consumer(g, cons, sides[s]);
    if (clip < 0 || g.nodes[clip].op_type != "Clip") return std::nullopt;
    float cl = 0, ch = 0;
    if (clip_of(g, g.nodes[clip].outputs[0], &cl, &ch) != sides[s] || cl != 0.f || !std::isinf(ch) || ch < 0) return std::nullopt;
    int v = g.nodes[clip].outputs[0];
    int next = sole_consumer(g, cons, v);
    if (next >= 0 && g.nodes[next].op_type == "Min") {
      bounds[s] = other_input(g.nodes[next], v);
      v = g.nodes[next].outputs[0];
      next = sole_consumer(g, cons, v);
    }
    if (next < 0 || g.nodes[next].op_type != "Concat" || (concat >= 0 && next != concat)) return std::nullopt;
    concat = next;
    ends[s] = v;
  }
  const Node& cat = g.nodes[concat];
  if (cat.inputs.size() != 2 || cat.inputs[0] != ends[0] || cat.inputs[1] != ends[1]) return std::nullopt;
  const Value& outv = g.value(cat.outputs[0]);
  if (!outv.has_shape || outv.shape.empty()) return std::nullopt;
  const int64_t axis = cat.attr_i("axis", 0);
  if (axis != -1 && axis != static_cast<int64_t>(outv.shape.size()) - 1) return std::nullopt;
  if (bounds[0] != bounds[1]) return std::nullopt;  // both sides clipped to one bound, or neither
  if (bounds[0] >= 0) {
    const Value& b = g.value(bounds[0]);
    if (b.dtype != DType::Float32 || !b.has_shape || b.shape.size() != 1 || !b.shape[0].is_const() || b.shape[0].value() != 2)
      return std::nullopt;
    m.bound = bounds[0];
  }
  // The output is deltas-shaped; rois broadcast to it (an Expand left in place is fine too).
  const Value& dv = g.value(m.deltas);
  const Value& rv = g.value(m.rois);
  if (!dv.has_shape || !rv.has_shape || dv.shape.size() != outv.shape.size() || rv.shape.size() != dv.shape.size()) return std::nullopt;
  for (size_t i = 0; i < dv.shape.size(); ++i) {
    if (!same(outv.shape[i], dv.shape[i])) return std::nullopt;
    if (!same(rv.shape[i], dv.shape[i]) && !(rv.shape[i].is_const() && rv.shape[i].value() == 1)) return std::nullopt;
  }
  m.out = cat.outputs[0];
  m.nodes = {exp_node, mul_std, mul_wh, sub_size, half_node, sub_lo, add_hi, add_xy, concat};
  return m;
}

}  // namespace

int fuse_box_decode(Graph& g) {
  int fused = 0;
  auto cons = g.consumers();
  const size_t count = g.nodes.size();
  for (size_t i = 0; i < count; ++i) {
    if (g.nodes[i].op_type != "Exp") continue;
    const auto m = match_at(g, cons, static_cast<int>(i));
    if (!m) continue;
    Node f;
    f.name = g.unique_name(g.nodes[g.value(m->out).producer].name + "/box_decode");
    f.op_type = "unirt.BoxDecode";
    f.inputs = {m->rois, m->deltas};
    if (m->bound >= 0) f.inputs.push_back(m->bound);
    f.outputs = {m->out};
    f.attrs["stds"] = m->stds;
    f.attrs["max_ratio"] = m->max_ratio;
    f.notes.push_back("fused the delta decoding (" + g.nodes[i].name + " ... " + g.nodes[g.value(m->out).producer].name +
                      "): one pass over the boxes");
    // The Concat stops writing the output; what no longer has a reader is dead code.
    g.nodes[g.value(m->out).producer].op_type.clear();
    add_fused_node(g, std::move(f), cons);
    ++fused;
  }
  if (fused) g.compact();
  return fused;
}

}  // namespace unirt
