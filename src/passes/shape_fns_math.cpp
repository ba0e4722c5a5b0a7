// Shape functions: elementwise math, normalisation, matmul, convolution, pooling, reductions.
#include <cmath>

#include "passes/shape_inference.h"

namespace unirt {
namespace {

bool is_int(DType t) { return t == DType::Int64 || t == DType::Int32 || t == DType::Bool; }

// Element-wise integer arithmetic on known values (shape arithmetic such as H // 4 or (14 - W % 14) % 14,
// and the comparisons torch's exporter wraps around them). Booleans are the values 0 and 1. An
// element the algebra cannot decide (Equal(h, 224)) leaves the whole value to the planner.
std::optional<std::vector<Dim>> combine_values(ShapeCtx& c, const Shape& out, const std::function<std::optional<Dim>(Dim, Dim)>& f) {
  auto a = c.values(0), b = c.values(1);
  if (!a || !b || !is_int(c.dtype(0)) || !shape_numel(out).is_const()) return std::nullopt;
  const size_t n = static_cast<size_t>(shape_numel(out).value());
  if ((a->size() != n && a->size() != 1) || (b->size() != n && b->size() != 1)) return std::nullopt;
  std::vector<Dim> r;
  for (size_t i = 0; i < n; ++i) {
    std::optional<Dim> v;
    try {
      v = f((*a)[a->size() == 1 ? 0 : i], (*b)[b->size() == 1 ? 0 : i]);
    } catch (const DimError&) {
      return std::nullopt;  // e.g. a division whose operand signs are unknown: evaluated per shape instead
    }
    if (!v) return std::nullopt;
    r.push_back(*v);
  }
  return r;
}

Truth negate(Truth t) { return t == Truth::Unknown ? t : t == Truth::True ? Truth::False : Truth::True; }

std::optional<Dim> truth_value(Truth t) {
  if (t == Truth::Unknown) return std::nullopt;
  return Dim(t == Truth::True ? 1 : 0);
}

// f over every known value; no values as soon as one element is undecided.
std::optional<std::vector<Dim>> map_values(const std::optional<std::vector<Dim>>& in,
                                           const std::function<std::optional<Dim>(const Dim&)>& f) {
  if (!in) return std::nullopt;
  std::vector<Dim> out;
  for (const Dim& d : *in) {
    auto v = f(d);
    if (!v) return std::nullopt;
    out.push_back(*v);
  }
  return out;
}

std::optional<Dim> as_bool(const Dim& d) {
  if (d.is_const()) return Dim(d.value() != 0 ? 1 : 0);
  const Truth z = dim_eq(d, Dim(0));
  return z == Truth::Unknown ? std::nullopt : std::optional<Dim>(Dim(z == Truth::True ? 0 : 1));
}

using ValueFn = std::function<std::optional<Dim>(Dim, Dim)>;

void binary(ShapeCtx& c, const ValueFn& f, DType out_type = DType::Undefined) {
  if (c.dtype(0) != c.dtype(1))
    c.fail(std::string("inputs have different types: ") + dtype_name(c.dtype(0)) + " and " + dtype_name(c.dtype(1)));
  Shape s = broadcast_shapes(c, c.shape(0), c.shape(1));
  auto vals = f ? combine_values(c, s, f) : std::nullopt;
  c.set(0, out_type == DType::Undefined ? c.dtype(0) : out_type, s, vals);
}

void same_as_input(ShapeCtx& c) { c.set(0, c.dtype(0), c.shape(0)); }

}  // namespace

void check_window_attrs(ShapeCtx& c, const std::vector<int64_t>& k, const std::vector<int64_t>& strides,
                        const std::vector<int64_t>& dil, const std::vector<int64_t>& pads) {
  const int64_t lim = resource_limits().max_dim;
  auto in_range = [&](const std::vector<int64_t>& v, int64_t lo, const char* what) {
    for (int64_t x : v)
      if (x < lo || x > lim) c.fail(std::string(what) + " value " + std::to_string(x) + " is outside " + std::to_string(lo) + ".." + std::to_string(lim));
  };
  in_range(k, 1, "kernel_shape");
  in_range(strides, 1, "strides");
  in_range(dil, 1, "dilations");
  in_range(pads, 0, "pads");
}

namespace {

Dim conv_out(const Dim& in, int64_t k, int64_t s, int64_t d, int64_t pb, int64_t pe, bool ceil_mode) {
  Dim num = in + Dim(pb + pe - d * (k - 1) - 1);
  return (ceil_mode ? ceildiv(num, Dim(s)) : floordiv(num, Dim(s))) + 1;
}

// Output spatial dims for Conv and the pools (explicit pads or auto_pad).
Shape spatial_out(ShapeCtx& c, const Shape& x, const std::vector<int64_t>& k, bool ceil_mode) {
  const size_t nsp = x.size() - 2;
  auto strides = c.node().attr_ints("strides", std::vector<int64_t>(nsp, 1));
  auto dil = c.node().attr_ints("dilations", std::vector<int64_t>(nsp, 1));
  auto pads = c.node().attr_ints("pads", std::vector<int64_t>(2 * nsp, 0));
  if (k.size() != nsp || strides.size() != nsp || dil.size() != nsp || pads.size() != 2 * nsp)
    c.fail("kernel_shape/strides/dilations/pads do not match " + std::to_string(nsp) + " spatial dims");
  check_window_attrs(c, k, strides, dil, pads);
  const std::string ap = c.node().attr_s("auto_pad", "NOTSET");
  Shape out;
  for (size_t i = 0; i < nsp; ++i) {
    const Dim& in = x[2 + i];
    if (ap == "SAME_UPPER" || ap == "SAME_LOWER") out.push_back(ceildiv(in, Dim(strides[i])));
    else if (ap == "VALID") out.push_back(conv_out(in, k[i], strides[i], dil[i], 0, 0, false));
    else out.push_back(conv_out(in, k[i], strides[i], dil[i], pads[i], pads[i + nsp], ceil_mode));
  }
  return out;
}

void conv(ShapeCtx& c) {
  const Shape& x = c.shape(0);
  const Shape& w = c.shape(1);
  if (x.size() < 3 || w.size() != x.size())
    c.fail("input " + shape_str(x) + " and weight " + shape_str(w) + " ranks do not fit a convolution");
  const int64_t group = c.node().attr_i("group", 1);
  if (!w[1].is_const() || !w[0].is_const()) c.fail("weight shape " + shape_str(w) + " must be constant");
  if (group <= 0) c.fail("group " + std::to_string(group) + " must be positive");
  c.require_equal(x[1], w[1] * Dim(group),
                  "input channels of " + shape_str(x) + " vs the weight's " + w[1].str() + " x group " + std::to_string(group));
  if (w[0].value() % group != 0) c.fail("output channels " + w[0].str() + " not divisible by group");
  if (c.has(2)) {
    if (c.rank(2) != 1) c.fail("bias shape " + shape_str(c.shape(2)) + ", expected [" + w[0].str() + "]");
    c.require_equal(c.shape(2)[0], w[0], "bias length");
  }
  std::vector<int64_t> k;
  for (size_t i = 2; i < w.size(); ++i) k.push_back(w[i].value());
  auto ks = c.node().attr_ints("kernel_shape", k);
  if (ks != k) c.fail("kernel_shape attribute disagrees with the weight shape " + shape_str(w));
  Shape out = {x[0], w[0]};
  for (const Dim& d : spatial_out(c, x, k, false)) out.push_back(d);
  c.set(0, c.dtype(0), out);
}

// ConvTranspose: weight [C_in, C_out / group, k...]; each output dim is output_shape[i] when given,
// in * stride with SAME auto_pad, else stride * (in - 1) + output_padding + (k - 1) * dilation + 1
// - pads (ONNX's formula).
void conv_transpose(ShapeCtx& c) {
  const Shape& x = c.shape(0);
  const Shape& w = c.shape(1);
  if (x.size() < 3 || w.size() != x.size())
    c.fail("input " + shape_str(x) + " and weight " + shape_str(w) + " ranks do not fit a transposed convolution");
  for (const Dim& d : w)
    if (!d.is_const()) c.fail("weight shape " + shape_str(w) + " must be constant");
  const int64_t group = c.node().attr_i("group", 1);
  if (group <= 0) c.fail("group " + std::to_string(group) + " must be positive");
  c.require_equal(x[1], w[0], "input channels of " + shape_str(x) + " vs the weight's first dim " + w[0].str());
  if (w[0].value() % group != 0) c.fail("input channels " + w[0].str() + " not divisible by group");
  const Dim cout = w[1] * Dim(group);
  if (c.has(2)) {
    if (c.rank(2) != 1) c.fail("bias shape " + shape_str(c.shape(2)) + ", expected [" + cout.str() + "]");
    c.require_equal(c.shape(2)[0], cout, "bias length");
  }
  const size_t nsp = x.size() - 2;
  std::vector<int64_t> k;
  for (size_t i = 2; i < w.size(); ++i) k.push_back(w[i].value());
  if (c.node().attr_ints("kernel_shape", k) != k) c.fail("kernel_shape attribute disagrees with the weight shape " + shape_str(w));
  const auto strides = c.node().attr_ints("strides", std::vector<int64_t>(nsp, 1));
  const auto dil = c.node().attr_ints("dilations", std::vector<int64_t>(nsp, 1));
  const auto pads = c.node().attr_ints("pads", std::vector<int64_t>(2 * nsp, 0));
  const auto opad = c.node().attr_ints("output_padding", std::vector<int64_t>(nsp, 0));
  const auto oshape = c.node().attr_ints("output_shape");
  if (strides.size() != nsp || dil.size() != nsp || pads.size() != 2 * nsp || opad.size() != nsp)
    c.fail("strides/dilations/pads/output_padding do not match " + std::to_string(nsp) + " spatial dims");
  if (!oshape.empty() && oshape.size() != nsp && oshape.size() != nsp + 2)
    c.fail("output_shape " + dims_text(oshape) + " does not match " + std::to_string(nsp) + " spatial dims");
  check_window_attrs(c, k, strides, dil, pads);
  for (size_t i = 0; i < nsp; ++i)
    if (opad[i] < 0 || opad[i] >= std::max(strides[i], dil[i]))
      c.fail("output_padding " + std::to_string(opad[i]) + " must be in 0..max(stride, dilation) - 1");
  const std::string ap = c.node().attr_s("auto_pad", "NOTSET");
  Shape out = {x[0], cout};
  for (size_t i = 0; i < nsp; ++i) {
    const Dim& in = x[2 + i];
    if (!oshape.empty()) out.push_back(Dim(oshape[oshape.size() - nsp + i]));
    else if (ap == "SAME_UPPER" || ap == "SAME_LOWER") out.push_back(in * Dim(strides[i]));
    else {
      const int64_t p = ap == "VALID" ? 0 : pads[i] + pads[i + nsp];
      out.push_back((in - Dim(1)) * Dim(strides[i]) + Dim(opad[i] + (k[i] - 1) * dil[i] + 1 - p));
    }
    if (dim_lt(out.back(), Dim(1)) == Truth::True) c.fail("output dim " + std::to_string(i) + " is " + out.back().brief() + " < 1");
  }
  c.set(0, c.dtype(0), out);
}

void pool(ShapeCtx& c) {
  const Shape& x = c.shape(0);
  if (x.size() < 3) c.fail("input " + shape_str(x) + " needs rank >= 3");
  auto k = c.node().attr_ints("kernel_shape");
  if (k.empty()) c.fail("kernel_shape is required");
  // A window entirely in the padding would have no element (ONNX Runtime refuses it too).
  const auto pads = c.node().attr_ints("pads");
  for (size_t i = 0; i < pads.size() && !k.empty(); ++i)
    if (pads[i] >= k[i % k.size()])
      c.fail("pad " + std::to_string(pads[i]) + " is not smaller than the kernel " + std::to_string(k[i % k.size()]));
  Shape out = {x[0], x[1]};
  for (const Dim& d : spatial_out(c, x, k, c.node().attr_i("ceil_mode", 0) != 0)) out.push_back(d);
  c.set(0, c.dtype(0), out);
}

void matmul(ShapeCtx& c) {
  Shape a = c.shape(0), b = c.shape(1);
  if (a.empty() || b.empty()) c.fail("MatMul inputs must have rank >= 1");
  const bool a1 = a.size() == 1, b1 = b.size() == 1;
  if (a1) a.insert(a.begin(), Dim(1));
  if (b1) b.push_back(Dim(1));
  c.require_equal(a.back(), b[b.size() - 2], "inner dimensions of " + shape_str(c.shape(0)) + " x " + shape_str(c.shape(1)));
  Shape ba(a.begin(), a.end() - 2), bb(b.begin(), b.end() - 2);
  Shape out = broadcast_shapes(c, ba, bb);
  if (!a1) out.push_back(a[a.size() - 2]);
  if (!b1) out.push_back(b.back());
  c.set(0, c.dtype(0), out);
}

void gemm(ShapeCtx& c) {
  const Shape& a = c.shape(0);
  const Shape& b = c.shape(1);
  if (a.size() != 2 || b.size() != 2) c.fail("Gemm needs 2-D inputs, got " + shape_str(a) + " and " + shape_str(b));
  const bool ta = c.node().attr_i("transA", 0), tb = c.node().attr_i("transB", 0);
  Dim m = ta ? a[1] : a[0], k = ta ? a[0] : a[1], kb = tb ? b[1] : b[0], n = tb ? b[0] : b[1];
  c.require_equal(k, kb, "inner dimensions of " + shape_str(a) + " x " + shape_str(b));
  Shape out = {m, n};
  if (c.has(2)) broadcast_shapes(c, out, c.shape(2));
  c.set(0, c.dtype(0), out);
}

void reduce(ShapeCtx& c) {
  const Shape& x = c.shape(0);
  std::vector<int64_t> axes;
  if (c.has(1)) axes = c.need_ints(1, "axes");
  else axes = c.node().attr_ints("axes");
  const bool keep = c.node().attr_i("keepdims", 1) != 0;
  if (axes.empty() && c.node().attr_i("noop_with_empty_axes", 0)) return c.set(0, c.dtype(0), x);
  std::vector<bool> red(x.size(), axes.empty());
  for (int64_t a : axes) red[c.axis(a, x.size())] = true;
  Shape out;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!red[i]) out.push_back(x[i]);
    else if (keep) out.push_back(Dim(1));
  }
  // Known values of a 1-D integer shape value reduced whole: sum, product, max or min of the dims.
  std::optional<std::vector<Dim>> vals;
  const std::string& op = c.node().op_type;
  if (x.size() == 1 && red[0] && is_int(c.dtype(0)) && op != "ReduceMean")
    if (auto v = c.values(0); v && !v->empty()) {
      Dim r = (*v)[0];
      for (size_t i = 1; i < v->size(); ++i) {
        const Dim& d = (*v)[i];
        r = op == "ReduceSum" ? r + d : op == "ReduceProd" ? r * d : op == "ReduceMax" ? dmax(r, d) : dmin(r, d);
      }
      vals = std::vector<Dim>{r};
    }
  c.set(0, c.dtype(0), out, vals);
}

