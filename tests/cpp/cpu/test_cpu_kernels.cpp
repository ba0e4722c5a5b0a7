// CPU kernels against naive double-precision references on random data.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "runtime/kernel.h"

using namespace unirt;

namespace {

struct Buf {
  std::vector<float> v;
  std::vector<int64_t> shape;
  TensorView view() {
    TensorView t;
    t.data = v.data();
    t.dtype = DType::Float32;
    t.shape = shape;
    return t;
  }
};

Buf random_buf(std::vector<int64_t> shape, uint32_t seed) {
  Buf b;
  b.shape = shape;
  int64_t n = 1;
  for (auto d : shape) n *= d;
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  for (int64_t i = 0; i < n; ++i) b.v.push_back(nd(rng));
  return b;
}

void run_op(const Node& n, std::vector<TensorView> in, std::vector<TensorView> out) {
  Graph g;
  g.opset = 17;
  auto k = (*KernelRegistry::get("cpu").find(n.op_type))(KernelCreateArgs{g, n, Precision::FP32});
  std::vector<uint8_t> ws(k->prepare(in, out));
  RunContext ctx;
  ctx.workspace = ws.data();
  ctx.workspace_bytes = ws.size();
  ctx.threads = 2;
  k->run(in, out, ctx);
}

void conv_check(int64_t n, int64_t c, int64_t h, int64_t w, int64_t m, int64_t k, int64_t group, int64_t stride, int64_t pad,
                int64_t dil) {
  Node node;
  node.name = "conv";
  node.op_type = "Conv";
  node.attrs["group"] = group;
  node.attrs["strides"] = std::vector<int64_t>{stride, stride};
  node.attrs["pads"] = std::vector<int64_t>{pad, pad, pad, pad};
  node.attrs["dilations"] = std::vector<int64_t>{dil, dil};
  Buf x = random_buf({n, c, h, w}, 1), wt = random_buf({m, c / group, k, k}, 2), b = random_buf({m}, 3);
  const int64_t oh = (h + 2 * pad - dil * (k - 1) - 1) / stride + 1, ow = (w + 2 * pad - dil * (k - 1) - 1) / stride + 1;
  Buf y;
  y.shape = {n, m, oh, ow};
  y.v.assign(n * m * oh * ow, 0.f);
  run_op(node, {x.view(), wt.view(), b.view()}, {y.view()});
  const int64_t cg = c / group, mg = m / group;
  double worst = 0;
  for (int64_t in = 0; in < n; ++in)
    for (int64_t om = 0; om < m; ++om)
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox) {
          double acc = b.v[om];
          const int64_t gidx = om / mg;
          for (int64_t ic = 0; ic < cg; ++ic)
            for (int64_t ky = 0; ky < k; ++ky)
              for (int64_t kx = 0; kx < k; ++kx) {
                const int64_t iy = oy * stride - pad + ky * dil, ix = ox * stride - pad + kx * dil;
                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                acc += double(x.v[((in * c + gidx * cg + ic) * h + iy) * w + ix]) * wt.v[((om * cg + ic) * k + ky) * k + kx];
              }
          worst = std::max(worst, std::fabs(acc - y.v[((in * m + om) * oh + oy) * ow + ox]));
        }
  EXPECT_LT(worst, 1e-4) << "conv c=" << c << " group=" << group << " k=" << k << " s=" << stride;
}

}  // namespace

TEST(CpuConv, DenseGroupedDepthwiseStridedDilated) {
  conv_check(2, 4, 9, 7, 6, 3, 1, 1, 1, 1);    // dense
  conv_check(1, 8, 10, 10, 8, 3, 2, 2, 1, 1);  // grouped, strided
  conv_check(2, 6, 11, 9, 6, 3, 6, 1, 1, 1);   // depthwise 3x3
  conv_check(1, 5, 12, 12, 5, 5, 5, 1, 2, 1);  // depthwise 5x5
  conv_check(1, 4, 13, 13, 4, 3, 4, 2, 1, 2);  // depthwise strided dilated
  conv_check(1, 8, 6, 6, 16, 1, 1, 1, 0, 1);   // pointwise
  conv_check(1, 3, 16, 16, 8, 4, 1, 4, 0, 1);  // patch embedding k=s=4
}

