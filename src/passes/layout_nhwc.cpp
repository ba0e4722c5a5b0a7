// Channels-last layout for convolution regions, TensorRT-style: every 4-D Conv becomes
//   Transpose(NCHW -> NHWC) -> unirt.ConvNHWC or unirt.Linear (1x1) -> Transpose(NHWC -> NCHW)
// and the transposes are then sunk towards the outputs until they meet their inverse and vanish:
//   - through element-wise ops (unary; binary when the other operand carries the same transpose
//     or is a constant, which is permuted at build time),
//   - through Reshapes that merge or split dims that stay adjacent in the channels-last order
//     (UniFormer's x.flatten(2).transpose(1, 2) and its inverse at the end of each SABlock),
//   - into another Transpose (composed; identity removed).
// What is left is a transpose where channels-last meets an op that needs NCHW (graph outputs,
// Pad, window partitions), i.e. reformats only where needed.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include "passes/fusions.h"
#include "passes/pipeline.h"
#include "passes/shape_inference.h"

namespace unirt {
namespace {

using Perm = std::vector<int64_t>;

Perm invert(const Perm& p) {
  Perm r(p.size());
  for (size_t i = 0; i < p.size(); ++i) r[p[i]] = static_cast<int64_t>(i);
  return r;
}
// Transpose(Transpose(a, p), q) == Transpose(a, compose(p, q)).
Perm compose(const Perm& p, const Perm& q) {
  Perm r(q.size());
  for (size_t i = 0; i < q.size(); ++i) r[i] = p[q[i]];
  return r;
}
bool is_identity(const Perm& p) {
  for (size_t i = 0; i < p.size(); ++i)
    if (p[i] != static_cast<int64_t>(i)) return false;
  return true;
}

// out.shape[i] = in.shape[perm[i]], any element type.
TensorData transpose_data(const TensorData& t, const Perm& perm) {
  TensorData o;
  o.dtype = t.dtype;
  const size_t r = t.shape.size(), es = dtype_size(t.dtype);
  o.shape.resize(r);
  for (size_t i = 0; i < r; ++i) o.shape[i] = t.shape[perm[i]];
  o.bytes.resize(t.bytes.size());
  std::vector<int64_t> in_strides(r, 1);
  for (int i = static_cast<int>(r) - 2; i >= 0; --i) in_strides[i] = in_strides[i + 1] * t.shape[i + 1];
  const int64_t n = t.numel();
  std::vector<int64_t> idx(r, 0);
  for (int64_t e = 0; e < n; ++e) {
    int64_t src = 0;
    for (size_t i = 0; i < r; ++i) src += idx[i] * in_strides[perm[i]];
    std::memcpy(o.bytes.data() + e * es, t.bytes.data() + src * es, es);
    for (int i = static_cast<int>(r) - 1; i >= 0; --i) {
      if (++idx[i] < o.shape[i]) break;
      idx[i] = 0;
    }
  }
  return o;
}

int add_transpose(Graph& g, int input, const Perm& perm, int output, const std::string& base) {
  if (output < 0) output = g.add_value(g.unique_name(base + "/nhwc"), g.value(input).dtype);
  Node t;
  t.name = g.unique_name(base + "/reformat");
  t.op_type = "Transpose";
  t.inputs = {input};
  t.outputs = {output};
  t.attrs["perm"] = perm;
  g.add_node(std::move(t));
  return output;
}

const std::set<std::string> kUnary = {"Gelu", "Relu", "Sigmoid", "Tanh", "Erf", "Cast", "Sqrt", "Neg", "Abs", "Exp", "Log",
                                      "Reciprocal", "Clip", "Identity", "Softplus", "LeakyRelu", "HardSigmoid", "HardSwish"};
const std::set<std::string> kBinary = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"};

bool is_scalar_value(const Graph& g, int v) { return v < 0 || (g.value(v).data && g.value(v).data->numel() == 1); }

// ---- step 1: convolutions to channels-last ----
int wrap_convs(Graph& g) {
  int fired = 0;
  const size_t original = g.nodes.size();
  for (size_t ci = 0; ci < original; ++ci) {
    if (g.nodes[ci].op_type != "Conv") continue;
    const Node conv = g.nodes[ci];
    const Value& x = g.value(conv.inputs[0]);
    if (!x.has_shape || x.shape.size() != 4 || !g.value(conv.inputs[1]).is_const()) continue;
    if (conv.has_input(2) && !g.value(conv.inputs[2]).is_const()) continue;
    const std::string ap = conv.attr_s("auto_pad", "NOTSET");
    if (ap != "NOTSET" && ap != "VALID") continue;
    for (auto d : conv.attr_ints("dilations", {1, 1}))
      if (d != 1) goto next;
    {
      const TensorData& w = *g.value(conv.inputs[1]).data;
      if (w.shape.size() != 4 || (w.dtype != DType::Float32 && w.dtype != DType::Float16)) continue;
      const int64_t group = conv.attr_i("group", 1), cout = w.shape[0], cin_g = w.shape[1];
      const bool depthwise = group > 1 && cin_g == 1 && cout == group;
      if (group != 1 && !depthwise) continue;
      const Perm strides = conv.attr_ints("strides", {1, 1});
      Perm pads = conv.attr_ints("pads", {0, 0, 0, 0});
      if (ap == "VALID") pads = {0, 0, 0, 0};
      const bool pointwise = group == 1 && w.shape[2] == 1 && w.shape[3] == 1 && strides == Perm{1, 1} && pads == Perm{0, 0, 0, 0};
      const int xn = add_transpose(g, conv.inputs[0], {0, 2, 3, 1}, -1, conv.name);
      const int yn = g.add_value(g.unique_name(conv.name + "/out_nhwc"), g.value(conv.outputs[0]).dtype);
      Node n;
      n.name = conv.name;
      n.notes = conv.notes;
      if (pointwise) {
        // [Cout, Cin, 1, 1] -> [Cin, Cout]: the GEMM's B operand, rows = input channels.
        TensorData w2 = w;
        w2.shape = {cout, cin_g};
        w2 = transpose_data(w2, {1, 0});
        n.op_type = "unirt.Linear";
        n.inputs = {xn, g.add_constant(g.unique_name(conv.name + "/weight_io"), std::move(w2))};
        n.notes.push_back("1x1 Conv as a channels-last GEMM");
      } else {
        n.op_type = "unirt.ConvNHWC";
        n.inputs = {xn, g.add_constant(g.unique_name(conv.name + "/weight_hwio"), transpose_data(w, {2, 3, 1, 0}))};
        n.attrs["kernel_shape"] = Perm{w.shape[2], w.shape[3]};
        n.attrs["strides"] = strides;
        n.attrs["pads"] = pads;
        n.attrs["group"] = group;
        n.notes.push_back("channels-last Conv");
      }
      if (conv.has_input(2)) n.inputs.push_back(conv.inputs[2]);
      n.outputs = {yn};
      g.nodes[ci].op_type.clear();
      g.add_node(std::move(n));
      add_transpose(g, yn, {0, 3, 1, 2}, conv.outputs[0], conv.name);
      ++fired;
    }
  next:;
  }
  g.relink();
  return fired;
}

// BatchNormalization on NCHW (inference) as Mul/Add with [C, 1, 1] constants, which sink like any
// element-wise op; the CBlock BNs are folded into their convs before this runs.
int batchnorm_to_affine(Graph& g) {
  int fired = 0;
  const size_t original = g.nodes.size();
  for (size_t i = 0; i < original; ++i) {
    const Node bn = g.nodes[i];
    if (bn.op_type != "BatchNormalization" || bn.outputs.size() != 1 || bn.attr_i("training_mode", 0) != 0) continue;
    if (!g.value(bn.inputs[0]).has_shape || g.value(bn.inputs[0]).shape.size() != 4) continue;
    const DType xtype = g.value(bn.inputs[0]).dtype;
    bool ok = true;
    for (int k = 1; k < 5; ++k) ok &= g.value(bn.inputs[k]).is_const() && g.value(bn.inputs[k]).dtype == DType::Float32;
    if (!ok) continue;
    auto gamma = g.value(bn.inputs[1]).data->to_float(), beta = g.value(bn.inputs[2]).data->to_float();
    auto mean = g.value(bn.inputs[3]).data->to_float(), var = g.value(bn.inputs[4]).data->to_float();
    const int64_t c = static_cast<int64_t>(gamma.size());
    const float eps = bn.attr_f("epsilon", 1e-5f);
    std::vector<float> s(c), t(c);
    for (int64_t k = 0; k < c; ++k) {
      s[k] = gamma[k] / std::sqrt(var[k] + eps);
      t[k] = beta[k] - mean[k] * s[k];
    }
    const int sv = g.add_constant(g.unique_name(bn.name + "/scale"), TensorData::from_float(s, {c, 1, 1}));
    const int tv = g.add_constant(g.unique_name(bn.name + "/shift"), TensorData::from_float(t, {c, 1, 1}));
    const int mid = g.add_value(g.unique_name(bn.name + "/scaled"), xtype);
    Node mul, add;
    mul.name = g.unique_name(bn.name + "/mul");
    mul.op_type = "Mul";
    mul.inputs = {bn.inputs[0], sv};
    mul.outputs = {mid};
    add.name = g.unique_name(bn.name + "/add");
    add.op_type = "Add";
    add.inputs = {mid, tv};
    add.outputs = {bn.outputs[0]};
    add.notes.push_back("BatchNormalization '" + bn.name + "' as a per-channel affine map");
    g.nodes[i].op_type.clear();
    g.add_node(std::move(mul));
    g.add_node(std::move(add));
    ++fired;
  }
  g.relink();
  return fired;
}

// ---- step 2: transpose sinking ----
class Sinker {
 public:
  explicit Sinker(Graph& g) : g_(g) {}

