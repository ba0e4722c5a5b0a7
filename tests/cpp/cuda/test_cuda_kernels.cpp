// CUDA kernels against the CPU kernels, op by op, on one-node graphs with UniFormer-like shapes.
// Skipped (visibly) when no GPU is usable.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "onnx/importer.h"
#include "runtime/session.h"
#include "test_graphs.h"

using namespace unirt;
using namespace unirt::testing;

namespace {

class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!cuda_backend_available(&why)) GTEST_SKIP() << "no GPU: " << why;
  }
};

HostTensor random_input(const std::string& name, std::vector<int64_t> shape, uint32_t seed) {
  HostTensor t;
  t.name = name;
  t.shape = shape;
  t.bytes.resize(static_cast<size_t>(t.numel()) * 4);
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  for (int64_t i = 0; i < t.numel(); ++i) t.as<float>()[i] = nd(rng);
  return t;
}

// Runs the model on CPU fp32 and CUDA at `p`; returns max |diff| / max(1, |ref|).
double compare(onnx::ModelProto& m, const std::vector<HostTensor>& inputs, Precision p) {
  const std::string bytes = model_bytes(m);
  BuildOptions cpu_o;
  auto ce = std::make_shared<Engine>(build_engine(import_onnx_bytes(bytes, "m"), cpu_o));
  BuildOptions gpu_o;
  gpu_o.backend = "cuda";
  gpu_o.precision = p;
  auto ge = std::make_shared<Engine>(build_engine(import_onnx_bytes(bytes, "m"), gpu_o));
  Session cs(ce, make_cpu_backend(2)), gs(ge, make_cuda_backend());
  auto a = cs.run(inputs);
  double worst = 0;
  for (int rep = 0; rep < 3; ++rep) {  // 3rd run replays the captured CUDA graph
    auto b = gs.run(inputs);
    for (size_t o = 0; o < a.size(); ++o) {
      EXPECT_EQ(a[o].shape, b[o].shape);
      double scale = 1;
      for (int64_t i = 0; i < a[o].numel(); ++i) scale = std::max(scale, std::fabs(double(a[o].as<float>()[i])));
      for (int64_t i = 0; i < a[o].numel(); ++i)
        worst = std::max(worst, std::fabs(double(a[o].as<float>()[i]) - b[o].as<float>()[i]) / scale);
    }
  }
  return worst;
}

void conv_model(onnx::ModelProto& m, int64_t c, int64_t cout, int64_t k, int64_t group, int64_t stride, int64_t pad) {
  auto* g = m.mutable_graph();
  add_input(g, "x", {"batch", std::to_string(c), "h", "w"});
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.f, 0.2f);
  std::vector<float> w(cout * (c / group) * k * k), b(cout);
  for (auto& v : w) v = nd(rng);
  for (auto& v : b) v = nd(rng);
  add_init(g, "w", {cout, c / group, k, k}, w);
  add_init(g, "b", {cout}, b);
  auto* n = add_node(g, "Conv", {"x", "w", "b"}, {"y"}, "conv");
  add_int(n, "group", group);
  add_ints(n, "strides", {stride, stride});
  add_ints(n, "pads", {pad, pad, pad, pad});
  g->add_output()->set_name("y");
}

}  // namespace

TEST_F(CudaOps, ConvDepthwiseDenseStrided) {
  struct C { int64_t c, cout, k, group, stride, pad, h; } cases[] = {
      {64, 64, 3, 64, 1, 1, 56}, {64, 64, 5, 64, 1, 2, 56}, {64, 256, 1, 1, 1, 0, 56}, {3, 64, 4, 1, 4, 0, 224}, {128, 128, 3, 128, 1, 1, 19}};
  for (const auto& cs : cases) {
    onnx::ModelProto m;
    conv_model(m, cs.c, cs.cout, cs.k, cs.group, cs.stride, cs.pad);
    auto x = random_input("x", {2, cs.c, cs.h, cs.h + 3}, 1);
    EXPECT_LT(compare(m, {x}, Precision::FP32), 1e-4) << "conv c=" << cs.c << " k=" << cs.k;
    EXPECT_LT(compare(m, {x}, Precision::FP16), 2e-2) << "conv fp16 c=" << cs.c << " k=" << cs.k;
  }
}

