// BatchNormalization, LayerNormalization, Softmax, reductions and pools against double loops.
#include "cpu/cpu_test_util.h"

using namespace unirt;
using namespace unirt::cputest;

TEST(CpuBatchNorm, InferenceMatchesReference) {
  Node n = node("BatchNormalization", "bn");
  n.attrs["epsilon"] = 1e-3f;
  Tensor x = randf({2, 3, 4, 5}, 1), g = randf({3}, 2), b = randf({3}, 3), m = randf({3}, 4), v = randf({3}, 5, 0.1f, 2.f);
  Tensor y = out_f({2, 3, 4, 5});
  run(n, {&x, &g, &b, &m, &v}, {&y});
  std::vector<double> want(120);
  for (int64_t i = 0; i < 120; ++i) {
    const int64_t c = (i / 20) % 3;
    want[i] = (x.f(i) - m.f(c)) / std::sqrt(double(v.f(c)) + 1e-3) * g.f(c) + b.f(c);
  }
  expect_near_all(y, want);
}
TEST(CpuBatchNorm, TrainingModeAndBadParamsAreErrors) {
  Node n = node("BatchNormalization", "bn_train");
  n.attrs["training_mode"] = int64_t{1};
  Graph g;
  EXPECT_THROW((*KernelRegistry::get("cpu").find("BatchNormalization"))(KernelCreateArgs{g, n, Precision::FP32}), Error);
  Tensor x = randf({1, 3, 2, 2}, 1), p = randf({4}, 2), y = out_f({1, 3, 2, 2});
  expect_error(node("BatchNormalization", "stem/bn"), {&x, &p, &p, &p, &p}, {&y}, "scale");
}

namespace {
void check_layernorm(std::vector<int64_t> xs, int64_t axis, std::vector<int64_t> ss, bool bias, bool stats) {
  Node n = node("LayerNormalization", "ln");
  n.attrs["axis"] = axis;
  n.attrs["epsilon"] = 1e-6f;
  Tensor x = randf(xs, 1), g = randf(ss, 2), b = randf(ss, 3), nb = none(), y = out_f(xs);
  const int64_t r = static_cast<int64_t>(xs.size()), a = axis < 0 ? axis + r : axis;
  std::vector<int64_t> norm(xs.begin() + a, xs.end()), st(xs.begin(), xs.begin() + a);
  st.resize(xs.size(), 1);
  Tensor mean = out_f(st), rstd = out_f(st);
  std::vector<Tensor*> outs = {&y};
  if (stats) outs = {&y, &mean, &rstd};
  run(n, {&x, &g, bias ? &b : &nb}, outs);
  int64_t D = 1;
  for (auto d : norm) D *= d;
  const int64_t rows = x.numel() / D;
  std::vector<double> want(x.numel()), wm(rows), wr(rows);
  for (int64_t row = 0; row < rows; ++row) {
    double mu = 0, var = 0;
    for (int64_t i = 0; i < D; ++i) mu += x.f(row * D + i);
    mu /= D;
    for (int64_t i = 0; i < D; ++i) var += (x.f(row * D + i) - mu) * (x.f(row * D + i) - mu);
    var /= D;
    wm[row] = mu;
    wr[row] = 1 / std::sqrt(var + 1e-6);
    for (int64_t i = 0; i < D; ++i)
      want[row * D + i] = (x.f(row * D + i) - mu) * wr[row] * g.f(bcast_index(i, norm, ss)) + (bias ? b.f(bcast_index(i, norm, ss)) : 0);
  }
  expect_near_all(y, want, 1e-5, 1e-5);
  if (stats) {
    expect_near_all(mean, wm, 1e-6, 1e-5);
    expect_near_all(rstd, wr, 1e-5, 1e-5);
  }
}
}  // namespace