  // One sweep over the transposes; returns the number of rewrites.
  int sweep() {
    int n = 0;
    const size_t count = g_.nodes.size();
    for (size_t ti = 0; ti < count; ++ti) {
      if (g_.nodes[ti].op_type != "Transpose" || !g_.nodes[ti].has_attr("perm")) continue;
      const int x = g_.nodes[ti].outputs[0];
      auto cons = g_.consumers();
      for (int ci : std::vector<int>(cons[x])) {
        if (g_.nodes[ti].op_type != "Transpose") break;
        if (rewrite(static_cast<int>(ti), ci)) ++n;
      }
    }
    return n;
  }

 private:
  // Moves the output of consumer u behind a new Transpose(perm) and returns u's new output value.
  int reroute_output(Node& u, const Perm& perm) {
    const int old_out = u.outputs[0];
    const int z = g_.add_value(g_.unique_name(g_.value(old_out).name + "/nhwc"), g_.value(old_out).dtype);
    g_.nodes[index_of(u)].outputs[0] = z;
    const std::string base = u.name;
    add_transpose(g_, z, perm, old_out, base);
    g_.relink();
    return z;
  }
  int index_of(const Node& n) const { return static_cast<int>(&n - g_.nodes.data()); }

  bool rewrite(int ti, int ci) {
    const Node& t = g_.nodes[ti];
    const int a = t.inputs[0], x = t.outputs[0];
    const Perm p = t.attr_ints("perm");
    Node& u = g_.nodes[ci];
    if (u.op_type.empty()) return false;
    if (u.op_type == "Transpose" && u.has_attr("perm") && u.inputs[0] == x) {
      const Perm r = compose(p, u.attr_ints("perm"));
      if (is_identity(r) && g_.is_graph_output(u.outputs[0])) {
        u.op_type = "Identity";  // the output keeps its name; the copy is all that is left
        u.attrs.clear();
        u.inputs[0] = a;
      } else if (is_identity(r)) {
        const int y = u.outputs[0];
        for (auto& n : g_.nodes)
          for (auto& in : n.inputs)
            if (in == y) in = a;
        u.op_type.clear();
      } else {
        u.inputs[0] = a;
        u.attrs["perm"] = r;
      }
      g_.relink();
      return true;
    }
    if (kUnary.count(u.op_type) && u.outputs.size() == 1 && u.inputs[0] == x) {
      for (size_t k = 1; k < u.inputs.size(); ++k)
        if (!is_scalar_value(g_, u.inputs[k])) return false;
      u.inputs[0] = a;
      reroute_output(u, p);
      return true;
    }
    if (kBinary.count(u.op_type) && u.inputs.size() == 2 && u.outputs.size() == 1) return sink_binary(ti, ci, p);
    if (u.op_type == "Reshape" && u.inputs[0] == x) return sink_reshape(ti, ci, p);
    if (u.op_type == "Shape" && !u.has_attr("start") && !u.has_attr("end")) return shape_of_source(ti, ci, p);
    return false;
  }