void layernorm(ShapeCtx& c) {
  const Shape& x = c.shape(0);
  const int64_t axis = c.axis(c.node().attr_i("axis", -1), x.size());
  Shape norm(x.begin() + axis, x.end());
  if (!shape_numel(c.shape(1)).is_const(1))
    c.require_equal(shape_numel(c.shape(1)), shape_numel(norm),
                    "scale " + shape_str(c.shape(1)) + " vs normalised dims " + shape_str(norm));
  c.set(0, c.dtype(0), x);
  Shape stat = x;
  for (size_t i = axis; i < x.size(); ++i) stat[i] = Dim(1);
  c.set(1, DType::Float32, stat);
  c.set(2, DType::Float32, stat);
}

void batchnorm(ShapeCtx& c) {
  const Shape& x = c.shape(0);
  if (x.size() < 2) c.fail("input needs rank >= 2");
  for (int i = 1; i < 5; ++i) {
    if (c.rank(i) != 1) c.fail("parameter " + std::to_string(i) + " has shape " + shape_str(c.shape(i)) + ", expected [" + x[1].str() + "]");
    c.require_equal(c.shape(i)[0], x[1], "parameter " + std::to_string(i) + " length vs channels");
  }
  c.set(0, c.dtype(0), x);
}

void variadic(ShapeCtx& c) {
  Shape s = c.shape(0);
  for (int i = 1; i < c.node().num_inputs(); ++i) s = broadcast_shapes(c, s, c.shape(i));
  std::optional<std::vector<Dim>> vals;
  if (c.node().num_inputs() == 2 && is_int(c.dtype(0))) {
    const bool mx = c.node().op_type == "Max";
    vals = combine_values(c, s, [mx](Dim a, Dim b) -> std::optional<Dim> { return mx ? dmax(a, b) : dmin(a, b); });
  }
  c.set(0, c.dtype(0), s, vals);
}

