#include "runtime/planner.h"

#include <algorithm>

namespace unirt {

namespace {
constexpr size_t kAlign = 256;
size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }
}  // namespace

std::string bindings_text(const std::map<std::string, int64_t>& b) {
  std::string s;
  for (const auto& kv : b) s += (s.empty() ? "" : ", ") + kv.first + "=" + std::to_string(kv.second);
  return s.empty() ? "no symbols" : s;
}

namespace {

bool is_data_symbol(const Graph& g, const std::string& s) {
  for (const auto& d : g.data_dims)
    if (d.symbol == s) return true;
  return false;
}

// The data-dependent sizes a dimension mentions.
void data_symbols_of(const Graph& g, const Dim& d, std::vector<std::string>& out) {
  if (d.is_const() || g.data_dims.empty()) return;
  std::map<std::string, DimRange> m;
  d.collect_symbol_ranges(m);
  for (const auto& kv : m)
    if (is_data_symbol(g, kv.first) && std::find(out.begin(), out.end(), kv.first) == out.end()) out.push_back(kv.first);
}

void check_guard(const ShapeGuard& gd, const std::map<std::string, int64_t>& bindings) {
  int64_t l = 0, r = 0;
  try {
    l = gd.lhs.eval(bindings);
    r = gd.rhs.eval(bindings);
  } catch (const DimError& e) {
    throw Error(gd.node + ": " + gd.check + ": cannot evaluate for " + bindings_text(bindings) + " (" + e.what() + ")");
  }
  if (l != r)
    throw Error(gd.node + ": " + gd.check + " fails for " + bindings_text(bindings) + ": " + gd.lhs.brief() + " = " +
                std::to_string(l) + " but " + gd.rhs.brief() + " = " + std::to_string(r));
}

// Largest value d takes with the input symbols bound and each data size anywhere in 0..its bound.
int64_t upper_bound(const Dim& d, const std::map<std::string, int64_t>& bindings, const std::map<std::string, Dim>& bounded) {
  const Dim s = d.substitute(bindings).substitute_dims(bounded);
  return s.is_const() ? s.value() : s.range().hi;
}

}  // namespace

void check_data_guards(const Graph& g, const std::map<std::string, int64_t>& known, const std::vector<std::string>& fresh) {
  for (const ShapeGuard& gd : g.guards) {
    std::vector<std::string> syms;
    data_symbols_of(g, gd.lhs, syms);
    data_symbols_of(g, gd.rhs, syms);
    bool ready = !syms.empty(), mentions_fresh = false;
    for (const auto& s : syms) {
      ready = ready && known.count(s);
      mentions_fresh = mentions_fresh || std::find(fresh.begin(), fresh.end(), s) != fresh.end();
    }
    if (ready && mentions_fresh) check_guard(gd, known);
  }
}

void data_shaped_value(const Graph& g, const Plan& p, int v, const std::map<std::string, int64_t>& known,
                       std::vector<int64_t>& shape, std::vector<int64_t>& host_values) {
  const Value& val = g.value(v);
  const PlannedValue& pv = p.values[v];
  shape = pv.shape;
  host_values = pv.host_values;
  try {
    for (size_t i = 0; i < val.shape.size(); ++i) shape[i] = val.shape[i].eval(known);
    if (val.sym_value)
      for (size_t i = 0; i < val.sym_value->size(); ++i) host_values[i] = (*val.sym_value)[i].eval(known);
  } catch (const DimError&) {
    shape = pv.shape;  // a size it needs is read back later: keep the bound
    host_values = pv.host_values;
    return;
  }
  for (size_t i = 0; i < shape.size(); ++i)
    if (shape[i] < 0 || shape[i] > pv.shape[i])
      throw Error("value '" + val.name + "': dimension " + std::to_string(i) + " (" + val.shape[i].brief() + ") is " +
                  std::to_string(shape[i]) + " for " + bindings_text(known) + ", outside 0.." + std::to_string(pv.shape[i]) +
                  " that memory was planned for");
}

void check_guards(const Graph& g, const std::map<std::string, int64_t>& bindings) {
  for (const ShapeGuard& gd : g.guards) {
    if (!g.data_dims.empty()) {
      std::vector<std::string> syms;
      data_symbols_of(g, gd.lhs, syms);
      data_symbols_of(g, gd.rhs, syms);
      if (!syms.empty()) continue;  // checked once the sizes are read back
    }
    check_guard(gd, bindings);
  }
}

size_t planned_bytes(const Graph& g, const Plan& p, int value) {
  int64_t n = 1;
  for (auto d : p.values[value].shape) n *= d;
  return align_up(std::max<size_t>(1, static_cast<size_t>(n) * dtype_size(g.value(value).dtype)));
}

