// Shape functions: index ops (GatherElements, ScatterElements, ScatterND, TopK, ArgMax/ArgMin).
// Token pruning (argsort -> TopK, gather, in-place index writes -> ScatterND) and the detector's
// top-k selections use them. TopK's k may be a shape value (argsort exports k = Shape(x)[axis]).
#include "passes/shape_inference.h"

namespace unirt {
namespace {

bool is_index_type(DType t) { return t == DType::Int64 || t == DType::Int32; }

// The element-wise index ops: data and indices of one rank >= 1, indices int64/int32, axis valid.
void check_element_indices(ShapeCtx& c) {
  const Shape& x = c.shape(0);
  const Shape& idx = c.shape(1);
  if (!is_index_type(c.dtype(1))) c.fail("indices must be int64 or int32");
  if (x.size() != idx.size() || x.empty())
    c.fail("data " + shape_str(x) + " and indices " + shape_str(idx) + " must have the same rank >= 1");
  c.axis(c.node().attr_i("axis", 0), x.size());
}

void gather_elements(ShapeCtx& c) {
  check_element_indices(c);
  c.set(0, c.dtype(0), c.shape(1));
}

void scatter_elements(ShapeCtx& c) {
  check_element_indices(c);
  const Shape& x = c.shape(0);
  const Shape& idx = c.shape(1);
  const Shape& upd = c.shape(2);
  if (c.dtype(2) != c.dtype(0)) c.fail("updates and data have different types");
  if (upd.size() != idx.size()) c.fail("updates " + shape_str(upd) + " and indices " + shape_str(idx) + " must have the same rank");
  for (size_t d = 0; d < idx.size(); ++d)
    c.require_equal(idx[d], upd[d], "dimension " + std::to_string(d) + " of indices vs updates");
  c.set(0, c.dtype(0), x);
}

void scatter_nd(ShapeCtx& c) {
  const Shape& x = c.shape(0);
  const Shape& idx = c.shape(1);
  const Shape& upd = c.shape(2);
  if (!is_index_type(c.dtype(1))) c.fail("indices must be int64 or int32");
  if (c.dtype(2) != c.dtype(0)) c.fail("updates and data have different types");
  if (idx.empty() || !idx.back().is_const()) c.fail("the last dimension of indices " + shape_str(idx) + " must be constant");
  const int64_t k = idx.back().value();
  if (k < 1 || k > static_cast<int64_t>(x.size())) c.fail("indices address " + std::to_string(k) + " dims of rank-" + std::to_string(x.size()) + " data");
  // updates = indices.shape[:-1] + data.shape[k:]
  Shape want(idx.begin(), idx.end() - 1);
  want.insert(want.end(), x.begin() + k, x.end());
  if (upd.size() != want.size()) c.fail("updates " + shape_str(upd) + " should have shape " + shape_str(want));
  for (size_t d = 0; d < want.size(); ++d)
    c.require_equal(upd[d], want[d], "dimension " + std::to_string(d) + " of updates " + shape_str(upd) + " vs " + shape_str(want));
  c.set(0, c.dtype(0), x);
}

void topk(ShapeCtx& c) {
  const Shape& x = c.shape(0);
  if (x.empty()) c.fail("input must have rank >= 1");
  const int64_t a = c.axis(c.node().attr_i("axis", -1), x.size());
  std::vector<Dim> k;
  if (c.opset() < 10) k = {Dim(c.node().attr_i("k"))};
  else k = c.need_values(1, "k");
  if (k.size() != 1) c.fail("k must hold one value");
  if (dim_lt(k[0], Dim(0)) == Truth::True) c.fail("k is negative (" + k[0].brief() + ")");
  if (dim_lt(x[a], k[0]) == Truth::True) c.fail("k " + k[0].brief() + " exceeds the axis length " + x[a].brief());
  if (dim_lt(x[a], k[0]) == Truth::Unknown)
    c.require_equal(dmin(k[0], x[a]), k[0], "k " + k[0].brief() + " <= axis length " + x[a].brief());
  Shape out = x;
  out[a] = k[0];
  c.set(0, c.dtype(0), out);
  c.set(1, DType::Int64, out);
}

void arg_reduce(ShapeCtx& c) {
  const Shape& x = c.shape(0);
  if (x.empty()) c.fail("input must have rank >= 1");
  const int64_t a = c.axis(c.node().attr_i("axis", 0), x.size());
  Shape out;
  for (size_t i = 0; i < x.size(); ++i) {
    if (static_cast<int64_t>(i) != a) out.push_back(x[i]);
    else if (c.node().attr_i("keepdims", 1)) out.push_back(Dim(1));
  }
  c.set(0, DType::Int64, out);
}

}  // namespace

void register_shape_fns_index(std::map<std::string, ShapeFn>& m) {
  m["GatherElements"] = gather_elements;
  m["ScatterElements"] = scatter_elements;
  m["ScatterND"] = scatter_nd;
  m["TopK"] = topk;
  m["ArgMax"] = arg_reduce;
  m["ArgMin"] = arg_reduce;
}

}  // namespace unirt