  // Shape(Transpose(a, p)) == Gather(Shape(a), p): the transpose's data is no longer needed for it.
  bool shape_of_source(int ti, int ci, const Perm& p) {
    const int a = g_.nodes[ti].inputs[0];
    const int out = g_.nodes[ci].outputs[0];
    const std::string name = g_.nodes[ci].name;
    const int sa = g_.add_value(g_.unique_name(g_.value(out).name + "/source"), DType::Int64);
    const int idx = g_.add_constant(g_.unique_name(name + "/perm"), TensorData::from_int64(p, {static_cast<int64_t>(p.size())}));
    g_.nodes[ci].inputs[0] = a;
    g_.nodes[ci].outputs[0] = sa;
    Node gn;
    gn.name = g_.unique_name(name + "/permuted");
    gn.op_type = "Gather";
    gn.inputs = {sa, idx};
    gn.outputs = {out};
    gn.attrs["axis"] = int64_t{0};
    g_.add_node(std::move(gn));
    g_.relink();
    return true;
  }

  bool sink_binary(int ti, int ci, const Perm& p) {
    const int x = g_.nodes[ti].outputs[0], a = g_.nodes[ti].inputs[0];
    const size_t r = p.size();
    int ins[2];
    for (int k = 0; k < 2; ++k) {
      const int v = g_.nodes[ci].inputs[k];
      if (v == x) {
        ins[k] = a;
        continue;
      }
      const Value& val = g_.value(v);
      const int pr = val.producer;
      if (pr >= 0 && g_.nodes[pr].op_type == "Transpose" && g_.nodes[pr].attr_ints("perm") == p) {
        ins[k] = g_.nodes[pr].inputs[0];
        continue;
      }
      if (val.data && val.data->numel() == 1) {
        ins[k] = v;
        continue;
      }
      if (val.data && val.data->shape.size() <= r) {
        TensorData c = *val.data;
        while (c.shape.size() < r) c.shape.insert(c.shape.begin(), 1);
        ins[k] = g_.add_constant(g_.unique_name(val.name + "/nhwc"), transpose_data(c, invert(p)));
        continue;
      }
      return false;
    }
    Node& u = g_.nodes[ci];
    u.inputs = {ins[0], ins[1]};
    reroute_output(u, p);
    return true;
  }