bool is_view_op(const std::string& op) {
  return op == "Reshape" || op == "Flatten" || op == "Squeeze" || op == "Unsqueeze" || op == "Identity";
}

bool node_is_static(const Graph& g, const Node& n) {
  for (int o : n.outputs) {
    if (o < 0) continue;
    const Value& v = g.value(o);
    if (!v.is_const() && !v.sym_value) return false;
  }
  return true;
}

namespace {

// Step 1: each input dimension checked against the engine's input shape, its profile and its
// symbol's range, and the input symbols bound.
void bind_inputs(const Engine& e, const std::map<std::string, std::vector<int64_t>>& input_shapes, Plan& p) {
  const Graph& g = e.graph;
  const ShapeProfile& prof = e.options.profile;
  for (int id : g.inputs) {
    const Value& v = g.value(id);
    auto it = input_shapes.find(v.name);
    if (it == input_shapes.end()) throw Error("input '" + v.name + "' was not given");
    const auto& s = it->second;
    if (s.size() != v.shape.size())
      throw Error("input '" + v.name + "' has rank " + std::to_string(s.size()) + " (" + dims_text(s) + "), the engine expects " +
                  shape_str(v.shape));
    auto mn = prof.min.find(v.name), mx = prof.max.find(v.name);
    // A profile of another rank can only come from a hand-edited engine; never index past it.
    if (mn != prof.min.end() && mn->second.size() != s.size()) mn = prof.min.end();
    if (mx != prof.max.end() && mx->second.size() != s.size()) mx = prof.max.end();
    for (size_t i = 0; i < s.size(); ++i) {
      const Dim& d = v.shape[i];
      if (d.is_const() && d.value() != s[i])
        throw Error("input '" + v.name + "' has shape " + dims_text(s) + ", dimension " + std::to_string(i) + " must be " +
                    std::to_string(d.value()) + " (engine input " + shape_str(v.shape) + ")");
      if (s[i] < 0) throw Error("input '" + v.name + "' has a negative dimension (" + dims_text(s) + ")");
      if ((mn != prof.min.end() && s[i] < mn->second[i]) || (mx != prof.max.end() && s[i] > mx->second[i]))
        throw Error("input '" + v.name + "' shape " + dims_text(s) + " is outside the engine's " + prof.describe(v.name) +
                    " (dimension " + std::to_string(i) + " is " + std::to_string(s[i]) + "; engine input " + shape_str(v.shape) +
                    "): rebuild with a wider --min-shapes/--max-shapes");
      if (d.op() == Dim::Op::Sym) {
        // The algebra simplified with the symbol's range: a value outside it is not served.
        const DimRange rg = d.range();
        if (!rg.contains(s[i]))
          throw Error("input '" + v.name + "' shape " + dims_text(s) + ": dimension " + std::to_string(i) + " ('" + d.symbol_name() +
                      "') is " + std::to_string(s[i]) + ", this engine serves " + std::to_string(rg.lo) + ".." + std::to_string(rg.hi) +
                      ": rebuild with a wider --min-shapes/--max-shapes");
        auto b = p.bindings.find(d.symbol_name());
        if (b != p.bindings.end() && b->second != s[i])
          throw Error("input '" + v.name + "' dimension " + std::to_string(i) + " ('" + d.symbol_name() + "') is " +
                      std::to_string(s[i]) + " but another input set it to " + std::to_string(b->second));
        p.bindings[d.symbol_name()] = s[i];
      }
    }
  }
  // Input dims that are expressions of other inputs' symbols must agree with the bound values.
  for (int id : g.inputs) {
    const Value& v = g.value(id);
    const auto& s = input_shapes.at(v.name);
    for (size_t i = 0; i < s.size(); ++i) {
      const Dim& d = v.shape[i];
      if (d.is_const() || d.op() == Dim::Op::Sym) continue;
      int64_t want;
      try {
        want = d.eval(p.bindings);
      } catch (const DimError&) {
        continue;  // its symbols are bound nowhere else: nothing to check against
      }
      if (want != s[i])
        throw Error("input '" + v.name + "' has shape " + dims_text(s) + ", dimension " + std::to_string(i) + " must be " +
                    d.str() + " = " + std::to_string(want) + " (engine input " + shape_str(v.shape) + ")");
    }
  }
}

// Step 2: each data-dependent size gets its bound at these input shapes (a bound may itself
// mention an earlier size: NonZero of a NonZero). Returns symbol -> that symbol ranged 0..bound.
std::map<std::string, Dim> bound_data_sizes(const Graph& g, Plan& p) {
  std::map<std::string, Dim> bounded;
  for (size_t k = 0; k < g.data_dims.size(); ++k) {
    const DataDim& dd = g.data_dims[k];
    int64_t b;
    try {
      b = upper_bound(dd.bound, p.bindings, bounded);
    } catch (const DimError& e) {
      throw Error("data-dependent size '" + dd.symbol + "': its bound " + dd.bound.brief() + ": " + e.what());
    }
    if (b < 0 || b > (int64_t{1} << 40))
      throw Error("data-dependent size '" + dd.symbol + "' has no usable bound (" + dd.bound.brief() + " = " + std::to_string(b) +
                  " for " + bindings_text(p.bindings) + ")");
    p.data_sizes.push_back({dd.symbol, dd.node, -1, b, k});
    bounded[dd.symbol] = Dim::symbol(dd.symbol, 0, b);
  }
  return bounded;
}

// Step 3: every value's concrete shape and host values; a value that mentions a data size at its
// upper bound. Sizes are checked against the resource limits here, before anything is allocated.
void evaluate_shapes(const Graph& g, Plan& p, const std::map<std::string, Dim>& bounded) {
  p.values.resize(g.values.size());
  for (size_t i = 0; i < g.values.size(); ++i) {
    const Value& v = g.value(static_cast<int>(i));
    PlannedValue& pv = p.values[i];
    if (!v.has_shape) continue;
    std::vector<std::string> syms;
    if (!bounded.empty()) {
      for (const Dim& d : v.shape) data_symbols_of(g, d, syms);
      if (v.sym_value)
        for (const Dim& d : *v.sym_value) data_symbols_of(g, d, syms);
    }
    pv.data_shaped = !syms.empty();
    // Built only for a message: shape_str of every value would cost more than the plan itself.
    auto what = [&] { return "value '" + v.name + "' of shape " + shape_str(v.shape); };
    pv.shape.reserve(v.shape.size());
    try {
      for (const Dim& d : v.shape) {
        const int64_t x = pv.data_shaped ? std::max<int64_t>(0, upper_bound(d, p.bindings, bounded)) : d.eval(p.bindings);
        if (x < 0)
          throw Error("value '" + v.name + "' gets a negative dimension (" + d.brief() + " = " + std::to_string(x) + ") for " +
                      bindings_text(p.bindings));
        pv.shape.push_back(x);
      }
      if (v.sym_value) {
        pv.host_values.reserve(v.sym_value->size());
        for (const Dim& d : *v.sym_value) pv.host_values.push_back(pv.data_shaped ? upper_bound(d, p.bindings, bounded) : d.eval(p.bindings));
        pv.has_host_values = true;
      }
    } catch (const DimError& e) {
      throw Error(what() + ": " + e.what() + " for " + bindings_text(p.bindings));
    }
    size_t bytes;
    if (!bytes_within_limits(pv.shape, v.dtype, &bytes))
      checked_bytes(pv.shape, v.dtype, what() + (pv.data_shaped ? " (bounded by its data-dependent sizes)" : "") + " for " + bindings_text(p.bindings));
    if (!pv.data_shaped && !v.sym_value && v.data && v.dtype == DType::Int64) {
      pv.host_values = v.data->to_int64();
      pv.has_host_values = true;
    }
  }
}

// The values that live outside the arena: the caller owns graph inputs' and outputs' memory.
std::vector<char> external_values(const Graph& g) {
  std::vector<char> external(g.values.size(), 0);
  for (int id : g.inputs) external[id] = 1;
  for (int id : g.outputs) external[id] = 1;
  return external;
}

// Step 4: the nodes that run, in order, and the live range of what they write. A Reshape-like node
// between two arena tensors runs nothing: its output is a view of its input's buffer (root[]),
// whose lifetime then covers the view's readers. Returns root (itself for a non-view).
std::vector<int> schedule_steps(const Graph& g, Plan& p, const std::vector<char>& external) {
  const size_t nv = g.values.size();
  std::vector<int> root(nv);
  for (size_t i = 0; i < nv; ++i) root[i] = static_cast<int>(i);
  auto arena_value = [&](int v) {
    const Value& val = g.value(v);
    return p.values[v].written && !external[v] && !val.is_const() && !val.sym_value;
  };
  for (int idx = 0; idx < static_cast<int>(g.nodes.size()); ++idx) {
    const Node& n = g.nodes[idx];
    if (node_is_static(g, n)) continue;
    if (is_view_op(n.op_type) && n.outputs.size() == 1 && n.outputs[0] >= 0 && !n.inputs.empty() && n.inputs[0] >= 0 &&
        arena_value(root[n.inputs[0]]) && !external[n.outputs[0]] && !g.value(n.outputs[0]).sym_value) {
      const int o = n.outputs[0];
      root[o] = root[n.inputs[0]];
      p.values[o].written = true;
      continue;
    }
    const int step = static_cast<int>(p.steps.size());
    p.steps.push_back(idx);
    for (int o : n.outputs)
      if (o >= 0) {
        PlannedValue& pv = p.values[o];
        pv.written = true;
        if (pv.first_step < 0) pv.first_step = step;
        pv.last_step = std::max(pv.last_step, step);
      }
    for (int i : n.inputs)
      if (i >= 0 && p.values[root[i]].first_step >= 0) p.values[root[i]].last_step = std::max(p.values[root[i]].last_step, step);
  }
  return root;
}

// Step 5: segments end after each node that writes a data-dependent size.
void split_segments(const Graph& g, Plan& p) {
  for (auto& ds : p.data_sizes)
    for (size_t s = 0; s < p.steps.size(); ++s)
      if (g.nodes[p.steps[s]].name == ds.node) ds.step = static_cast<int>(s);
  std::stable_sort(p.data_sizes.begin(), p.data_sizes.end(), [](const Plan::DataSize& a, const Plan::DataSize& b) { return a.step < b.step; });
  for (const auto& ds : p.data_sizes) {
    if (ds.step < 0) throw Error("data-dependent size '" + ds.symbol + "': its node '" + ds.node + "' does not run");
    if (p.segment_ends.empty() || p.segment_ends.back() != ds.step + 1) p.segment_ends.push_back(ds.step + 1);
  }
  if (p.segment_ends.empty() || p.segment_ends.back() != static_cast<int>(p.steps.size()))
    p.segment_ends.push_back(static_cast<int>(p.steps.size()));
}

// Step 6: arena offsets. Greedy by size, largest first; each buffer goes into the smallest gap that
// is free during its whole lifetime (best fit), else on top of the buffers it overlaps. Views take
// their root's offset and lifetime.
void pack_arena(const Graph& g, Plan& p, const std::vector<char>& external, const std::vector<int>& root) {
  const size_t nv = g.values.size();
  // Each buffer with its lifetime inline: the overlap test below runs for every pair.
  struct Buf {
    int value;
    int first, last;
    size_t size, offset;
  };
  std::vector<Buf> bufs;
  for (size_t i = 0; i < nv; ++i) {
    const Value& v = g.value(static_cast<int>(i));
    const PlannedValue& pv = p.values[i];
    if (!pv.written || external[i] || v.is_const() || v.sym_value || root[i] != static_cast<int>(i)) continue;
    bufs.push_back({static_cast<int>(i), pv.first_step, pv.last_step, planned_bytes(g, p, static_cast<int>(i)), 0});
  }
  std::sort(bufs.begin(), bufs.end(),
            [](const Buf& a, const Buf& b) { return a.size != b.size ? a.size > b.size : a.value < b.value; });
  std::vector<Buf> placed;
  placed.reserve(bufs.size());
  std::vector<std::pair<size_t, size_t>> busy;
  for (Buf b : bufs) {
    busy.clear();
    for (const Buf& q : placed)
      if (!(q.last < b.first || b.last < q.first)) busy.push_back({q.offset, q.offset + q.size});
    std::sort(busy.begin(), busy.end());
    size_t best = Plan::kNoBuffer, best_gap = Plan::kNoBuffer, top = 0;
    for (const auto& r : busy) {
      if (r.first > top && r.first - top >= b.size && r.first - top < best_gap) best = top, best_gap = r.first - top;
      top = std::max(top, r.second);
    }
    b.offset = best != Plan::kNoBuffer ? best : top;
    p.values[b.value].offset = b.offset;
    p.arena_bytes = std::max(p.arena_bytes, b.offset + b.size);
    p.naive_bytes += b.size;
    placed.push_back(b);
  }
  for (size_t i = 0; i < nv; ++i)
    if (root[i] != static_cast<int>(i)) {
      const PlannedValue& r = p.values[root[i]];
      p.values[i].offset = r.offset;
      p.values[i].first_step = r.first_step;
      p.values[i].last_step = r.last_step;
    }
}

}  // namespace

Plan make_plan(const Engine& e, const std::map<std::string, std::vector<int64_t>>& input_shapes) {
  const Graph& g = e.graph;
  if (is_deferred(e))
    throw Error("this engine is specialised at run time (per shape-input value or input shape): plan its specialisation "
                "(specialize_engine) instead");
  Plan p;
  bind_inputs(e, input_shapes, p);
  check_guards(g, p.bindings);
  const std::map<std::string, Dim> bounded = bound_data_sizes(g, p);
  evaluate_shapes(g, p, bounded);
  const std::vector<char> external = external_values(g);
  const std::vector<int> root = schedule_steps(g, p, external);
  split_segments(g, p);
  pack_arena(g, p, external, root);
  return p;
}

}  // namespace unirt
