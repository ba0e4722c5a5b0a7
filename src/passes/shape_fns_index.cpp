// Shape functions: index ops (GatherElements, ScatterElements, ScatterND, TopK, ArgMax/ArgMin,
// NonZero, NonMaxSuppression). Token pruning (argsort -> TopK, gather, in-place index writes ->
// ScatterND) and the detector's selections use them. TopK's k may be a shape value (argsort
// exports k = Shape(x)[axis]) or tensor data; NonZero's and NonMaxSuppression's output lengths
// are data-dependent sizes (ShapeCtx::data_dim) bounded by their inputs' sizes.
#include <cmath>

#include "passes/shape_inference.h"

namespace unirt {
namespace {

bool is_index_type(DType t) { return t == DType::Int64 || t == DType::Int32; }
bool is_float(DType t) { return t == DType::Float32 || t == DType::Float16; }

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
  else if (auto known = c.values(1)) k = *known;
  else {
    if (c.dtype(1) != DType::Int64) c.fail("k must be int64");
    c.require_equal(shape_numel(c.shape(1)), Dim(1), "k " + shape_str(c.shape(1)) + " holds one value");
    k = {c.data_dim(x[a])};  // the kernel reads k and writes it back as the size
  }
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

void nonzero(ShapeCtx& c) {
  const Shape& x = c.shape(0);
  if (x.empty()) c.fail("input must have rank >= 1");
  Dim count;
  if (const auto& d = c.in(0).data) {
    int64_t n = 0;
    const size_t es = dtype_size(d->dtype);
    for (int64_t i = 0; i < d->numel(); ++i) n += element_nonzero(d->dtype, d->bytes.data() + i * es);
    count = Dim(n);
  } else {
    count = c.data_dim(shape_numel(x));
  }
  c.set(0, DType::Int64, {Dim(static_cast<int64_t>(x.size())), count});
}

void non_max_suppression(ShapeCtx& c) {
  const Shape& boxes = c.shape(0);
  const Shape& scores = c.shape(1);
  if (boxes.size() != 3) c.fail("boxes must be [batch, boxes, 4], got " + shape_str(boxes));
  if (scores.size() != 3) c.fail("scores must be [batch, classes, boxes], got " + shape_str(scores));
  if (c.dtype(0) != DType::Float32 || c.dtype(1) != DType::Float32) c.fail("boxes and scores must be float32");
  if (c.node().attr_i("center_point_box", 0) != 0 && c.node().attr_i("center_point_box", 0) != 1)
    c.fail("center_point_box must be 0 or 1");
  c.require_equal(boxes[2], Dim(4), "the last dimension of boxes " + shape_str(boxes) + " is 4");
  c.require_equal(boxes[0], scores[0], "the batch of boxes " + shape_str(boxes) + " and scores " + shape_str(scores));
  c.require_equal(boxes[1], scores[2], "the box count of boxes " + shape_str(boxes) + " and scores " + shape_str(scores));
  if (c.has(2) && c.dtype(2) != DType::Int64) c.fail("max_output_boxes_per_class must be int64");
  for (int i = 3; i < 5; ++i)
    if (c.has(i) && c.dtype(i) != DType::Float32) c.fail(std::string(i == 3 ? "iou" : "score") + "_threshold must be float32");
  // Per batch and class at most min(boxes, max_output_boxes_per_class), which defaults to 0.
  Dim per_class = boxes[1];
  if (!c.has(2)) per_class = Dim(0);
  else if (auto m = c.values(2)) {
    if (m->size() != 1) c.fail("max_output_boxes_per_class must hold one value");
    per_class = dmin(boxes[1], dmax((*m)[0], Dim(0)));
  }
  const Dim bound = boxes[0] * scores[1] * per_class;
  const Dim count = bound.is_const(0) ? Dim(0) : c.data_dim(bound);
  c.set(0, DType::Int64, {count, Dim(3)});
}

// RoiAlign: X [N, C, H, W], rois [R, 4] (x1, y1, x2, y2), batch_indices [R] -> [R, C, oh, ow].
void roi_align(ShapeCtx& c) {
  const Shape& x = c.shape(0);
  const Shape& rois = c.shape(1);
  const Shape& bi = c.shape(2);
  if (x.size() != 4) c.fail("X must be [N, C, H, W], got " + shape_str(x));
  if (rois.size() != 2) c.fail("rois must be [num_rois, 4], got " + shape_str(rois));
  if (bi.size() != 1) c.fail("batch_indices must be [num_rois], got " + shape_str(bi));
  if (!is_float(c.dtype(0)) || !is_float(c.dtype(1))) c.fail("X and rois must be floating point");
  if (!is_index_type(c.dtype(2))) c.fail("batch_indices must be int64 or int32");
  c.require_equal(rois[1], Dim(4), "the last dimension of rois " + shape_str(rois) + " is 4");
  c.require_equal(rois[0], bi[0], "the RoI count of rois " + shape_str(rois) + " and batch_indices " + shape_str(bi));
  const int64_t oh = c.node().attr_i("output_height", 1), ow = c.node().attr_i("output_width", 1);
  const int64_t sr = c.node().attr_i("sampling_ratio", 0);
  if (oh < 1 || ow < 1 || oh > 4096 || ow > 4096) c.fail("output_height/output_width must be in 1..4096");
  if (sr < 0 || sr > 4096) c.fail("sampling_ratio must be in 0..4096");
  const float scale = c.node().attr_f("spatial_scale", 1.0f);
  if (!(scale > 0.f) || !std::isfinite(scale)) c.fail("spatial_scale must be positive and finite");
  c.set(0, c.dtype(0), {rois[0], x[1], Dim(oh), Dim(ow)});
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
  m["NonZero"] = nonzero;
  m["NonMaxSuppression"] = non_max_suppression;
  m["RoiAlign"] = roi_align;
}

}  // namespace unirt
