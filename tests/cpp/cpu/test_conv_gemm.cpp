// Conv, MatMul and Gemm against double-precision loops on random data.
#include "cpu/cpu_test_util.h"

using namespace unirt;
using namespace unirt::cputest;

namespace {

struct ConvCase {
  std::vector<int64_t> x;  // N, C, spatial...
  int64_t m;               // output channels
  std::vector<int64_t> k, s, p, d;  // per spatial dim; p: begins then ends
  int64_t group;
  bool bias;
};

// Reference conv for 1-3 spatial dims (padded to 3 with size-1 dims).
void check_conv(const ConvCase& c, int threads = 2) {
  const int nsp = static_cast<int>(c.x.size()) - 2;
  Node n = node("Conv", "conv_under_test");
  n.attrs["group"] = c.group;
  n.attrs["strides"] = c.s;
  n.attrs["pads"] = c.p;
  n.attrs["dilations"] = c.d;
  n.attrs["kernel_shape"] = c.k;
  const int64_t N = c.x[0], C = c.x[1], M = c.m, cg = C / c.group, mg = M / c.group;
  std::vector<int64_t> wshape = {M, cg};
  wshape.insert(wshape.end(), c.k.begin(), c.k.end());
  std::vector<int64_t> oshape = {N, M};
  int64_t in3[3] = {1, 1, 1}, k3[3] = {1, 1, 1}, s3[3] = {1, 1, 1}, p3[3] = {0, 0, 0}, d3[3] = {1, 1, 1}, o3[3] = {1, 1, 1};
  for (int i = 0; i < nsp; ++i) {
    const int j = 3 - nsp + i;
    in3[j] = c.x[2 + i];
    k3[j] = c.k[i];
    s3[j] = c.s[i];
    p3[j] = c.p[i];
    d3[j] = c.d[i];
    o3[j] = (in3[j] + c.p[i] + c.p[i + nsp] - d3[j] * (k3[j] - 1) - 1) / s3[j] + 1;
    oshape.push_back(o3[j]);
  }
  Tensor x = randf(c.x, 1), w = randf(wshape, 2), b = randf({M}, 3), y = out_f(oshape);
  Tensor nb = none();
  run(n, {&x, &w, c.bias ? &b : &nb}, {&y}, 18, threads);
  std::vector<double> want(static_cast<size_t>(y.numel()));
  const int64_t ksz = k3[0] * k3[1] * k3[2], isz = in3[0] * in3[1] * in3[2];
  for (int64_t in = 0; in < N; ++in)
    for (int64_t om = 0; om < M; ++om)
      for (int64_t oz = 0; oz < o3[0]; ++oz)
        for (int64_t oy = 0; oy < o3[1]; ++oy)
          for (int64_t ox = 0; ox < o3[2]; ++ox) {
            double acc = c.bias ? b.f(om) : 0.0;
            const int64_t g = om / mg;
            for (int64_t ic = 0; ic < cg; ++ic)
              for (int64_t kz = 0; kz < k3[0]; ++kz)
                for (int64_t ky = 0; ky < k3[1]; ++ky)
                  for (int64_t kx = 0; kx < k3[2]; ++kx) {
                    const int64_t iz = oz * s3[0] - p3[0] + kz * d3[0], iy = oy * s3[1] - p3[1] + ky * d3[1],
                                  ix = ox * s3[2] - p3[2] + kx * d3[2];
                    if (iz < 0 || iz >= in3[0] || iy < 0 || iy >= in3[1] || ix < 0 || ix >= in3[2]) continue;
                    acc += double(x.f((in * C + g * cg + ic) * isz + (iz * in3[1] + iy) * in3[2] + ix)) *
                           w.f((om * cg + ic) * ksz + (kz * k3[1] + ky) * k3[2] + kx);
                  }
            want[(((in * M + om) * o3[0] + oz) * o3[1] + oy) * o3[2] + ox] = acc;
          }
  expect_near_all(y, want, 1e-4, 1e-4);
}

}  // namespace