TEST(CpuLayerNorm, LastAxis) { check_layernorm({2, 5, 16}, -1, {16}, true, false); }
TEST(CpuLayerNorm, MultiDimAxisNoBiasWithStats) { check_layernorm({3, 4, 5}, 1, {4, 5}, false, true); }
TEST(CpuLayerNorm, BroadcastScale) { check_layernorm({2, 3, 4}, 1, {1, 4}, true, true); }
TEST(CpuLayerNorm, LargeParallel) { check_layernorm({64, 49, 128}, -1, {128}, true, false); }
TEST(CpuLayerNorm, WrongScaleNamesTheNode) {
  Tensor x = randf({2, 8}, 1), g = randf({7}, 2), y = out_f({2, 8});
  expect_error(node("LayerNormalization", "norm1"), {&x, &g}, {&y}, "Scale");
}

namespace {
void check_softmax(std::vector<int64_t> xs, int64_t axis, int64_t opset) {
  Node n = node("Softmax", "softmax");
  n.attrs["axis"] = axis;
  Tensor x = randf(xs, 7, -5, 5), y = out_f(xs);
  run(n, {&x}, {&y}, opset);
  const int64_t r = static_cast<int64_t>(xs.size()), a = axis < 0 ? axis + r : axis;
  int64_t outer = 1, len = 1, inner = 1;
  for (int64_t i = 0; i < r; ++i) {
    if (i < a) outer *= xs[i];
    else if (i == a || opset < 13) len *= xs[i];
    else inner *= xs[i];
  }
  std::vector<double> want(x.numel());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t in = 0; in < inner; ++in) {
      double s = 0;
      for (int64_t k = 0; k < len; ++k) s += std::exp(double(x.f((o * len + k) * inner + in)));
      for (int64_t k = 0; k < len; ++k) want[(o * len + k) * inner + in] = std::exp(double(x.f((o * len + k) * inner + in))) / s;
    }
  expect_near_all(y, want, 1e-6, 1e-5);
}
}  // namespace

TEST(CpuSoftmax, LastAxis) { check_softmax({4, 3, 10}, -1, 13); }
TEST(CpuSoftmax, MiddleAxis) { check_softmax({2, 5, 3, 4}, 1, 13); }
TEST(CpuSoftmax, LargeAttentionScores) { check_softmax({8, 49, 49}, -1, 17); }
TEST(CpuSoftmax, LegacyCoercesTo2D) { check_softmax({2, 3, 4}, 1, 11); }
TEST(CpuSoftmax, AxisOutOfRange) {
  Node n = node("Softmax", "attn/softmax");
  n.attrs["axis"] = int64_t{3};
  Tensor x = randf({2, 3}, 1), y = out_f({2, 3});
  expect_error(n, {&x}, {&y}, "axis");
}

namespace {
enum class R { Mean, Sum, Max };
void check_reduce(const std::string& op, R kind, std::vector<int64_t> xs, std::vector<int64_t> axes, bool keep, bool as_input) {
  Node n = node(op, "reduce");
  n.attrs["keepdims"] = int64_t{keep};
  if (!as_input && !axes.empty()) n.attrs["axes"] = axes;
  const int64_t r = static_cast<int64_t>(xs.size());
  std::vector<bool> red(xs.size(), axes.empty());
  for (auto a : axes) red[a < 0 ? a + r : a] = true;
  std::vector<int64_t> os, kept;
  for (int64_t i = 0; i < r; ++i) {
    if (!red[i]) os.push_back(xs[i]);
    else if (keep) os.push_back(1);
  }
  Tensor x = randf(xs, 9), y = out_f(os), ax = shape_input(axes);
  if (as_input) run(n, {&x, &ax}, {&y}, 18);
  else run(n, {&x}, {&y}, 11);
  int64_t nout = 1;
  for (int64_t i = 0; i < r; ++i)
    if (!red[i]) nout *= xs[i];
  std::vector<double> acc(nout, kind == R::Max ? -INFINITY : 0.0);
  std::vector<int64_t> cnt(nout, 0);
  for (int64_t i = 0; i < x.numel(); ++i) {
    int64_t rem = i, o = 0, mul = 1;
    for (int64_t k = r - 1; k >= 0; --k) {
      const int64_t c = rem % xs[k];
      rem /= xs[k];
      if (!red[k]) {
        o += c * mul;
        mul *= xs[k];
      }
    }
    acc[o] = kind == R::Max ? std::max(acc[o], double(x.f(i))) : acc[o] + x.f(i);
    ++cnt[o];
  }
  if (kind == R::Mean)
    for (int64_t o = 0; o < nout; ++o) acc[o] /= cnt[o];
  SCOPED_TRACE(op);
  expect_near_all(y, acc, 1e-5, 1e-5);
}
}  // namespace

