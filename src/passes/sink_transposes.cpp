// convert_to_nhwc step 3: transposes sunk towards the outputs until they meet their inverse and vanish:
//   - through element-wise ops (unary; binary when the other operand carries the same transpose
//     or is a constant, which is permuted at build time), QuantizeLinear / DequantizeLinear among
//     them (per tensor as they are; per axis with the axis renumbered; blocked ones stay),
//   - through Reshapes that merge or split dims that stay adjacent in the channels-last order
//     (UniFormer's x.flatten(2).transpose(1, 2) and its inverse at the end of each SABlock),
//   - into another Transpose (composed; identity removed),
//   - under a Shape (read from the source and permuted),
//   - through Resize, whose sizes or scales are permuted with it (the FPN's nearest upsampling).
// What is left is a transpose where channels-last meets an op that needs NCHW (graph outputs,
// Pad, window partitions), i.e. reformats only where needed.
#include <algorithm>
#include <cstring>
#include <set>

#include "passes/layout_nhwc.h"

namespace unirt {
namespace {

const std::set<std::string> kUnary = {"Gelu", "Relu", "Sigmoid", "Tanh", "Erf", "Cast", "Sqrt", "Neg", "Abs", "Exp", "Log",
                                      "Reciprocal", "Clip", "Identity", "Softplus", "LeakyRelu", "HardSigmoid", "HardSwish"};
const std::set<std::string> kBinary = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"};

bool is_scalar_value(const Graph& g, int v) { return v < 0 || (g.value(v).data && g.value(v).data->numel() == 1); }

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
  // A new value holding v's elements in `order` (a Gather by constant indices, evaluated with the
  // shapes), named after v and the consumer `user`.
  int permuted_values(int v, const Perm& order, const std::string& user, const char* tag) {
    const std::string name = g_.value(v).name;
    const DType type = g_.value(v).dtype;
    const int idx = g_.add_constant(g_.unique_name(name + "/nhwc_order"), TensorData::from_int64(order, {static_cast<int64_t>(order.size())}));
    const int out = g_.add_value(g_.unique_name(name + "/nhwc"), type);
    Node gn;
    gn.name = g_.unique_name(user + "/" + tag);
    gn.op_type = "Gather";
    gn.inputs = {v, idx};
    gn.outputs = {out};
    gn.attrs["axis"] = int64_t{0};
    g_.add_node(std::move(gn));
    return out;
  }

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
    if ((u.op_type == "QuantizeLinear" || u.op_type == "DequantizeLinear") && u.inputs[0] == x && u.outputs.size() == 1 &&
        u.attr_i("block_size", 0) == 0) {
      // Scale and zero point are constants of one element (per tensor) or of x.shape[axis]
      // elements (per axis): on the untransposed input that axis is p[axis].
      const int64_t rank = static_cast<int64_t>(p.size());
      for (size_t k = 1; k < u.inputs.size(); ++k)
        if (u.inputs[k] >= 0 && !g_.value(u.inputs[k]).data) return false;
      const bool per_tensor = is_scalar_value(g_, u.inputs[1]);
      if (!per_tensor) {
        int64_t axis = u.attr_i("axis", 1);
        if (axis < 0) axis += rank;
        if (axis < 0 || axis >= rank) return false;
        u.attrs["axis"] = p[static_cast<size_t>(axis)];
      }
      u.inputs[0] = a;
      reroute_output(u, p);
      return true;
    }
    if (kBinary.count(u.op_type) && u.inputs.size() == 2 && u.outputs.size() == 1) return sink_binary(ti, ci, p);
    if (u.op_type == "Reshape" && u.inputs[0] == x) return sink_reshape(ti, ci, p);
    if (u.op_type == "Resize" && u.inputs[0] == x) return sink_resize(ti, ci, p);
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

  // Resize(Transpose(a, p), sizes) == Transpose(Resize(a, sizes'), p) with sizes'[p[i]] = sizes[i]
  // (each axis is resized on its own); the same for scales. roi must be absent (it only matters
  // for tf_crop_and_resize, which unirt refuses).
  bool sink_resize(int ti, int ci, const Perm& p) {
    const int a = g_.nodes[ti].inputs[0];
    Node& u = g_.nodes[ci];
    if (u.outputs.size() != 1 || (u.inputs.size() > 1 && u.inputs[1] >= 0 && !g_.value(u.inputs[1]).is_const())) return false;
    const Perm inv = invert(p);
    const size_t r = p.size();
    std::vector<int> repl(u.inputs.size(), -1);
    for (size_t k = 2; k < u.inputs.size() && k < 4; ++k) {
      const int v = u.inputs[k];
      if (v < 0) continue;
      const Value& val = g_.value(v);
      if (val.data && val.data->numel() == 0) continue;
      if (val.data) {
        if (val.data->numel() != static_cast<int64_t>(r)) return false;
        TensorData c = *val.data;
        const size_t es = dtype_size(c.dtype);
        for (size_t j = 0; j < r; ++j) std::memcpy(c.bytes.data() + j * es, val.data->bytes.data() + inv[j] * es, es);
        repl[k] = g_.add_constant(g_.unique_name(val.name + "/nhwc"), c);
      } else if (val.sym_value && val.sym_value->size() == r) {
        repl[k] = permuted_values(v, inv, u.name, "nhwc_sizes");
      } else {
        return false;
      }
    }
    Node& uu = g_.nodes[ci];
    uu.inputs[0] = a;
    for (size_t k = 2; k < repl.size(); ++k)
      if (repl[k] >= 0) uu.inputs[k] = repl[k];
    reroute_output(uu, p);
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
      s2 = permuted_values(s, gather, u.name, "nhwc_shape");
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

}  // namespace

int sink_transposes(Graph& g) { return Sinker(g).sweep(); }

}  // namespace unirt