TEST_F(CudaOps, MatMulSoftmaxLayerNormGelu) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "x", {"batch", "5", "49", "64"});
  add_input(g, "k", {"batch", "5", "64", "49"});
  add_node(g, "MatMul", {"x", "k"}, {"s"});
  auto* sm = add_node(g, "Softmax", {"s"}, {"p"});
  add_int(sm, "axis", -1);
  add_init(g, "gamma", {49}, std::vector<float>(49, 1.1f));
  add_init(g, "beta", {49}, std::vector<float>(49, -0.1f));
  add_node(g, "LayerNormalization", {"p", "gamma", "beta"}, {"l"});
  add_node(g, "Gelu", {"l"}, {"y"});
  g->add_output()->set_name("y");
  auto x = random_input("x", {2, 5, 49, 64}, 4), k = random_input("k", {2, 5, 64, 49}, 5);
  EXPECT_LT(compare(m, {x, k}, Precision::FP32), 1e-4);
  EXPECT_LT(compare(m, {x, k}, Precision::FP16), 2e-2);
}

TEST_F(CudaOps, BroadcastAddTransposePadSlice) {
  auto m = window_pad_model();  // depthwise conv + symbolic pad
  auto x = random_input("x", {2, 4, 17, 23}, 6);
  EXPECT_LT(compare(m, {x}, Precision::FP32), 1e-5);
  onnx::ModelProto t;
  auto* g = t.mutable_graph();
  add_input(g, "x", {"batch", "8", "6", "10"});
  add_init(g, "bias", {8, 1, 1}, {1, 2, 3, 4, 5, 6, 7, 8});
  add_node(g, "Add", {"x", "bias"}, {"a"});
  add_ints(add_node(g, "Transpose", {"a"}, {"tr"}), "perm", {0, 2, 3, 1});
  add_init_i64(g, "st", {1, 2});
  add_init_i64(g, "en", {5, 9});
  add_init_i64(g, "ax", {1, 2});
  add_node(g, "Slice", {"tr", "st", "en", "ax"}, {"y"});
  g->add_output()->set_name("y");
  auto x2 = random_input("x", {3, 8, 6, 10}, 7);
  EXPECT_LT(compare(t, {x2}, Precision::FP32), 1e-6);
  EXPECT_LT(compare(t, {x2}, Precision::FP16), 1e-2);
}

TEST_F(CudaOps, TransposeMergedRowsAndGeneral) {
  struct P { std::vector<int64_t> shape, perm; } cases[] = {
      {{2, 7, 3, 5, 64}, {2, 0, 3, 1, 4}},  // attention qkv split: rows of head_dim
      {{2, 5, 49, 32}, {0, 2, 1, 3}},       // heads back to tokens
      {{2, 64, 14, 14}, {0, 2, 3, 1}},      // NCHW -> NHWC (batched 2-D)
      {{3, 5, 7}, {2, 0, 1}},               // general
      {{2, 1, 6, 9}, {1, 3, 0, 2}}};        // with a size-1 dim
  for (const auto& c : cases) {
    onnx::ModelProto m;
    auto* g = m.mutable_graph();
    std::vector<std::string> dims;
    for (auto d : c.shape) dims.push_back(std::to_string(d));
    add_input(g, "x", dims);
    add_ints(add_node(g, "Transpose", {"x"}, {"y"}), "perm", c.perm);
    g->add_output()->set_name("y");
    auto x = random_input("x", c.shape, 9);
    EXPECT_EQ(compare(m, {x}, Precision::FP32), 0.0);
    EXPECT_LT(compare(m, {x}, Precision::FP16), 1e-3);
  }
}