void cast(ShapeCtx& c) {
  const int64_t to = c.node().attr_i("to");
  if (!dtype_supported(static_cast<int32_t>(to))) c.fail("cast to unsupported ONNX type " + std::to_string(to));
  const DType t = static_cast<DType>(to);
  std::optional<std::vector<Dim>> vals;
  if ((t == DType::Int64 || t == DType::Int32) && (is_int(c.dtype(0)) || c.in(0).is_const())) vals = c.values(0);
  if (t == DType::Bool && is_int(c.dtype(0))) vals = map_values(c.values(0), as_bool);
  c.set(0, t, c.shape(0), vals);
}

// Unary ops on known integer values: Neg, Abs, Not.
void unary_values(ShapeCtx& c, const std::function<std::optional<Dim>(const Dim&)>& f) {
  c.set(0, c.dtype(0), c.shape(0), is_int(c.dtype(0)) ? map_values(c.values(0), f) : std::nullopt);
}

// The scale (and zero point) of QuantizeLinear / DequantizeLinear against the quantized tensor:
// one element per tensor, x.shape[axis] along `axis`, or blocks of block_size along it.
void check_quant_scale(ShapeCtx& c) {
  const Shape& x = c.shape(0);
  const Shape& s = c.shape(1);
  const int64_t block = c.node().attr_i("block_size", 0);
  if (block < 0) c.fail("block_size " + std::to_string(block) + " must be >= 0");
  if (c.has(2)) {
    const Shape& z = c.shape(2);
    if (z.size() != s.size()) c.fail("zero point " + shape_str(z) + " and scale " + shape_str(s) + " differ in rank");
    for (size_t i = 0; i < s.size(); ++i) c.require_equal(z[i], s[i], "zero point and scale dim " + std::to_string(i));
  }
  const Dim n = shape_numel(s);
  if (block == 0 && s.size() <= 1 && n.is_const() && n.value() == 1) return;  // per tensor
  if (x.empty()) c.fail("scale " + shape_str(s) + " for a scalar input: one element expected");
  const int64_t axis = c.axis(c.node().attr_i("axis", 1), x.size());
  if (block == 0) {
    if (s.size() != 1) c.fail("scale " + shape_str(s) + ": a scalar, or 1-D along axis " + std::to_string(axis) + " expected");
    c.require_equal(s[0], x[axis], "per-axis scale length and input dim " + std::to_string(axis));
    return;
  }
  if (s.size() != x.size()) c.fail("blocked scale " + shape_str(s) + " must have the rank of input " + shape_str(x));
  for (size_t i = 0; i < x.size(); ++i)
    c.require_equal(s[i], static_cast<int64_t>(i) == axis ? ceildiv(x[i], Dim(block)) : x[i], "blocked scale dim " + std::to_string(i));
}