TEST(CpuConv, Dense) { check_conv({{2, 4, 9, 7}, 6, {3, 3}, {1, 1}, {1, 1, 1, 1}, {1, 1}, 1, true}); }
TEST(CpuConv, DenseNoBiasAsymmetricPads) { check_conv({{1, 3, 8, 8}, 5, {3, 2}, {1, 1}, {0, 1, 2, 0}, {1, 1}, 1, false}); }
TEST(CpuConv, GroupedStrided) { check_conv({{1, 8, 10, 10}, 8, {3, 3}, {2, 2}, {1, 1, 1, 1}, {1, 1}, 2, true}); }
TEST(CpuConv, Depthwise3x3) { check_conv({{2, 6, 11, 9}, 6, {3, 3}, {1, 1}, {1, 1, 1, 1}, {1, 1}, 6, true}); }
TEST(CpuConv, Depthwise5x5) { check_conv({{1, 5, 12, 12}, 5, {5, 5}, {1, 1}, {2, 2, 2, 2}, {1, 1}, 5, true}); }
TEST(CpuConv, DepthwiseStridedDilated) { check_conv({{1, 4, 13, 13}, 4, {3, 3}, {2, 2}, {1, 1, 1, 1}, {2, 2}, 4, false}); }
TEST(CpuConv, DepthwiseMultiplier) { check_conv({{1, 3, 7, 7}, 6, {3, 3}, {1, 1}, {1, 1, 1, 1}, {1, 1}, 3, true}); }
TEST(CpuConv, DilatedDense) { check_conv({{1, 3, 12, 12}, 4, {3, 3}, {1, 2}, {2, 2, 2, 2}, {2, 3}, 1, true}); }
TEST(CpuConv, Pointwise) { check_conv({{2, 8, 6, 6}, 16, {1, 1}, {1, 1}, {0, 0, 0, 0}, {1, 1}, 1, true}); }
TEST(CpuConv, PatchEmbedding) { check_conv({{1, 3, 16, 16}, 8, {4, 4}, {4, 4}, {0, 0, 0, 0}, {1, 1}, 1, true}); }
TEST(CpuConv, OneDimensional) { check_conv({{2, 3, 15}, 4, {3}, {2}, {1, 1}, {1}, 1, true}); }
TEST(CpuConv, ThreeDimensional) { check_conv({{1, 4, 4, 6, 6}, 4, {3, 3, 3}, {1, 2, 2}, {1, 1, 1, 1, 1, 1}, {1, 1, 1}, 2, true}); }
TEST(CpuConv, SingleThreadMatches) { check_conv({{1, 6, 9, 9}, 6, {3, 3}, {1, 1}, {1, 1, 1, 1}, {1, 1}, 6, true}, 1); }

TEST(CpuConv, AutoPadSameUpper) {
  Node n = node("Conv", "same_conv");
  n.attrs["auto_pad"] = std::string("SAME_UPPER");
  n.attrs["strides"] = std::vector<int64_t>{2, 2};
  Tensor x = randf({1, 2, 7, 7}, 4), w = randf({3, 2, 3, 3}, 5), y = out_f({1, 3, 4, 4});
  run(n, {&x, &w}, {&y});
  // total pad per dim = (4-1)*2 + 3 - 7 = 2 -> 1 before, 1 after: same as explicit pads.
  Node e = node("Conv", "explicit");
  e.attrs["strides"] = std::vector<int64_t>{2, 2};
  e.attrs["pads"] = std::vector<int64_t>{1, 1, 1, 1};
  Tensor y2 = out_f({1, 3, 4, 4});
  run(e, {&x, &w}, {&y2});
  for (int64_t i = 0; i < y.numel(); ++i) EXPECT_FLOAT_EQ(y.f(i), y2.f(i));
}

TEST(CpuConv, WrongChannelsNameTheNode) {
  Node n = node("Conv", "stage1/my_conv");
  Tensor x = randf({1, 3, 5, 5}, 1), w = randf({2, 4, 3, 3}, 2), y = out_f({1, 2, 3, 3});
  expect_error(n, {&x, &w}, {&y}, "channels");
}

TEST(CpuConv, WrongOutputShapeAndBias) {
  Node n = node("Conv", "bad_conv");
  Tensor x = randf({1, 3, 5, 5}, 1), w = randf({2, 3, 3, 3}, 2), y = out_f({1, 2, 4, 4});
  expect_error(n, {&x, &w}, {&y}, "output");
  Tensor y3 = out_f({1, 2, 3, 3}), b = randf({3}, 3);
  expect_error(n, {&x, &w, &b}, {&y3}, "bias");
}

