// Data movement and shape ops: index-by-index references, several element sizes, error cases.
#include <numeric>

#include "cpu/cpu_test_util.h"

using namespace unirt;
using namespace unirt::cputest;

namespace {
Tensor iota_f(std::vector<int64_t> shape) {
  Tensor t = out_f(std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.as<float>()[i] = static_cast<float>(i);
  return t;
}
std::vector<int64_t> unravel(int64_t i, const std::vector<int64_t>& s) {
  std::vector<int64_t> c(s.size());
  for (int k = static_cast<int>(s.size()) - 1; k >= 0; --k) {
    c[k] = i % s[k];
    i /= s[k];
  }
  return c;
}
int64_t ravel(const std::vector<int64_t>& c, const std::vector<int64_t>& s) {
  int64_t i = 0;
  for (size_t k = 0; k < s.size(); ++k) i = i * s[k] + c[k];
  return i;
}
std::vector<double> as_doubles(const Tensor& t) {
  std::vector<double> v(t.numel());
  for (int64_t i = 0; i < t.numel(); ++i) v[i] = t.f(i);
  return v;
}
}  // namespace

TEST(CpuTranspose, AllPermutationsOfRank4) {
  std::vector<int64_t> perm = {0, 1, 2, 3}, xs = {2, 3, 4, 5};
  Tensor x = iota_f(xs);
  do {
    std::vector<int64_t> os(4);
    for (int i = 0; i < 4; ++i) os[i] = xs[perm[i]];
    Node n = node("Transpose", "t");
    n.attrs["perm"] = perm;
    Tensor y = out_f(os);
    run(n, {&x}, {&y});
    for (int64_t i = 0; i < y.numel(); ++i) {
      auto oc = unravel(i, os);
      std::vector<int64_t> ic(4);
      for (int k = 0; k < 4; ++k) ic[perm[k]] = oc[k];
      ASSERT_EQ(y.f(i), x.f(ravel(ic, xs)));
    }
  } while (std::next_permutation(perm.begin(), perm.end()));
}
TEST(CpuTranspose, DefaultReversesAndOtherElementSizes) {
  Tensor x = values<int64_t>(DType::Int64, {2, 3}, {0, 1, 2, 3, 4, 5}), y = empty(DType::Int64, {3, 2});
  run(node("Transpose", "t"), {&x}, {&y});
  EXPECT_EQ(std::vector<int64_t>(y.as<int64_t>(), y.as<int64_t>() + 6), (std::vector<int64_t>{0, 3, 1, 4, 2, 5}));
  Tensor h = values<uint16_t>(DType::Float16, {2, 2}, {1, 2, 3, 4}), hy = empty(DType::Float16, {2, 2});
  run(node("Transpose", "t"), {&h}, {&hy});
  EXPECT_EQ(hy.as<uint16_t>()[1], 3);
  Tensor bad = out_f({2, 3});
  Tensor xf = iota_f({2, 3});
  expect_error(node("Transpose", "blocks.1/transpose"), {&xf}, {&bad}, "output");
}

TEST(CpuSlice, StartsEndsAxesSteps) {
  Tensor x = iota_f({4, 5, 6});
  // axis 2: 5 to -1 step -2 -> 5,3,1; axis 0: 1..100 -> 1,2,3
  Tensor st = shape_input({5, 1}), en = shape_input({-100, 100}), ax = shape_input({2, 0}), sp = shape_input({-2, 1});
  Tensor y = out_f({3, 5, 3});
  run(node("Slice", "slice"), {&x, &st, &en, &ax, &sp}, {&y});
  for (int64_t i = 0; i < y.numel(); ++i) {
    auto c = unravel(i, y.shape);
    ASSERT_EQ(y.f(i), x.f(ravel({1 + c[0], c[1], 5 - 2 * c[2]}, x.shape)));
  }
  // int32 inputs read from data (no host values), default axes/steps.
  Tensor s32 = values<int32_t>(DType::Int32, {1}, {2}), e32 = values<int32_t>(DType::Int32, {1}, {4}), y2 = out_f({2, 5, 6});
  run(node("Slice", "slice32"), {&x, &s32, &e32}, {&y2});
  EXPECT_EQ(y2.f(0), x.f(2 * 30));
  // opset 1 attributes
  Node old = node("Slice", "slice1");
  old.attrs["starts"] = std::vector<int64_t>{1};
  old.attrs["ends"] = std::vector<int64_t>{3};
  old.attrs["axes"] = std::vector<int64_t>{1};
  Tensor y3 = out_f({4, 2, 6});
  run(old, {&x}, {&y3}, 9);
  EXPECT_EQ(y3.f(0), x.f(6));
  Tensor wrong = out_f({4, 3, 6});
  expect_error(old, {&x}, {&wrong}, "output", 9);
}

TEST(CpuConcat, AlongAxesAndTypes) {
  Tensor a = iota_f({2, 2, 3}), b = iota_f({2, 1, 3}), y = out_f({2, 3, 3});
  Node n = node("Concat", "cat");
  n.attrs["axis"] = int64_t{-2};
  run(n, {&a, &b}, {&y});
  for (int64_t i = 0; i < y.numel(); ++i) {
    auto c = unravel(i, y.shape);
    ASSERT_EQ(y.f(i), c[1] < 2 ? a.f(ravel(c, a.shape)) : b.f(ravel({c[0], 0, c[2]}, b.shape)));
  }
  Tensor i1 = i64({1, 2}), i2 = i64({3}), iy = empty(DType::Int64, {3});
  Node n0 = node("Concat", "cat_shape");
  n0.attrs["axis"] = int64_t{0};
  run(n0, {&i1, &i2}, {&iy});
  EXPECT_EQ(iy.as<int64_t>()[2], 3);
  Tensor c = iota_f({2, 4, 3});
  expect_error(n, {&a, &c}, {&y}, "");  // wrong total along the axis
  Tensor d = iota_f({3, 1, 3});
  expect_error(node("Concat", "cat_bad"), {&a, &d}, {&y}, "");
}

TEST(CpuSplit, SizesFromInputAttributeAndOutputs) {
  Tensor x = iota_f({2, 7});
  Node n = node("Split", "split");
  n.attrs["axis"] = int64_t{1};
  Tensor s = shape_input({2, 5}), a = out_f({2, 2}), b = out_f({2, 5});
  run(n, {&x, &s}, {&a, &b});
  EXPECT_EQ(a.f(2), 7.f);
  EXPECT_EQ(b.f(0), 2.f);
  EXPECT_EQ(b.f(9), 13.f);
  Node eq = node("Split", "split_eq");
  eq.attrs["axis"] = int64_t{0};
  Tensor r0 = out_f({1, 7}), r1 = out_f({1, 7});
  run(eq, {&x}, {&r0, &r1});
  EXPECT_EQ(r1.f(0), 7.f);
  Tensor bad = shape_input({3, 5});
  expect_error(n, {&x, &bad}, {&a, &b}, "");
}

TEST(CpuGather, AxesNegativeIndicesAndMatrixIndices) {
  Tensor x = iota_f({3, 4, 2});
  Node n = node("Gather", "gather");
  n.attrs["axis"] = int64_t{1};
  Tensor idx = values<int64_t>(DType::Int64, {2, 2}, {0, -1, 2, 1}), y = out_f({3, 2, 2, 2});
  run(n, {&x, &idx}, {&y});
  const int64_t iv[4] = {0, 3, 2, 1};
  for (int64_t i = 0; i < y.numel(); ++i) {
    auto c = unravel(i, y.shape);
    ASSERT_EQ(y.f(i), x.f(ravel({c[0], iv[c[1] * 2 + c[2]], c[3]}, x.shape)));
  }
  Tensor i32 = values<int32_t>(DType::Int32, {}, {2}), ys = out_f({4, 2});
  run(node("Gather", "g0"), {&x, &i32}, {&ys});
  EXPECT_EQ(ys.f(0), 16.f);
  Tensor oob = values<int64_t>(DType::Int64, {}, {3});
  expect_error(node("Gather", "pos/gather"), {&x, &oob}, {&ys}, "out of range");
}

TEST(CpuExpand, BroadcastsAndChecksShape) {
  Tensor x = iota_f({3, 1}), s = shape_input({2, 1, 4}), y = out_f({2, 3, 4});
  run(node("Expand", "expand"), {&x, &s}, {&y});
  for (int64_t i = 0; i < y.numel(); ++i) ASSERT_EQ(y.f(i), x.f(unravel(i, y.shape)[1]));
  Tensor bad = out_f({2, 3, 5});
  expect_error(node("Expand", "expand_bad"), {&x, &s}, {&bad}, "output");
}

TEST(CpuTile, RepeatsEveryDim) {
  Tensor x = iota_f({2, 3}), r = shape_input({2, 3}), y = out_f({4, 9});
  run(node("Tile", "tile"), {&x, &r}, {&y});
  for (int64_t i = 0; i < y.numel(); ++i) {
    auto c = unravel(i, y.shape);
    ASSERT_EQ(y.f(i), x.f(ravel({c[0] % 2, c[1] % 3}, x.shape)));
  }
  Tensor wrong = out_f({4, 6});
  expect_error(node("Tile", "tile_bad"), {&x, &r}, {&wrong}, "output");
}

namespace {
int64_t pad_map(int64_t c, int64_t n, const std::string& mode, bool& outside) {
  if (c >= 0 && c < n) return c;
  if (mode == "constant") {
    outside = true;
    return 0;
  }
  if (mode == "edge") return c < 0 ? 0 : n - 1;
  if (mode == "wrap") return ((c % n) + n) % n;
  while (c < 0 || c >= n) c = c < 0 ? -c : 2 * (n - 1) - c;
  return c;
}
}  // namespace

TEST(CpuPad, ConstantReflectEdgeWrapAndCrop) {
  for (const std::string mode : {"constant", "reflect", "edge", "wrap"}) {
    Node n = node("Pad", "pad_" + mode);
    n.attrs["mode"] = mode;
    Tensor x = iota_f({2, 3, 4});
    const std::vector<int64_t> pads = {0, 2, 1, 1, 1, -1};  // begins then ends; the last crops
    Tensor p = shape_input(pads), v = floats({}, {-5.f}), y = out_f({3, 6, 4});
    run(n, {&x, &p, &v}, {&y});
    for (int64_t i = 0; i < y.numel(); ++i) {
      auto c = unravel(i, y.shape);
      bool outside = false;
      std::vector<int64_t> ic(3);
      for (int k = 0; k < 3; ++k) ic[k] = pad_map(c[k] - pads[k], x.shape[k], mode, outside);
      ASSERT_EQ(y.f(i), outside ? -5.f : x.f(ravel(ic, x.shape))) << mode << " " << i;
    }
  }
}
TEST(CpuPad, AxesInputAndOldAttributes) {
  Tensor x = iota_f({2, 3}), p = shape_input({1, 2}), ax = shape_input({-1}), nv = none(), y = out_f({2, 6});
  run(node("Pad", "pad_axes"), {&x, &p, &nv, &ax}, {&y});
  EXPECT_EQ(y.f(0), 0.f);
  EXPECT_EQ(y.f(1), 0.f);
  EXPECT_EQ(y.f(2), 1.f);
  Node old = node("Pad", "pad2");
  old.attrs["pads"] = std::vector<int64_t>{0, 1, 0, 0};
  old.attrs["value"] = 9.f;
  Tensor y2 = out_f({2, 4});
  run(old, {&x}, {&y2}, 2);
  EXPECT_EQ(y2.f(0), 9.f);
  EXPECT_EQ(y2.f(1), 0.f);
  Tensor bad = out_f({2, 5});
  expect_error(node("Pad", "window/pad"), {&x, &p, &nv, &ax}, {&bad}, "output");
}

TEST(CpuReshape, ZeroCopiesAndMinusOneInfers) {
  Tensor x = iota_f({2, 3, 4}), s = shape_input({0, -1}), y = out_f({2, 12});
  run(node("Reshape", "reshape"), {&x, &s}, {&y});
  EXPECT_EQ(as_doubles(y), as_doubles(x));
  Tensor bad = shape_input({5, -1});
  Tensor y2 = out_f({5, 5});
  expect_error(node("Reshape", "attn/reshape"), {&x, &bad}, {&y2}, "reshape");
  Tensor wrong = out_f({3, 8});
  expect_error(node("Reshape", "attn/reshape2"), {&x, &s}, {&wrong}, "output");
}
TEST(CpuShapeOps, FlattenSqueezeUnsqueeze) {
  Tensor x = iota_f({2, 1, 3, 1});
  Node f = node("Flatten", "flatten");
  f.attrs["axis"] = int64_t{2};
  Tensor yf = out_f({2, 3});
  run(f, {&x}, {&yf});
  EXPECT_EQ(as_doubles(yf), as_doubles(x));
  Tensor ax = shape_input({1, -1}), ys = out_f({2, 3});
  run(node("Squeeze", "squeeze"), {&x, &ax}, {&ys});
  Tensor all = out_f({2, 3});
  run(node("Squeeze", "squeeze_all"), {&x}, {&all});
  Tensor bad_ax = shape_input({0});
  expect_error(node("Squeeze", "squeeze_bad"), {&x, &bad_ax}, {&all}, "squeeze");
  Node u = node("Unsqueeze", "unsqueeze");
  u.attrs["axes"] = std::vector<int64_t>{0, -1};
  Tensor yu = out_f({1, 2, 1, 3, 1, 1});
  run(u, {&x}, {&yu}, 11);
  EXPECT_EQ(as_doubles(yu), as_doubles(x));
  Tensor wrong = out_f({2, 1, 3, 1, 1, 1});
  expect_error(u, {&x}, {&wrong}, "output", 11);
}
TEST(CpuShapeOps, ShapeWithStartEnd) {
  Tensor x = iota_f({2, 3, 4, 5}), y = empty(DType::Int64, {4});
  run(node("Shape", "shape"), {&x}, {&y});
  EXPECT_EQ(std::vector<int64_t>(y.as<int64_t>(), y.as<int64_t>() + 4), (std::vector<int64_t>{2, 3, 4, 5}));
  Node n = node("Shape", "shape_se");
  n.attrs["start"] = int64_t{1};
  n.attrs["end"] = int64_t{-1};
  Tensor y2 = empty(DType::Int64, {2});
  run(n, {&x}, {&y2});
  EXPECT_EQ(y2.as<int64_t>()[0], 3);
  EXPECT_EQ(y2.as<int64_t>()[1], 4);
}
TEST(CpuShapeOps, ConstantOfShape) {
  Node n = node("ConstantOfShape", "cos");
  n.attrs["value"] = TensorData::from_int64({7}, {1});
  Tensor s = shape_input({2, 3}), y = empty(DType::Int64, {2, 3});
  run(n, {&s}, {&y});
  for (int i = 0; i < 6; ++i) EXPECT_EQ(y.as<int64_t>()[i], 7);
  Tensor f = out_f({4});
  Tensor s4 = shape_input({4});
  run(node("ConstantOfShape", "zeros"), {&s4}, {&f});
  for (int i = 0; i < 4; ++i) EXPECT_EQ(f.f(i), 0.f);
}
TEST(CpuShapeOps, RangeFloatAndInt) {
  Tensor s = floats({}, {1.f}), l = floats({}, {2.f}), d = floats({}, {0.25f}), y = out_f({4});
  run(node("Range", "range"), {&s, &l, &d}, {&y});
  expect_near_all(y, {1.0, 1.25, 1.5, 1.75});
  Tensor si = i64({10}, {}), li = i64({1}, {}), di = i64({-3}, {}), yi = empty(DType::Int64, {3});
  run(node("Range", "range_i"), {&si, &li, &di}, {&yi});
  EXPECT_EQ(std::vector<int64_t>(yi.as<int64_t>(), yi.as<int64_t>() + 3), (std::vector<int64_t>{10, 7, 4}));
  Tensor wrong = empty(DType::Int64, {4});
  expect_error(node("Range", "range_bad"), {&si, &li, &di}, {&wrong}, "output");
}
TEST(CpuShapeOps, Constant) {
  Node n = node("Constant", "const");
  n.attrs["value_ints"] = std::vector<int64_t>{4, 5};
  Tensor y = empty(DType::Int64, {2});
  run(n, {}, {&y});
  EXPECT_EQ(y.as<int64_t>()[1], 5);
  Node t = node("Constant", "const_t");
  t.attrs["value"] = TensorData::from_float({1.5f, 2.5f, 3.5f}, {3});
  Tensor yf = out_f({3});
  run(t, {}, {&yf});
  expect_near_all(yf, {1.5, 2.5, 3.5});
  Tensor wrong = out_f({2});
  expect_error(t, {}, {&wrong}, "output");
}