TEST(CpuConv, WrongChannelsNameTheNode) {
  Node node;
  node.name = "my_conv";
  node.op_type = "Conv";
  Buf x = random_buf({1, 3, 5, 5}, 1), w = random_buf({2, 4, 3, 3}, 2);
  Buf y;
  y.shape = {1, 2, 3, 3};
  y.v.resize(18);
  try {
    run_op(node, {x.view(), w.view()}, {y.view()});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("my_conv"), std::string::npos);
  }
}

TEST(CpuMatMul, BroadcastBatches) {
  Node node;
  node.name = "mm";
  node.op_type = "MatMul";
  Buf a = random_buf({2, 3, 4, 5}, 1), b = random_buf({3, 5, 6}, 2);
  Buf y;
  y.shape = {2, 3, 4, 6};
  y.v.resize(2 * 3 * 4 * 6);
  run_op(node, {a.view(), b.view()}, {y.view()});
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int r = 0; r < 4; ++r)
        for (int c = 0; c < 6; ++c) {
          double acc = 0;
          for (int k = 0; k < 5; ++k) acc += double(a.v[((i * 3 + j) * 4 + r) * 5 + k]) * b.v[(j * 5 + k) * 6 + c];
          EXPECT_NEAR(y.v[((i * 3 + j) * 4 + r) * 6 + c], acc, 1e-4);
        }
}

TEST(CpuSoftmaxLayerNorm, MatchReference) {
  Node sm;
  sm.name = "sm";
  sm.op_type = "Softmax";
  sm.attrs["axis"] = int64_t{-1};
  Buf x = random_buf({3, 7}, 4);
  Buf y;
  y.shape = {3, 7};
  y.v.resize(21);
  run_op(sm, {x.view()}, {y.view()});
  for (int r = 0; r < 3; ++r) {
    double s = 0;
    for (int k = 0; k < 7; ++k) s += std::exp(double(x.v[r * 7 + k]));
    for (int k = 0; k < 7; ++k) EXPECT_NEAR(y.v[r * 7 + k], std::exp(double(x.v[r * 7 + k])) / s, 1e-6);
  }
  Node ln;
  ln.name = "ln";
  ln.op_type = "LayerNormalization";
  ln.attrs["epsilon"] = 1e-6f;
  Buf g = random_buf({7}, 5), b = random_buf({7}, 6);
  run_op(ln, {x.view(), g.view(), b.view()}, {y.view()});
  for (int r = 0; r < 3; ++r) {
    double mean = 0, var = 0;
    for (int k = 0; k < 7; ++k) mean += x.v[r * 7 + k] / 7.0;
    for (int k = 0; k < 7; ++k) var += (x.v[r * 7 + k] - mean) * (x.v[r * 7 + k] - mean) / 7.0;
    for (int k = 0; k < 7; ++k)
      EXPECT_NEAR(y.v[r * 7 + k], (x.v[r * 7 + k] - mean) / std::sqrt(var + 1e-6) * g.v[k] + b.v[k], 1e-5);
  }
}

TEST(CpuElementwise, BroadcastAddAndGelu) {
  Node add;
  add.name = "add";
  add.op_type = "Add";
  Buf a = random_buf({2, 3, 4}, 7), b = random_buf({3, 1}, 8);
  Buf y;
  y.shape = {2, 3, 4};
  y.v.resize(24);
  run_op(add, {a.view(), b.view()}, {y.view()});
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) EXPECT_FLOAT_EQ(y.v[(i * 3 + j) * 4 + k], a.v[(i * 3 + j) * 4 + k] + b.v[j]);
  Node gelu;
  gelu.name = "gelu";
  gelu.op_type = "Gelu";
  run_op(gelu, {a.view()}, {y.view()});
  for (int i = 0; i < 24; ++i) EXPECT_NEAR(y.v[i], 0.5 * a.v[i] * (1 + std::erf(a.v[i] / std::sqrt(2.0))), 1e-6);
}