TEST(CpuReduce, MeanTailAndInner) {
  check_reduce("ReduceMean", R::Mean, {2, 3, 4}, {-1}, true, false);
  check_reduce("ReduceMean", R::Mean, {2, 3, 4, 5}, {2, 3}, true, true);
  check_reduce("ReduceMean", R::Mean, {2, 3, 4}, {1}, false, true);
}
TEST(CpuReduce, SumNonContiguousAxesAndAll) {
  check_reduce("ReduceSum", R::Sum, {3, 4, 5}, {0, 2}, false, true);
  check_reduce("ReduceSum", R::Sum, {3, 4, 5}, {}, false, false);
  check_reduce("ReduceSum", R::Sum, {64, 300}, {0}, true, true);
}
TEST(CpuReduce, Max) {
  check_reduce("ReduceMax", R::Max, {3, 4, 5}, {1}, true, false);
  check_reduce("ReduceMax", R::Max, {3, 4, 5}, {0, -1}, false, true);
}
TEST(CpuReduce, NoopWithEmptyAxesAndIntegers) {
  Node n = node("ReduceSum", "rs");
  n.attrs["noop_with_empty_axes"] = int64_t{1};
  Tensor x = randf({2, 3}, 1), y = out_f({2, 3}), ax = shape_input({});
  run(n, {&x, &ax}, {&y});
  for (int i = 0; i < 6; ++i) EXPECT_EQ(y.f(i), x.f(i));
  Node s = node("ReduceSum", "rs_int");
  s.attrs["keepdims"] = int64_t{0};
  Tensor xi = values<int64_t>(DType::Int64, {2, 2}, {1, 2, 3, 4}), a1 = shape_input({1}), yi = empty(DType::Int64, {2});
  run(s, {&xi, &a1}, {&yi});
  EXPECT_EQ(yi.as<int64_t>()[0], 3);
  EXPECT_EQ(yi.as<int64_t>()[1], 7);
}
TEST(CpuReduce, WrongOutputShapeNamesTheNode) {
  Node n = node("ReduceMean", "gap/mean");
  n.attrs["axes"] = std::vector<int64_t>{1};
  Tensor x = randf({2, 3}, 1), y = out_f({3});
  expect_error(n, {&x}, {&y}, "output", 13);
}

namespace {
// Reference 2-D pooling with explicit pads; include_pad counts padded cells inside the explicit pads.
std::vector<double> pool_ref(const Tensor& x, std::vector<int64_t> os, std::vector<int64_t> k, std::vector<int64_t> s,
                             std::vector<int64_t> p, std::vector<int64_t> d, bool is_max, bool include_pad) {
  const int64_t NC = x.shape[0] * x.shape[1], H = x.shape[2], W = x.shape[3], OH = os[2], OW = os[3];
  std::vector<double> r(NC * OH * OW);
  for (int64_t nc = 0; nc < NC; ++nc)
    for (int64_t oy = 0; oy < OH; ++oy)
      for (int64_t ox = 0; ox < OW; ++ox) {
        double acc = is_max ? -INFINITY : 0;
        int64_t cnt = 0;
        for (int64_t ky = 0; ky < k[0]; ++ky)
          for (int64_t kx = 0; kx < k[1]; ++kx) {
            const int64_t iy = oy * s[0] - p[0] + ky * d[0], ix = ox * s[1] - p[1] + kx * d[1];
            if (iy >= 0 && iy < H && ix >= 0 && ix < W) {
              const double v = x.f((nc * H + iy) * W + ix);
              acc = is_max ? std::max(acc, v) : acc + v;
              ++cnt;
            } else if (include_pad && iy < H + p[2] && ix < W + p[3]) {
              ++cnt;
            }
          }
        r[(nc * OH + oy) * OW + ox] = is_max ? acc : acc / cnt;
      }
  return r;
}
}  // namespace