  // Reshape(Transpose(a, p), s) == Transpose(Reshape(a, s'), q) when the reshape only merges or
  // splits dims that are adjacent and in order in a.
  bool sink_reshape(int ti, int ci, const Perm& p) {
    const int x = g_.nodes[ti].outputs[0], a = g_.nodes[ti].inputs[0];
    Node& u = g_.nodes[ci];
    const Value& xv = g_.value(x);
    const Value& ov = g_.value(u.outputs[0]);
    if (!xv.has_shape || !ov.has_shape || !g_.value(a).has_shape || u.inputs.size() < 2 || u.attr_i("allowzero", 0) != 0) return false;
    const Shape& X = xv.shape;
    const Shape& O = ov.shape;
    const size_t r = X.size(), m = O.size();
    // Groups of consecutive input dims and output dims with equal products (1:1, k:1 or 1:k).
    struct Group {
      size_t in0, in_n, out0, out_n;
    };
    std::vector<Group> groups;
    size_t i = 0, j = 0;
    while (i < r && j < m) {
      if (same(X[i], O[j])) {
        groups.push_back({i, 1, j, 1});
        ++i, ++j;
        continue;
      }
      bool found = false;
      Dim prod = X[i];
      for (size_t k = 2; i + k <= r && !found; ++k) {
        prod = prod * X[i + k - 1];
        if (same(prod, O[j])) {
          groups.push_back({i, k, j, 1});
          i += k, ++j;
          found = true;
        }
      }
      if (!found) prod = O[j];
      for (size_t k = 2; !found && j + k <= m; ++k) {
        prod = prod * O[j + k - 1];
        if (same(prod, X[i])) {
          groups.push_back({i, 1, j, k});
          ++i, j += k;
          found = true;
        }
      }
      if (!found) return false;
    }
    if (i != r || j != m) return false;
    for (const Group& gr : groups)
      for (size_t k = 1; k < gr.in_n; ++k)
        if (p[gr.in0 + k] != p[gr.in0] + 1) return false;
    std::vector<size_t> order(groups.size());
    for (size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::sort(order.begin(), order.end(), [&](size_t l, size_t rr) { return p[groups[l].in0] < p[groups[rr].in0]; });
    Perm gather;   // new output dim -> original output dim
    Perm q(m, 0);  // original output dim -> new position
    for (size_t k : order)
      for (size_t e = 0; e < groups[k].out_n; ++e) {
        q[groups[k].out0 + e] = static_cast<int64_t>(gather.size());
        gather.push_back(static_cast<int64_t>(groups[k].out0 + e));
      }
    // The target must hold explicit sizes (a 0 would copy a dim by position, which moves).
    const int s = u.inputs[1];
    const std::string s_name = g_.value(s).name;
    const DType s_type = g_.value(s).dtype;
    const std::shared_ptr<TensorData> s_data = g_.value(s).data;
    const std::optional<std::vector<Dim>> s_sym = g_.value(s).sym_value;
    int s2 = -1;
    if (s_data) {
      auto vals = s_data->to_int64();
      if (vals.size() != m) return false;
      std::vector<int64_t> nv;
      for (auto gidx : gather) {
        if (vals[gidx] == 0) return false;
        nv.push_back(vals[gidx]);
      }
      s2 = g_.add_constant(g_.unique_name(s_name + "/nhwc"), TensorData::from_int64(nv, {static_cast<int64_t>(m)}));
    } else if (s_sym) {
      if (s_sym->size() != m) return false;
      for (const Dim& d : *s_sym)
        if (d.is_const(0)) return false;
      const int idx = g_.add_constant(g_.unique_name(s_name + "/nhwc_order"), TensorData::from_int64(gather, {static_cast<int64_t>(m)}));
      s2 = g_.add_value(g_.unique_name(s_name + "/nhwc"), s_type);
      Node gn;
      gn.name = g_.unique_name(u.name + "/nhwc_shape");
      gn.op_type = "Gather";
      gn.inputs = {s, idx};
      gn.outputs = {s2};
      gn.attrs["axis"] = int64_t{0};
      g_.add_node(std::move(gn));
    } else {
      return false;
    }
    Node& uu = g_.nodes[ci];
    uu.inputs[0] = a;
    uu.inputs[1] = s2;
    if (!is_identity(q)) reroute_output(uu, q);
    g_.relink();
    return true;
  }

  Graph& g_;
};


// A one-group ConvNHWC fed by the NCHW -> NHWC reformat of a tensor nothing else needs in
// channels-last (the image into the first patch embedding) gathers its im2col rows from NCHW.
int absorb_input_reformats(Graph& g) {
  int fired = 0;
  auto cons = g.consumers();
  for (auto& n : g.nodes) {
    if (n.op_type != "unirt.ConvNHWC" || n.attr_i("group", 1) != 1 || n.has_attr("input_layout")) continue;
    const int p = g.value(n.inputs[0]).producer;
    if (p < 0 || g.nodes[p].op_type != "Transpose" || g.nodes[p].attr_ints("perm") != Perm{0, 2, 3, 1}) continue;
    if (cons[n.inputs[0]].size() != 1 || g.is_graph_output(n.inputs[0])) continue;
    n.inputs[0] = g.nodes[p].inputs[0];
    n.attrs["input_layout"] = std::string("NCHW");
    n.notes.push_back("reads its NCHW input directly");
    ++fired;
  }
  if (fired) g.relink();
  return fired;
}

}  // namespace

int convert_to_nhwc(Graph& g) {
  const int convs = wrap_convs(g);
  if (convs == 0) return 0;
  batchnorm_to_affine(g);
  eliminate_dead_code(g);
  infer_shapes(g);
  int rewrites = 0;
  for (int round = 0; round < 200; ++round) {
    Sinker s(g);
    const int n = s.sweep();
    eliminate_dead_code(g);
    infer_shapes(g);
    rewrites += n;
    if (n == 0) break;
  }
  if (absorb_input_reformats(g)) {
    eliminate_dead_code(g);
    infer_shapes(g);
  }
  return convs;
}

}  // namespace unirt