void quantize_linear(ShapeCtx& c) {
  if (c.dtype(0) != DType::Float32 && c.dtype(0) != DType::Float16)
    c.fail(std::string("input of type ") + dtype_name(c.dtype(0)) + ": float32 or float16 expected");
  DType t = DType::Uint8;  // ONNX's default without a zero point
  const int64_t wanted = c.node().attr_i("output_dtype", 0);
  if (c.has(2)) t = c.dtype(2);
  else if (wanted != 0) t = dtype_supported(static_cast<int32_t>(wanted)) ? static_cast<DType>(wanted) : DType::Undefined;
  if (c.has(2) && wanted != 0 && wanted != static_cast<int64_t>(t)) c.fail("output_dtype differs from the zero point's type");
  if (t != DType::Int8 && t != DType::Uint8 && t != DType::Float8E4M3FN)
    c.fail("quantized type " + (t == DType::Undefined ? "code " + std::to_string(wanted) : std::string(dtype_name(t))) +
           ": int8, uint8 or float8e4m3fn expected");
  check_quant_scale(c);
  c.set(0, t, c.shape(0));
}

void dequantize_linear(ShapeCtx& c) {
  const DType x = c.dtype(0);
  if (x != DType::Int8 && x != DType::Uint8 && x != DType::Int32 && x != DType::Float8E4M3FN)
    c.fail(std::string("input of type ") + dtype_name(x) + ": int8, uint8, int32 or float8e4m3fn expected");
  if (c.has(2) && c.dtype(2) != x) c.fail(std::string("zero point of type ") + dtype_name(c.dtype(2)) + " for an input of type " + dtype_name(x));
  DType t = c.dtype(1);  // the scale's type, unless output_dtype says (FP16 engines set it)
  const int64_t wanted = c.node().attr_i("output_dtype", 0);
  if (wanted != 0) t = dtype_supported(static_cast<int32_t>(wanted)) ? static_cast<DType>(wanted) : DType::Undefined;
  if (t != DType::Float32 && t != DType::Float16)
    c.fail("output type " + (t == DType::Undefined ? "code " + std::to_string(wanted) : std::string(dtype_name(t))) + ": float32 or float16 expected");
  check_quant_scale(c);
  c.set(0, t, c.shape(0));
}

}  // namespace