TEST(CpuPool, GlobalAveragePool) {
  Tensor x = randf({2, 3, 5, 7}, 1), y = out_f({2, 3, 1, 1});
  run(node("GlobalAveragePool", "gap"), {&x}, {&y});
  std::vector<double> want(6, 0);
  for (int64_t i = 0; i < x.numel(); ++i) want[i / 35] += x.f(i) / 35.0;
  expect_near_all(y, want);
  Tensor bad = out_f({2, 3});
  expect_error(node("GlobalAveragePool", "head/gap"), {&x}, {&bad}, "output");
}
TEST(CpuPool, AveragePoolPadsExcludeAndInclude) {
  for (int include = 0; include < 2; ++include) {
    Node n = node("AveragePool", "avg");
    n.attrs["kernel_shape"] = std::vector<int64_t>{3, 3};
    n.attrs["strides"] = std::vector<int64_t>{2, 2};
    n.attrs["pads"] = std::vector<int64_t>{1, 1, 1, 1};
    n.attrs["count_include_pad"] = int64_t{include};
    Tensor x = randf({1, 2, 7, 7}, 2), y = out_f({1, 2, 4, 4});
    run(n, {&x}, {&y});
    expect_near_all(y, pool_ref(x, y.shape, {3, 3}, {2, 2}, {1, 1, 1, 1}, {1, 1}, false, include), 1e-6, 1e-5);
  }
}
TEST(CpuPool, AveragePoolCeilModeOverhangNotCounted) {
  Node n = node("AveragePool", "avg_ceil");
  n.attrs["kernel_shape"] = std::vector<int64_t>{2, 2};
  n.attrs["strides"] = std::vector<int64_t>{2, 2};
  n.attrs["ceil_mode"] = int64_t{1};
  Tensor x = randf({1, 1, 5, 5}, 3), y = out_f({1, 1, 3, 3});
  run(n, {&x}, {&y});
  expect_near_all(y, pool_ref(x, y.shape, {2, 2}, {2, 2}, {0, 0, 0, 0}, {1, 1}, false, false), 1e-6, 1e-5);
}
TEST(CpuPool, MaxPoolDilatedWithIndices) {
  Node n = node("MaxPool", "maxpool");
  n.attrs["kernel_shape"] = std::vector<int64_t>{2, 3};
  n.attrs["strides"] = std::vector<int64_t>{1, 2};
  n.attrs["dilations"] = std::vector<int64_t>{2, 1};
  n.attrs["pads"] = std::vector<int64_t>{0, 1, 0, 1};
  Tensor x = randf({2, 2, 6, 7}, 4);
  const int64_t oh = (6 - 2 * 1 - 1) / 1 + 1, ow = (7 + 2 - 3) / 2 + 1;
  Tensor y = out_f({2, 2, oh, ow}), idx = empty(DType::Int64, {2, 2, oh, ow});
  run(n, {&x}, {&y, &idx});
  expect_near_all(y, pool_ref(x, y.shape, {2, 3}, {1, 2}, {0, 1, 0, 1}, {2, 1}, true, false));
  for (int64_t i = 0; i < y.numel(); ++i) EXPECT_EQ(x.f(idx.as<int64_t>()[i]), y.f(i));
}
TEST(CpuPool, OneDimensionalMaxPool) {
  Node n = node("MaxPool", "mp1d");
  n.attrs["kernel_shape"] = std::vector<int64_t>{3};
  n.attrs["strides"] = std::vector<int64_t>{2};
  Tensor x = floats({1, 1, 7}, {1, 5, 2, 0, 3, 9, 4}), y = out_f({1, 1, 3});
  run(n, {&x}, {&y});
  expect_near_all(y, {5, 3, 9});
}
TEST(CpuPool, KernelRankMismatchNamesTheNode) {
  Node n = node("MaxPool", "stem/pool");
  n.attrs["kernel_shape"] = std::vector<int64_t>{3};
  Tensor x = randf({1, 1, 5, 5}, 1), y = out_f({1, 1, 3, 3});
  expect_error(n, {&x}, {&y}, "kernel_shape");
}
