#include "passes/shape_inference.h"

#include <map>
#include <mutex>

namespace unirt {
namespace {

std::map<std::string, ShapeFn>& shape_fns() {
  static std::map<std::string, ShapeFn> m;
  static std::once_flag once;
  std::call_once(once, [] {
    register_shape_fns_math(m);
    register_shape_fns_tensor(m);
    register_shape_fns_index(m);
    register_shape_fns_fused(m);
  });
  return m;
}

bool is_int_type(DType t) {
  return t == DType::Int64 || t == DType::Int32 || t == DType::Int8 || t == DType::Uint8 || t == DType::Bool;
}

}  // namespace


const Value& ShapeCtx::in(int i) const {
  if (!n_.has_input(i)) fail("input " + std::to_string(i) + " is missing");
  const Value& v = g_.value(n_.inputs[i]);
  if (!v.has_shape) fail("input '" + v.name + "' has no inferred shape");
  return v;
}

std::optional<std::vector<Dim>> ShapeCtx::values(int i) const {
  if (!has(i)) return std::nullopt;
  const Value& v = in(i);
  if (v.sym_value) return v.sym_value;
  if (v.data && is_int_type(v.dtype) && v.data->numel() <= 1024) {
    std::vector<Dim> out;
    for (int64_t x : v.data->to_int64()) out.push_back(Dim(x));
    return out;
  }
  return std::nullopt;
}

std::vector<Dim> ShapeCtx::need_values(int i, const char* role) const {
  auto v = values(i);
  if (!v)
    throw DataDependentError(n_.describe() + ": the " + role + " (input '" + in(i).name +
                             "') depends on tensor data, not only on shapes: unirt needs it known when the engine is built",
                             in(i).name);
  return *v;
}

std::vector<int64_t> ShapeCtx::need_ints(int i, const char* role) const {
  std::vector<int64_t> out;
  for (const Dim& d : need_values(i, role)) {
    if (!d.is_const()) fail(std::string("the ") + role + " must be constant, found '" + d.str() + "'");
    out.push_back(d.value());
  }
  return out;
}

void ShapeCtx::set(int out, DType dtype, Shape shape, std::optional<std::vector<Dim>> sym) {
  if (out >= static_cast<int>(n_.outputs.size()) || n_.outputs[out] < 0) return;
  Value& v = g_.value(n_.outputs[out]);
  v.dtype = dtype;
  v.shape = std::move(shape);
  v.has_shape = true;
  if (sym && is_int_type(dtype)) {
    if (!shape_numel(v.shape).is_const() || shape_numel(v.shape).value() != static_cast<int64_t>(sym->size()))
      fail("internal: value count of '" + v.name + "' does not match its shape " + shape_str(v.shape));
    v.sym_value = std::move(sym);
  } else {
    v.sym_value.reset();
  }
}

void ShapeCtx::fail(const std::string& msg) const { throw Error(n_.describe() + ": " + msg); }

void ShapeCtx::require_equal(const Dim& a, const Dim& b, const std::string& what) const {
  switch (dim_eq(a, b)) {
    case Truth::True: return;
    case Truth::False: fail(what + ": " + a.brief() + " vs " + b.brief());
    case Truth::Unknown: break;
  }
  for (const auto& gd : g_.guards)
    if (gd.lhs.key() == a.key() && gd.rhs.key() == b.key()) return;  // the same fact, asserted earlier
  g_.guards.push_back({n_.describe(), what, a, b});
}

Dim ShapeCtx::data_dim(const Dim& bound) {
  const DimRange r = bound.range();
  if (r.hi < 0) fail("the bound " + bound.brief() + " of a data-dependent size is negative");
  std::string name = "len(" + n_.name + ")";
  for (const auto& d : g_.data_dims)
    if (d.symbol == name) fail("internal: a second data-dependent size for this node");
  g_.data_dims.push_back({name, n_.name, bound});
  return Dim::symbol(name, 0, r.hi);
}

int64_t ShapeCtx::axis(int64_t a, size_t r) const {
  const int64_t rr = static_cast<int64_t>(r);
  if (a < -rr || a >= rr)
    fail("axis " + std::to_string(a) + " is out of range for rank " + std::to_string(r));
  return a < 0 ? a + rr : a;
}

Shape broadcast_shapes(const ShapeCtx& ctx, const Shape& a, const Shape& b) {
  const size_t r = std::max(a.size(), b.size());
  Shape out(r);
  for (size_t i = 0; i < r; ++i) {
    const bool ha = i + a.size() >= r, hb = i + b.size() >= r;
    Dim da = ha ? a[i + a.size() - r] : Dim(1);
    Dim db = hb ? b[i + b.size() - r] : Dim(1);
    if (da.is_const(1)) out[i] = db;
    else if (db.is_const(1)) out[i] = da;
    else {
      // Equal sizes are required unless one is 1; a symbolic size that could be 1 is taken as
      // "equal" (a guard says so), as TensorRT does.
      if (dim_eq(da, db) == Truth::False)
        ctx.fail("cannot broadcast shapes " + shape_str(a) + " and " + shape_str(b) + " (dimension " + std::to_string(i) +
                 ": " + da.brief() + " vs " + db.brief() + ")");
      ctx.require_equal(da, db, "broadcast dimension " + std::to_string(i) + " of " + shape_str(a) + " and " + shape_str(b));
      out[i] = db.is_const() ? db : da;
    }
  }
  return out;
}

void require_residual_shape(ShapeCtx& c, int i, const Shape& y) {
  if (!c.has(i)) return;
  const Shape& r = c.shape(i);
  if (r.size() != y.size()) c.fail("residual " + shape_str(r) + " has another rank than the output " + shape_str(y));
  for (size_t d = 0; d < y.size(); ++d)
    c.require_equal(r[d], y[d], "residual dimension " + std::to_string(d) + " of " + shape_str(r) + " vs the output " + shape_str(y));
}

void infer_shapes(Graph& g) {
  auto& fns = shape_fns();
  g.guards.clear();  // recomputed for the graph as it is now
  g.data_dims.clear();
  for (int idx : g.topo_order()) {
    Node& n = g.nodes[idx];
    auto it = fns.find(n.op_type);
    if (it == fns.end()) throw Error(n.describe() + ": no shape function for this op");
    ShapeCtx ctx(g, n);
    try {
      it->second(ctx);
    } catch (const DimError& e) {
      ctx.fail(e.what());
    }
    for (int o : n.outputs)
      if (o >= 0 && !g.value(o).has_shape) ctx.fail("output '" + g.value(o).name + "' got no shape");
  }
  for (int o : g.outputs)
    if (!g.value(o).has_shape) throw Error("graph output '" + g.value(o).name + "' has no shape");
}

}  // namespace unirt
