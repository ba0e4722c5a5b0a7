// Shape functions: data movement and shape ops. These carry Value::sym_value through
// Shape -> Gather -> Concat -> Reshape chains so dynamic sizes stay exact symbols.
#include <cmath>
#include <limits>

#include "passes/shape_inference.h"

namespace unirt {
namespace {

constexpr int64_t kHuge = int64_t{1} << 40;  // Slice ends such as INT64_MAX mean "to the end"

std::optional<std::vector<Dim>> passthrough(ShapeCtx& c) { return c.values(0); }

// Moves known element values the way a data-movement op moves elements: out[i] = in[src(i)].
// Shape-value chains (torch's F.pad export: Concat -> Reshape(-1,2) -> Slice(step -1) ->
// Transpose -> Reshape) are small, so this runs on the element lists at build time.
std::optional<std::vector<Dim>> gather_values(ShapeCtx& c, const Shape& out,
                                              const std::function<int64_t(const std::vector<int64_t>&)>& src) {
  auto in = c.values(0);
  if (!in || !shape_is_const(out)) return std::nullopt;
  auto od = shape_values(out);
  int64_t n = 1;
  for (auto d : od) n *= d;
  std::vector<Dim> r;
  std::vector<int64_t> idx(od.size(), 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t rem = i;
    for (int k = static_cast<int>(od.size()) - 1; k >= 0; --k) {
      idx[k] = rem % od[k];
      rem /= od[k];
    }
    int64_t j = src(idx);
    if (j < 0 || j >= static_cast<int64_t>(in->size())) return std::nullopt;
    r.push_back((*in)[j]);
  }
  return r;
}

void shape_op(ShapeCtx& c) {
  const Shape& x = c.shape(0);
  const int64_t r = static_cast<int64_t>(x.size());
  int64_t s = c.node().attr_i("start", 0), e = c.node().attr_i("end", r);
  if (s < 0) s += r;
  if (e < 0) e += r;
  s = std::min(std::max<int64_t>(s, 0), r);
  e = std::min(std::max<int64_t>(e, 0), r);
  std::vector<Dim> v(x.begin() + s, x.begin() + std::max(s, e));
  c.set(0, DType::Int64, {Dim(static_cast<int64_t>(v.size()))}, v);
}

void reshape(ShapeCtx& c) {
  const Shape& x = c.shape(0);
  std::vector<Dim> target = c.need_values(1, "target shape");
  const bool allowzero = c.node().attr_i("allowzero", 0) != 0;
  int infer = -1;
  Dim known(1);
  for (size_t i = 0; i < target.size(); ++i) {
    if (target[i].is_const(0) && !allowzero) {
      if (i >= x.size()) c.fail("target dim " + std::to_string(i) + " is 0 (copy) but the input has rank " + std::to_string(x.size()));
      target[i] = x[i];
    }
    if (target[i].is_const(-1)) {
      if (infer >= 0) c.fail("target shape has more than one -1");
      infer = static_cast<int>(i);
    } else {
      if (target[i].is_const() && target[i].value() < 0) c.fail("target dim " + target[i].str() + " is negative");
      known = known * target[i];
    }
  }
  Dim numel = shape_numel(x);
  if (infer >= 0) {
    if (dim_eq(known, Dim(0)) == Truth::True) c.fail("cannot infer the -1 of " + shape_str(target) + ": the other dims multiply to 0");
    target[infer] = floordiv(numel, known);
    c.require_equal(target[infer] * known, numel,
                    "reshape of " + shape_str(x) + " to " + shape_str(target) + " (the -1 must divide evenly)");
  } else {
    c.require_equal(shape_numel(target), numel, "element count of the reshape " + shape_str(x) + " to " + shape_str(target));
  }
  c.set(0, c.dtype(0), target, passthrough(c));
}

void transpose(ShapeCtx& c) {
  const Shape& x = c.shape(0);
  std::vector<int64_t> perm = c.node().attr_ints("perm");
  if (perm.empty())
    for (int64_t i = static_cast<int64_t>(x.size()) - 1; i >= 0; --i) perm.push_back(i);
  if (perm.size() != x.size()) c.fail("perm has " + std::to_string(perm.size()) + " entries for rank " + std::to_string(x.size()));
  std::vector<bool> seen(x.size(), false);
  Shape out;
  for (int64_t p : perm) {
    int64_t a = c.axis(p, x.size());
    if (seen[a]) c.fail("perm repeats axis " + std::to_string(a));
    seen[a] = true;
    out.push_back(x[a]);
  }
  std::optional<std::vector<Dim>> vals;
  if (shape_is_const(x)) {
    auto st = strides_of(shape_values(x));
    vals = gather_values(c, out, [&](const std::vector<int64_t>& o) {
      int64_t j = 0;
      for (size_t k = 0; k < o.size(); ++k) j += o[k] * st[c.axis(perm[k], x.size())];
      return j;
    });
  }
  c.set(0, c.dtype(0), out, vals);
}

void flatten(ShapeCtx& c) {
  const Shape& x = c.shape(0);
  int64_t a = c.node().attr_i("axis", 1);
  if (a < 0) a += static_cast<int64_t>(x.size());
  if (a < 0 || a > static_cast<int64_t>(x.size())) c.fail("axis out of range for rank " + std::to_string(x.size()));
  c.set(0, c.dtype(0), {shape_numel(Shape(x.begin(), x.begin() + a)), shape_numel(Shape(x.begin() + a, x.end()))},
        passthrough(c));
}

void concat(ShapeCtx& c) {
  const Shape& x0 = c.shape(0);
  const int64_t a = c.axis(c.node().attr_i("axis"), x0.size());
  Shape out = x0;
  std::optional<std::vector<Dim>> vals = x0.size() == 1 ? c.values(0) : std::nullopt;
  for (int i = 1; i < c.node().num_inputs(); ++i) {
    const Shape& xi = c.shape(i);
    if (xi.size() != x0.size()) c.fail("input " + std::to_string(i) + " has rank " + std::to_string(xi.size()) + ", expected " + std::to_string(x0.size()));
    if (c.dtype(i) != c.dtype(0)) c.fail("inputs have different types");
    for (size_t d = 0; d < xi.size(); ++d)
      if (static_cast<int64_t>(d) != a)
        c.require_equal(xi[d], x0[d], "dimension " + std::to_string(d) + " of input " + std::to_string(i) + " " + shape_str(xi) +
                                          " vs input 0 " + shape_str(x0) + " (off the concat axis)");
    out[a] = out[a] + xi[a];
    if (vals) {
      auto vi = c.values(i);
      if (vi) vals->insert(vals->end(), vi->begin(), vi->end());
      else vals.reset();
    }
  }
  c.set(0, c.dtype(0), out, vals);
}

Dim clamp(const Dim& v, const Dim& lo, const Dim& hi) { return dmin(dmax(v, lo), hi); }

void slice(ShapeCtx& c) {
  const Shape& x = c.shape(0);
  std::vector<Dim> starts, ends;
  std::vector<int64_t> axes, steps;
  if (c.opset() < 10) {
    for (auto v : c.node().attr_ints("starts")) starts.push_back(Dim(v));
    for (auto v : c.node().attr_ints("ends")) ends.push_back(Dim(v));
    axes = c.node().attr_ints("axes");
  } else {
    starts = c.need_values(1, "starts");
    ends = c.need_values(2, "ends");
    if (c.has(3)) axes = c.need_ints(3, "axes");
    if (c.has(4)) steps = c.need_ints(4, "steps");
  }
  if (axes.empty())
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    c.fail("starts/ends/axes/steps have different lengths");
  Shape out = x;
  std::vector<Dim> begin_of(x.size(), Dim(0)), step_of(x.size(), Dim(1));
  for (size_t i = 0; i < starts.size(); ++i) {
    const int64_t a = c.axis(axes[i], x.size());
    const Dim& dim = x[a];
    const int64_t st = steps[i];
    if (st == 0) c.fail("step 0");
    auto adjust = [&](const Dim& v, bool is_end) -> Dim {
      if (v.is_const()) {
        int64_t k = v.value();
        if (k >= kHuge) return st > 0 ? dim : dim - 1;
        if (k <= -kHuge) return st > 0 ? Dim(0) : Dim(-1);
        if (k < 0) return dim + Dim(k);
      }
      return v;
    };
    Dim s = adjust(starts[i], false), e = adjust(ends[i], true);
    Dim len;
    if (st > 0) {
      s = clamp(s, Dim(0), dim);
      e = clamp(e, Dim(0), dim);
      len = dmax(Dim(0), ceildiv(e - s, Dim(st)));
    } else {
      s = clamp(s, Dim(0), dim - 1);
      e = clamp(e, Dim(-1), dim - 1);
      len = dmax(Dim(0), ceildiv(s - e, Dim(-st)));
    }
    out[a] = len;
    begin_of[a] = s;
    step_of[a] = Dim(st);
  }
  std::optional<std::vector<Dim>> vals;
  if (shape_is_const(x) && shape_is_const(begin_of)) {
    auto st = strides_of(shape_values(x));
    vals = gather_values(c, out, [&](const std::vector<int64_t>& o) {
      int64_t j = 0;
      for (size_t k = 0; k < o.size(); ++k) j += (begin_of[k].value() + o[k] * step_of[k].value()) * st[k];
      return j;
    });
  }
  c.set(0, c.dtype(0), out, vals);
}

void gather(ShapeCtx& c) {
  const Shape& x = c.shape(0);
  const Shape& idx = c.shape(1);
  const int64_t a = c.axis(c.node().attr_i("axis", 0), x.size());
  Shape out(x.begin(), x.begin() + a);
  out.insert(out.end(), idx.begin(), idx.end());
  out.insert(out.end(), x.begin() + a + 1, x.end());
  std::optional<std::vector<Dim>> vals;
  auto xv = c.values(0);
  auto iv = c.values(1);
  if (xv && x.size() == 1 && iv) {
    vals.emplace();
    const int64_t n = static_cast<int64_t>(xv->size());
    for (const Dim& d : *iv) {
      if (!d.is_const()) {
        vals.reset();
        break;
      }
      const int64_t i = d.value();
      if (i < -n || i >= n) c.fail("index " + std::to_string(i) + " out of range for " + std::to_string(n) + " values");
      vals->push_back((*xv)[i < 0 ? i + n : i]);
    }
  }
  c.set(0, c.dtype(0), out, vals);
}

std::vector<int64_t> axes_of(ShapeCtx& c) {
  if (c.has(1)) return c.need_ints(1, "axes");
  return c.node().attr_ints("axes");
}

void unsqueeze(ShapeCtx& c) {
  const Shape& x = c.shape(0);
  auto axes = axes_of(c);
  const size_t r = x.size() + axes.size();
  std::vector<bool> ins(r, false);
  for (int64_t a : axes) {
    int64_t k = c.axis(a, r);
    if (ins[k]) c.fail("axes repeat " + std::to_string(k));
    ins[k] = true;
  }
  Shape out;
  size_t j = 0;
  for (size_t i = 0; i < r; ++i) out.push_back(ins[i] ? Dim(1) : x[j++]);
  c.set(0, c.dtype(0), out, passthrough(c));
}

void squeeze(ShapeCtx& c) {
  const Shape& x = c.shape(0);
  auto axes = axes_of(c);
  std::vector<bool> drop(x.size(), false);
  if (axes.empty()) {
    for (size_t i = 0; i < x.size(); ++i) {
      if (!x[i].is_const()) c.fail("cannot squeeze symbolic dim " + x[i].str() + " without explicit axes");
      drop[i] = x[i].is_const(1);
    }
  }
  for (int64_t a : axes) {
    int64_t k = c.axis(a, x.size());
    if (!x[k].is_const(1)) c.fail("cannot squeeze axis " + std::to_string(k) + " of size " + x[k].str());
    drop[k] = true;
  }
  Shape out;
  for (size_t i = 0; i < x.size(); ++i)
    if (!drop[i]) out.push_back(x[i]);
  c.set(0, c.dtype(0), out, passthrough(c));
}

void split(ShapeCtx& c) {
  const Shape& x = c.shape(0);
  const int64_t a = c.axis(c.node().attr_i("axis", 0), x.size());
  const int n = c.num_outputs();
  std::vector<Dim> sizes;
  if (c.has(1)) sizes = c.need_values(1, "split sizes");
  else if (c.node().has_attr("split"))
    for (auto v : c.node().attr_ints("split")) sizes.push_back(Dim(v));
  else {
    Dim chunk = ceildiv(x[a], Dim(n));
    for (int i = 0; i < n; ++i) sizes.push_back(i + 1 < n ? chunk : x[a] - chunk * Dim(n - 1));
  }
  if (static_cast<int>(sizes.size()) != n) c.fail("split has " + std::to_string(sizes.size()) + " sizes for " + std::to_string(n) + " outputs");
  for (int i = 0; i < n; ++i) {
    Shape s = x;
    s[a] = sizes[i];
    c.set(i, c.dtype(0), s);
  }
}

void expand(ShapeCtx& c) {
  std::vector<Dim> target = c.need_values(1, "target shape");
  Shape out = broadcast_shapes(c, c.shape(0), target);
  std::optional<std::vector<Dim>> vals;
  auto xv = c.values(0);
  if (xv && xv->size() == 1 && shape_numel(out).is_const() && shape_numel(out).value() <= 1024)
    vals = std::vector<Dim>(static_cast<size_t>(shape_numel(out).value()), (*xv)[0]);
  c.set(0, c.dtype(0), out, vals);
}

void pad(ShapeCtx& c) {
  const Shape& x = c.shape(0);
  std::vector<Dim> pads;
  if (c.opset() < 11)
    for (auto v : c.node().attr_ints("pads")) pads.push_back(Dim(v));
  else
    pads = c.need_values(1, "pads");
  std::vector<int64_t> axes;
  if (c.has(3)) axes = c.need_ints(3, "axes");
  else
    for (size_t i = 0; i < x.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  if (pads.size() != 2 * axes.size())
    c.fail("pads has " + std::to_string(pads.size()) + " values for " + std::to_string(axes.size()) + " axes");
  Shape out = x;
  const bool reflect = c.node().attr_s("mode", "constant") == "reflect";
  for (size_t i = 0; i < axes.size(); ++i) {
    int64_t a = c.axis(axes[i], x.size());
    out[a] = x[a] + pads[i] + pads[i + axes.size()];
    // Reflection mirrors inside the axis: at most size - 1 on each side.
    for (const Dim& pd : {pads[i], pads[i + axes.size()]})
      if (reflect && !pd.is_const(0)) {
        if (dim_lt(x[a] - Dim(1), pd) == Truth::True)
          c.fail("reflect padding " + pd.brief() + " on axis " + std::to_string(a) + " of size " + x[a].brief() + " (at most size - 1)");
        c.require_equal(dmin(pd, x[a] - Dim(1)), pd, "reflect padding " + pd.brief() + " <= axis " + std::to_string(a) + " size - 1");
      }
  }
  c.set(0, c.dtype(0), out);
}

// Resize (opset 11+): sizes, or scales applied as floor(in * scale) like ONNX Runtime. On a
// symbolic dim a scale must keep that exact: a whole number, or the reciprocal of a power of two.
void resize(ShapeCtx& c) {
  if (c.opset() < 11) c.fail("Resize before opset 11 is not supported");
  const Shape& x = c.shape(0);
  if (x.empty()) c.fail("input must have rank >= 1");
  const bool has_sizes = c.has(3) && !shape_numel(c.shape(3)).is_const(0);
  const bool has_scales = c.has(2) && !shape_numel(c.shape(2)).is_const(0);
  if (has_sizes == has_scales) c.fail("exactly one of scales and sizes must be given");
  Shape out;
  if (has_sizes) {
    if (c.dtype(3) != DType::Int64) c.fail("sizes must be int64");
    out = c.need_values(3, "sizes");
    if (out.size() != x.size()) c.fail("sizes has " + std::to_string(out.size()) + " values for rank " + std::to_string(x.size()));
    for (size_t i = 0; i < out.size(); ++i)
      if (dim_lt(out[i], Dim(1)) == Truth::True) c.fail("sizes[" + std::to_string(i) + "] is " + out[i].brief() + " < 1");
  } else {
    const auto& d = c.in(2).data;
    if (c.dtype(2) != DType::Float32) c.fail("scales must be float32");
    if (!d) c.fail("the output shape depends on tensor data: scales is not a constant (give constant scales, or sizes)");
    const std::vector<float> sc = d->to_float();
    if (sc.size() != x.size()) c.fail("scales has " + std::to_string(sc.size()) + " values for rank " + std::to_string(x.size()));
    for (size_t i = 0; i < x.size(); ++i) {
      const float s = sc[i];
      if (!(s > 0.f) || !std::isfinite(s)) c.fail("scales[" + std::to_string(i) + "] is " + std::to_string(s) + ", expected > 0");
      if (x[i].is_const()) {
        out.push_back(Dim(static_cast<int64_t>(std::floor(static_cast<float>(x[i].value()) * s))));
      } else if (s >= 1.f && s == std::floor(s) && s < 65536.f) {
        out.push_back(x[i] * Dim(static_cast<int64_t>(s)));
      } else {
        int64_t n = 0;
        for (int64_t p = 1; p <= (int64_t{1} << 16); p *= 2)
          if (s == 1.0f / static_cast<float>(p)) n = p;
        if (!n)
          c.fail("scale " + std::to_string(s) + " on the symbolic dim " + x[i].brief() +
                 " is not supported (a whole number or 1/2^k; export with sizes instead)");
        out.push_back(floordiv(x[i], Dim(n)));
      }
      if (dim_lt(out.back(), Dim(1)) == Truth::True) c.fail("output dim " + std::to_string(i) + " would be " + out.back().brief());
    }
  }
  c.set(0, c.dtype(0), out);
}

void constant_of_shape(ShapeCtx& c) {
  std::vector<Dim> s = c.need_values(0, "shape");
  for (size_t i = 0; i < s.size(); ++i)
    if (s[i].is_const() && s[i].value() < 0) c.fail("shape value " + std::to_string(i) + " is " + s[i].brief() + ", expected >= 0");
  DType t = DType::Float32;
  std::optional<std::vector<Dim>> vals;
  if (c.node().has_attr("value")) {
    const TensorData& v = c.node().attr_t("value");
    if (v.numel() != 1) c.fail("value holds " + std::to_string(v.numel()) + " elements, expected one");
    t = v.dtype;
    Dim n = shape_numel(s);
    if ((t == DType::Int64 || t == DType::Int32) && n.is_const() && n.value() >= 0 && n.value() <= 1024)
      vals = std::vector<Dim>(static_cast<size_t>(n.value()), Dim(v.to_int64().at(0)));
  }
  c.set(0, t, s, vals);
}

void range(ShapeCtx& c) {
  // Floating start/limit/delta: the length ceil((limit - start) / delta) from the constants.
  if (c.dtype(0) == DType::Float32 || c.dtype(0) == DType::Float64) {
    const Value *vs = &c.in(0), *vl = &c.in(1), *vd = &c.in(2);
    for (int i = 0; i < 3; ++i) {
      const Value* v = i == 0 ? vs : i == 1 ? vl : vd;
      if (!v->data || v->data->numel() != 1)
        throw DataDependentError(c.node().describe() + ": start/limit/delta depends on tensor data, not only on shapes: unirt needs it known "
                                 "when the engine is built", v->name);
    }
    const double st = vs->data->to_float()[0], li = vl->data->to_float()[0], de = vd->data->to_float()[0];
    if (de == 0 || !std::isfinite(st) || !std::isfinite(li) || !std::isfinite(de)) c.fail("start/limit/delta must be finite with delta != 0");
    const double len = std::ceil((li - st) / de);
    if (len > 1e9) c.fail("the range has " + std::to_string(len) + " elements");
    return c.set(0, c.dtype(0), {Dim(static_cast<int64_t>(std::max(0.0, len)))});
  }
  auto s = c.values(0), l = c.values(1), d = c.values(2);
  if (!s || !l || !d)
    throw DataDependentError(c.node().describe() +
                             ": start/limit/delta depends on tensor data, not only on shapes: unirt needs it known when the engine is built",
                             c.in(!s ? 0 : !l ? 1 : 2).name);
  if (!(*d)[0].is_const() || (*d)[0].value() == 0) c.fail("delta must be a non-zero constant");
  const int64_t delta = (*d)[0].value();
  Dim n = dmax(Dim(0), delta > 0 ? ceildiv((*l)[0] - (*s)[0], Dim(delta)) : ceildiv((*s)[0] - (*l)[0], Dim(-delta)));
  std::optional<std::vector<Dim>> vals;
  if (n.is_const() && n.value() <= 1024 && (c.dtype(0) == DType::Int64 || c.dtype(0) == DType::Int32)) {
    vals.emplace();
    for (int64_t i = 0; i < n.value(); ++i) vals->push_back((*s)[0] + Dim(i * delta));
  }
  c.set(0, c.dtype(0), {n}, vals);
}

void tile(ShapeCtx& c) {
  const Shape& x = c.shape(0);
  std::vector<Dim> reps = c.need_values(1, "repeats");
  if (reps.size() != x.size()) c.fail("repeats has " + std::to_string(reps.size()) + " entries for rank " + std::to_string(x.size()));
  Shape out;
  for (size_t i = 0; i < x.size(); ++i) out.push_back(x[i] * reps[i]);
  c.set(0, c.dtype(0), out);
}

void where(ShapeCtx& c) {
  if (c.dtype(0) != DType::Bool) c.fail("condition must be bool");
  if (c.dtype(1) != c.dtype(2)) c.fail("X and Y have different types");
  Shape s = broadcast_shapes(c, broadcast_shapes(c, c.shape(0), c.shape(1)), c.shape(2));
  std::optional<std::vector<Dim>> vals;
  std::optional<std::vector<int64_t>> cond;
  if (auto cv = c.values(0)) {
    cond.emplace();
    for (const Dim& d : *cv) {
      if (!d.is_const()) {
        cond.reset();
        break;
      }
      cond->push_back(d.value());
    }
  }
  auto xv = c.values(1), yv = c.values(2);
  if (cond && xv && yv && shape_numel(s).is_const()) {
    const size_t n = static_cast<size_t>(shape_numel(s).value());
    auto pick = [n](const auto& v, size_t i) { return v[v.size() == n ? i : 0]; };
    if ((cond->size() == n || cond->size() == 1) && (xv->size() == n || xv->size() == 1) && (yv->size() == n || yv->size() == 1)) {
      vals.emplace();
      for (size_t i = 0; i < n; ++i) vals->push_back(pick(*cond, i) ? pick(*xv, i) : pick(*yv, i));
    }
  }
  c.set(0, c.dtype(1), s, vals);
}

}  // namespace

void register_shape_fns_tensor(std::map<std::string, ShapeFn>& m) {
  m["Resize"] = resize;
  m["Shape"] = shape_op;
  m["Reshape"] = reshape;
  m["Transpose"] = transpose;
  m["Flatten"] = flatten;
  m["Concat"] = concat;
  m["Slice"] = slice;
  m["Gather"] = gather;
  m["Unsqueeze"] = unsqueeze;
  m["Squeeze"] = squeeze;
  m["Split"] = split;
  m["Expand"] = expand;
  m["Pad"] = pad;
  m["ConstantOfShape"] = constant_of_shape;
  m["Range"] = range;
  m["Tile"] = tile;
  m["Where"] = where;
  m["Identity"] = [](ShapeCtx& c) { c.set(0, c.dtype(0), c.shape(0), passthrough(c)); };
  m["Dropout"] = [](ShapeCtx& c) {
    c.set(0, c.dtype(0), c.shape(0), passthrough(c));
    c.set(1, DType::Bool, c.shape(0));
  };
}

}  // namespace unirt