void register_shape_fns_math(std::map<std::string, ShapeFn>& m) {
  m["Add"] = [](ShapeCtx& c) { binary(c, [](Dim a, Dim b) -> std::optional<Dim> { return a + b; }); };
  m["Sub"] = [](ShapeCtx& c) { binary(c, [](Dim a, Dim b) -> std::optional<Dim> { return a - b; }); };
  m["Mul"] = [](ShapeCtx& c) { binary(c, [](Dim a, Dim b) -> std::optional<Dim> { return a * b; }); };
  // ONNX integer Div truncates; exact symbolically where the operands' signs are known.
  m["Div"] = [](ShapeCtx& c) { binary(c, [](Dim a, Dim b) -> std::optional<Dim> { return truncdiv(a, b); }); };
  m["Mod"] = [](ShapeCtx& c) {
    if (c.node().attr_i("fmod", 0)) return binary(c, nullptr);
    binary(c, [](Dim a, Dim b) -> std::optional<Dim> { return mod(a, b); });
  };
  m["Pow"] = [](ShapeCtx& c) { c.set(0, c.dtype(0), broadcast_shapes(c, c.shape(0), c.shape(1))); };
  m["Equal"] = [](ShapeCtx& c) { binary(c, [](Dim a, Dim b) { return truth_value(dim_eq(a, b)); }, DType::Bool); };
  m["Less"] = [](ShapeCtx& c) { binary(c, [](Dim a, Dim b) { return truth_value(dim_lt(a, b)); }, DType::Bool); };
  m["Greater"] = [](ShapeCtx& c) { binary(c, [](Dim a, Dim b) { return truth_value(dim_lt(b, a)); }, DType::Bool); };
  m["GreaterOrEqual"] = [](ShapeCtx& c) { binary(c, [](Dim a, Dim b) { return truth_value(negate(dim_lt(a, b))); }, DType::Bool); };
  m["LessOrEqual"] = [](ShapeCtx& c) { binary(c, [](Dim a, Dim b) { return truth_value(negate(dim_lt(b, a))); }, DType::Bool); };
  auto logic = [](int kind) {
    return [kind](ShapeCtx& c) {
      binary(c, [kind](Dim a, Dim b) -> std::optional<Dim> {
        if (!a.is_const() || !b.is_const()) return std::nullopt;
        const bool x = a.value() != 0, y = b.value() != 0;
        return Dim(kind == 0 ? (x && y) : kind == 1 ? (x || y) : (x != y));
      }, DType::Bool);
    };
  };
  m["And"] = logic(0);
  m["Or"] = logic(1);
  m["Xor"] = logic(2);
  for (const char* op : {"Min", "Max"}) m[op] = variadic;
  for (const char* op : {"Sqrt", "Erf", "Gelu", "Relu", "Sigmoid", "Tanh", "Exp", "Log", "Reciprocal",
                         "Floor", "Ceil", "Softmax"})
    m[op] = same_as_input;
  // Clip of a shape value (k = min(size, nms_pre) as detection exports write it) stays symbolic.
  m["Clip"] = [](ShapeCtx& c) {
    std::optional<Dim> lo, hi;
    bool known = c.opset() >= 11;
    for (int i = 1; i <= 2 && known; ++i) {
      if (!c.has(i)) continue;
      auto v = c.values(i);
      if (!v || v->size() != 1) known = false;
      else (i == 1 ? lo : hi) = (*v)[0];
    }
    unary_values(c, [&](const Dim& d) -> std::optional<Dim> {
      if (!known) return std::nullopt;
      Dim r = d;
      if (lo) r = dmax(r, *lo);
      if (hi) r = dmin(r, *hi);
      return r;
    });
  };
  m["Neg"] = [](ShapeCtx& c) { unary_values(c, [](const Dim& d) -> std::optional<Dim> { return Dim(0) - d; }); };
  m["Abs"] = [](ShapeCtx& c) {
    unary_values(c, [](const Dim& d) -> std::optional<Dim> {
      if (d.range().lo >= 0) return d;
      if (d.range().hi <= 0) return Dim(0) - d;
      return std::nullopt;
    });
  };
  m["Not"] = [](ShapeCtx& c) {
    unary_values(c, [](const Dim& d) -> std::optional<Dim> {
      if (!d.is_const()) return std::nullopt;
      return Dim(d.value() == 0 ? 1 : 0);
    });
  };
  m["Cast"] = cast;
  m["QuantizeLinear"] = quantize_linear;
  m["DequantizeLinear"] = dequantize_linear;
  m["Conv"] = conv;
  m["ConvTranspose"] = conv_transpose;
  m["AveragePool"] = pool;
  m["MaxPool"] = pool;
  m["GlobalAveragePool"] = [](ShapeCtx& c) {
    Shape s = c.shape(0);
    if (s.size() < 3) c.fail("input needs rank >= 3");
    for (size_t i = 2; i < s.size(); ++i) s[i] = Dim(1);
    c.set(0, c.dtype(0), s);
  };
  m["MatMul"] = matmul;
  m["Gemm"] = gemm;
  for (const char* op : {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd"}) m[op] = reduce;
  m["Size"] = [](ShapeCtx& c) { c.set(0, DType::Int64, {}, std::vector<Dim>{shape_numel(c.shape(0))}); };
  m["LayerNormalization"] = layernorm;
  m["BatchNormalization"] = batchnorm;
}

}  // namespace unirt