namespace {
// C[b] = A[b] @ B[b] with numpy broadcasting of the batch dims.
std::vector<double> matmul_ref(const Tensor& a, const Tensor& b, const std::vector<int64_t>& out) {
  auto as = a.shape, bs = b.shape;
  if (as.size() == 1) as.insert(as.begin(), 1);
  if (bs.size() == 1) bs.push_back(1);
  const int64_t M = as[as.size() - 2], K = as.back(), N = bs.back();
  std::vector<int64_t> ob(out.begin(), out.end() - (a.shape.size() > 1) - (b.shape.size() > 1));
  std::vector<int64_t> ab(as.begin(), as.end() - 2), bb(bs.begin(), bs.end() - 2);
  int64_t batches = 1;
  for (auto d : ob) batches *= d;
  std::vector<double> r(static_cast<size_t>(batches * M * N));
  for (int64_t bi = 0; bi < batches; ++bi) {
    const int64_t ia = ab.empty() ? 0 : bcast_index(bi, ob, ab), ib = bb.empty() ? 0 : bcast_index(bi, ob, bb);
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double acc = 0;
        for (int64_t k = 0; k < K; ++k) acc += double(a.f(ia * M * K + i * K + k)) * b.f(ib * K * N + k * N + j);
        r[(bi * M + i) * N + j] = acc;
      }
  }
  return r;
}
void check_matmul(std::vector<int64_t> as, std::vector<int64_t> bs, std::vector<int64_t> os) {
  Tensor a = randf(as, 11), b = randf(bs, 12), y = out_f(os);
  run(node("MatMul", "mm"), {&a, &b}, {&y});
  expect_near_all(y, matmul_ref(a, b, os), 1e-4, 1e-4);
}
}  // namespace

TEST(CpuMatMul, BroadcastBatches) { check_matmul({2, 3, 4, 5}, {3, 5, 6}, {2, 3, 4, 6}); }
TEST(CpuMatMul, BroadcastBothSides) { check_matmul({2, 1, 4, 5}, {1, 3, 5, 6}, {2, 3, 4, 6}); }
TEST(CpuMatMul, SharedWeightFoldsBatch) { check_matmul({2, 7, 16}, {16, 8}, {2, 7, 8}); }
TEST(CpuMatMul, VectorOperands) {
  check_matmul({5}, {5, 3}, {3});
  check_matmul({2, 4, 5}, {5}, {2, 4});
  check_matmul({5}, {5}, {});
}
TEST(CpuMatMul, InnerMismatchIsAnError) {
  Tensor a = randf({2, 3}, 1), b = randf({4, 5}, 2), y = out_f({2, 5});
  expect_error(node("MatMul", "attn/matmul"), {&a, &b}, {&y}, "inner");
}

TEST(CpuGemm, TransposesAlphaBetaAndBias) {
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (int cs = 0; cs < 4; ++cs) {
        Node n = node("Gemm", "fc");
        n.attrs["transA"] = int64_t{ta};
        n.attrs["transB"] = int64_t{tb};
        n.attrs["alpha"] = 0.5f;
        n.attrs["beta"] = 2.f;
        const int64_t M = 3, K = 5, N = 4;
        Tensor a = randf(ta ? std::vector<int64_t>{K, M} : std::vector<int64_t>{M, K}, 1);
        Tensor b = randf(tb ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N}, 2);
        const std::vector<std::vector<int64_t>> cshapes = {{N}, {M, 1}, {1}, {M, N}};
        Tensor c = randf(cshapes[cs], 3), y = out_f({M, N});
        run(n, {&a, &b, &c}, {&y});
        std::vector<double> want(M * N);
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = 0; j < N; ++j) {
            double acc = 0;
            for (int64_t k = 0; k < K; ++k) acc += double(a.f(ta ? k * M + i : i * K + k)) * b.f(tb ? j * K + k : k * N + j);
            want[i * N + j] = 0.5 * acc + 2.0 * c.f(bcast_index(i * N + j, {M, N}, c.shape));
          }
        expect_near_all(y, want, 1e-4, 1e-4);
      }
}

TEST(CpuGemm, NoBiasAndBadShapes) {
  Tensor a = randf({3, 5}, 1), b = randf({5, 4}, 2), y = out_f({3, 4}), nb = none();
  run(node("Gemm", "fc"), {&a, &b, &nb}, {&y});
  expect_near_all(y, matmul_ref(a, b, {3, 4}), 1e-4, 1e-4);
  Tensor bad = randf({6, 4}, 3);
  expect_error(node("Gemm", "head/fc"), {&a, &bad}, {&y}, "inner");
  Tensor badc = randf({2}, 4);
  expect_error(node("Gemm", "head/fc"), {&a, &b, &badc}, {&y}, "C");
}
