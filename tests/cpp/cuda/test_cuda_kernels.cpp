// CUDA kernels against the CPU kernels, op by op, on one-node graphs with UniFormer-like shapes.
// Skipped (visibly) when no GPU is usable.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
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
// *tactics (when given): the kernels the CUDA session chose, by node.
double compare(onnx::ModelProto& m, const std::vector<HostTensor>& inputs, Precision p,
               std::map<std::string, std::string>* tactics = nullptr) {
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
  if (tactics) *tactics = gs.tactics();
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



std::vector<std::string> dims_str(const std::vector<int64_t>& shape) {
  std::vector<std::string> d;
  for (auto v : shape) d.push_back(std::to_string(v));
  return d;
}

std::vector<float> randv(size_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// One-node model: graph inputs "a", "b", ... of the given shapes, output "y".
onnx::ModelProto one_op(const std::string& op, const std::vector<std::vector<int64_t>>& shapes, onnx::NodeProto** node = nullptr) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  std::vector<std::string> names;
  for (size_t i = 0; i < shapes.size(); ++i) {
    names.push_back(std::string(1, static_cast<char>('a' + i)));
    add_input(g, names.back(), dims_str(shapes[i]));
  }
  auto* n = add_node(g, op, names, {"y"}, "op");
  if (node) *node = n;
  g->add_output()->set_name("y");
  return m;
}

std::vector<HostTensor> inputs_for(const std::vector<std::vector<int64_t>>& shapes, uint32_t seed) {
  std::vector<HostTensor> v;
  for (size_t i = 0; i < shapes.size(); ++i) v.push_back(random_input(std::string(1, static_cast<char>('a' + i)), shapes[i], seed + i));
  return v;
}

}  // namespace

// Depthwise (own kernels) and dense or grouped (cuDNN / cuBLASLt) convolutions in separate tests,
// so racecheck can run the first alone.

struct ConvCase {
  int64_t c, cout, k, group, stride, pad, h;
};
void check_convs(const std::vector<ConvCase>& cases) {
  for (const auto& cs : cases) {
    onnx::ModelProto m;
    conv_model(m, cs.c, cs.cout, cs.k, cs.group, cs.stride, cs.pad);
    auto x = random_input("x", {2, cs.c, cs.h, cs.h + 3}, 1);
    EXPECT_LT(compare(m, {x}, Precision::FP32), 1e-4) << "conv c=" << cs.c << " k=" << cs.k;
    EXPECT_LT(compare(m, {x}, Precision::FP16), 2e-2) << "conv fp16 c=" << cs.c << " k=" << cs.k;
  }
}
TEST_F(CudaOps, ConvDepthwiseStrided) {
  check_convs({{64, 64, 3, 64, 1, 1, 56}, {64, 64, 5, 64, 1, 2, 56}, {128, 128, 5, 128, 1, 2, 28}, {320, 320, 3, 320, 1, 1, 14},
               {512, 512, 3, 512, 1, 1, 7}, {64, 64, 3, 64, 2, 1, 56}, {32, 32, 7, 32, 1, 3, 15}, {16, 16, 4, 16, 2, 1, 13},
               {128, 128, 3, 128, 1, 1, 19}});
}
TEST_F(CudaOps, ConvDenseAndGrouped) {
  check_convs({{64, 256, 1, 1, 1, 0, 56}, {3, 64, 4, 1, 4, 0, 224}, {64, 128, 2, 1, 2, 0, 56}, {3, 32, 3, 1, 2, 1, 33}, {64, 64, 3, 4, 1, 1, 20}});
  // The tensor-core stem (patch_embed_nchw): rows of more than one 64-pixel segment, a height and
  // width that leave pixels over (and a width off the 16-byte vectors), 32 outputs.
  check_convs({{3, 64, 4, 1, 4, 0, 262}, {3, 32, 4, 1, 4, 0, 61}, {3, 64, 4, 1, 4, 0, 45}});
}

// Batch sizes where the stride-1 depthwise kernels switch to shared-memory tiles (8 x 16 outputs,
// 64 or 32 channels per block), with map sizes that are not multiples of the tile.
TEST_F(CudaOps, ConvDepthwiseTiledLargeBatch) {
  struct C { int64_t c, k, h, w; } cases[] = {{64, 5, 30, 45}, {64, 3, 19, 37}, {128, 5, 28, 28}, {64, 7, 24, 33}};
  for (const auto& cs : cases) {
    onnx::ModelProto m;
    conv_model(m, cs.c, cs.c, cs.k, cs.c, 1, cs.k / 2);
    auto x = random_input("x", {96, cs.c, cs.h, cs.w}, 3);
    EXPECT_LT(compare(m, {x}, Precision::FP32), 1e-4) << "c=" << cs.c << " k=" << cs.k;
    EXPECT_LT(compare(m, {x}, Precision::FP16), 2e-2) << "fp16 c=" << cs.c << " k=" << cs.k;
  }
}

// The same depthwise shapes through cuDNN (the alternative the own kernel is measured against).
TEST_F(CudaOps, ConvDepthwiseViaCudnn) {
  setenv("UNIRT_CUDA_DEPTHWISE", "cudnn", 1);
  for (int64_t k : {3, 5}) {
    onnx::ModelProto m;
    conv_model(m, 64, 64, k, 64, 1, k / 2);
    auto x = random_input("x", {2, 64, 28, 30}, 2);
    EXPECT_LT(compare(m, {x}, Precision::FP32), 1e-4) << "k=" << k;
    EXPECT_LT(compare(m, {x}, Precision::FP16), 2e-2) << "k=" << k;
  }
  unsetenv("UNIRT_CUDA_DEPTHWISE");
}

TEST_F(CudaOps, MatMulBroadcasting) {
  struct C { std::vector<int64_t> a, b; } cases[] = {
      {{2, 5, 49, 64}, {2, 5, 64, 49}},  // attention scores
      {{2, 196, 320}, {2, 320, 40}},     // plain batch
      {{2, 1, 7, 8}, {3, 8, 5}},         // general broadcast: one GEMM per output matrix
      {{8, 6}, {2, 6, 5}},               // shared A
      {{4, 3, 8}, {8, 6}},               // shared B, folded into rows
      {{8}, {2, 8, 3}},                  // 1-D A
      {{2, 4, 8}, {8}}};                 // 1-D B
  for (const auto& c : cases) {
    auto m = one_op("MatMul", {c.a, c.b});
    auto in = inputs_for({c.a, c.b}, 11);
    EXPECT_LT(compare(m, in, Precision::FP32), 1e-5) << "MatMul " << c.a.size() << "-D x " << c.b.size() << "-D";
    EXPECT_LT(compare(m, in, Precision::FP16), 1e-2);
  }
}

TEST_F(CudaOps, MatMulConstantWeightAndGemm) {
  {  // Linear layer: constant 2-D weight, token rows
    onnx::ModelProto m;
    auto* g = m.mutable_graph();
    add_input(g, "x", {"batch", "196", "320"});
    add_init(g, "w", {320, 1280}, randv(320 * 1280, 3, 0.05f));
    add_node(g, "MatMul", {"x", "w"}, {"y"});
    g->add_output()->set_name("y");
    auto x = random_input("x", {2, 196, 320}, 4);
    EXPECT_LT(compare(m, {x}, Precision::FP32), 1e-5);
    EXPECT_LT(compare(m, {x}, Precision::FP16), 1e-2);
  }
  struct G { bool tb; std::vector<int64_t> c; float alpha, beta; } cases[] = {
      {true, {1000}, 1.f, 1.f},      // classifier head: bias epilogue
      {false, {1, 1000}, 0.5f, 1.f}, // bias epilogue with alpha
      {true, {4, 1000}, 1.f, 0.5f},  // full C with beta
      {false, {1}, 1.f, 2.f}};       // scalar C
  for (const auto& c : cases) {
    onnx::ModelProto m;
    auto* g = m.mutable_graph();
    add_input(g, "x", {"4", "512"});
    add_init(g, "w", c.tb ? std::vector<int64_t>{1000, 512} : std::vector<int64_t>{512, 1000}, randv(512 * 1000, 5, 0.05f));
    int64_t cn = 1;
    for (auto d : c.c) cn *= d;
    add_init(g, "c", c.c, randv(static_cast<size_t>(cn), 6));
    auto* n = add_node(g, "Gemm", {"x", "w", "c"}, {"y"});
    add_int(n, "transB", c.tb ? 1 : 0);
    add_float(n, "alpha", c.alpha);
    add_float(n, "beta", c.beta);
    g->add_output()->set_name("y");
    auto x = random_input("x", {4, 512}, 7);
    EXPECT_LT(compare(m, {x}, Precision::FP32), 1e-5) << "Gemm C " << c.c.size() << "-D";
    EXPECT_LT(compare(m, {x}, Precision::FP16), 1e-2);
  }
}

TEST_F(CudaOps, OmittedOptionalInputs) {
  {  // Gemm without C
    onnx::ModelProto m;
    auto* g = m.mutable_graph();
    add_input(g, "x", {"3", "64"});
    add_init(g, "w", {64, 10}, randv(640, 8, 0.1f));
    add_node(g, "Gemm", {"x", "w"}, {"y"});
    g->add_output()->set_name("y");
    EXPECT_LT(compare(m, {random_input("x", {3, 64}, 9)}, Precision::FP32), 1e-5);
  }
  {  // Pad with the constant value and axes inputs left out (the exporters' window padding)
    onnx::ModelProto m;
    auto* g = m.mutable_graph();
    add_input(g, "x", {"2", "5", "6", "4"});
    add_init_i64(g, "pads", {0, 0, 0, 0, 0, 0, 1, 3});
    add_node(g, "Pad", {"x", "pads"}, {"y"});
    g->add_output()->set_name("y");
    EXPECT_LT(compare(m, {random_input("x", {2, 5, 6, 4}, 10)}, Precision::FP32), 1e-7);
    EXPECT_LT(compare(m, {random_input("x", {2, 5, 6, 4}, 10)}, Precision::FP16), 1e-3);
  }
}

TEST_F(CudaOps, BinaryBroadcasting) {
  const std::vector<std::vector<int64_t>> pairs[] = {
      {{2, 64, 14, 14}, {2, 64, 14, 14}},  // same shape (residual adds)
      {{2, 196, 320}, {320}},              // trailing bias
      {{2, 64, 14, 14}, {64, 1, 1}},       // per channel
      {{64, 1, 1}, {2, 64, 14, 14}},       // per channel, swapped
      {{2, 3, 5}, {1}},                    // scalar
      {{2, 1, 5}, {3, 1}},                 // general (both broadcast)
      {{2, 49, 7}, {2, 49, 7}}};           // odd size (no vector path)
  for (const char* op : {"Add", "Sub", "Mul", "Div", "Min", "Max"}) {
    for (const auto& sh : pairs) {
      auto m = one_op(op, sh);
      auto in = inputs_for(sh, 21);
      if (std::string(op) == "Div")  // keep divisors away from zero
        for (int64_t i = 0; i < in[1].numel(); ++i) in[1].as<float>()[i] = 1.5f + std::fabs(in[1].as<float>()[i]);
      EXPECT_LT(compare(m, in, Precision::FP32), 1e-6) << op;
      EXPECT_LT(compare(m, in, Precision::FP16), 5e-3) << op;
    }
  }
  {  // Pow with a constant exponent
    onnx::ModelProto m;
    auto* g = m.mutable_graph();
    add_input(g, "a", {"2", "3", "8"});
    add_init(g, "e", {1}, {2.f});
    add_node(g, "Pow", {"a", "e"}, {"y"});
    g->add_output()->set_name("y");
    auto in = inputs_for({{2, 3, 8}}, 23);
    EXPECT_LT(compare(m, in, Precision::FP32), 1e-6);
    EXPECT_LT(compare(m, in, Precision::FP16), 5e-3);
  }
}

TEST_F(CudaOps, UnaryClipWhereCompare) {
  for (const char* op : {"Erf", "Gelu", "Relu", "Sigmoid", "Tanh", "Exp", "Neg", "Abs", "Floor", "Ceil", "Identity"}) {
    auto m = one_op(op, {{2, 5, 49, 33}});
    auto in = inputs_for({{2, 5, 49, 33}}, 31);
    EXPECT_LT(compare(m, in, Precision::FP32), 1e-5) << op;
    // Floor/Ceil jump by 1 where float16 rounding of the input crosses an integer.
    if (std::string(op) != "Floor" && std::string(op) != "Ceil") EXPECT_LT(compare(m, in, Precision::FP16), 1e-2) << op;
  }
  for (const char* op : {"Sqrt", "Log", "Reciprocal"}) {  // positive inputs
    auto m = one_op(op, {{3, 7, 16}});
    auto in = inputs_for({{3, 7, 16}}, 32);
    for (int64_t i = 0; i < in[0].numel(); ++i) in[0].as<float>()[i] = 0.5f + std::fabs(in[0].as<float>()[i]);
    EXPECT_LT(compare(m, in, Precision::FP32), 1e-5) << op;
    EXPECT_LT(compare(m, in, Precision::FP16), 1e-2) << op;
  }
  {
    onnx::ModelProto m;
    auto* g = m.mutable_graph();
    add_input(g, "a", {"2", "64", "9"});
    add_input(g, "b", {"64", "1"});
    add_init(g, "lo", {}, {-0.5f});
    add_init(g, "hi", {}, {0.75f});
    add_node(g, "Clip", {"a", "lo", "hi"}, {"c"});
    add_node(g, "Greater", {"a", "b"}, {"gt"});
    add_node(g, "Less", {"a", "b"}, {"lt"});
    add_node(g, "Where", {"gt", "c", "b"}, {"w"});
    add_node(g, "Cast", {"lt"}, {"ltf"});
    add_int(g->mutable_node(g->node_size() - 1), "to", 1);
    add_node(g, "Add", {"w", "ltf"}, {"y"});
    g->add_output()->set_name("y");
    auto in = inputs_for({{2, 64, 9}, {64, 1}}, 33);
    EXPECT_LT(compare(m, in, Precision::FP32), 1e-6);
    EXPECT_LT(compare(m, in, Precision::FP16), 5e-3);
  }
}

TEST_F(CudaOps, NormalizationSoftmaxReduce) {
  for (int64_t d : {64, 128, 40, 320, 512, 49, 1100}) {  // several rows per warp, one row per warp (vector and scalar), block path
    onnx::ModelProto m;
    auto* g = m.mutable_graph();
    add_input(g, "x", {"batch", "37", std::to_string(d)});
    add_init(g, "gamma", {d}, randv(d, 41));
    add_init(g, "beta", {d}, randv(d, 42));
    auto* n = add_node(g, "LayerNormalization", {"x", "gamma", "beta"}, {"y"});
    add_float(n, "epsilon", 1e-6f);
    g->add_output()->set_name("y");
    auto x = random_input("x", {3, 37, d}, 43);
    EXPECT_LT(compare(m, {x}, Precision::FP32), 1e-5) << "LayerNorm D=" << d;
    EXPECT_LT(compare(m, {x}, Precision::FP16), 1e-2) << "LayerNorm D=" << d;
  }
  for (int64_t l : {49, 196, 784, 3136}) {
    auto m = one_op("Softmax", {{2, 5, 7, l}});
    auto in = inputs_for({{2, 5, 7, l}}, 44);
    EXPECT_LT(compare(m, in, Precision::FP32), 1e-6) << "Softmax L=" << l;
    EXPECT_LT(compare(m, in, Precision::FP16), 2e-3) << "Softmax L=" << l;
  }
  {  // BatchNorm (not folded: no conv in front)
    onnx::ModelProto m;
    auto* g = m.mutable_graph();
    add_input(g, "x", {"batch", "16", "7", "7"});
    add_init(g, "s", {16}, randv(16, 45));
    add_init(g, "b", {16}, randv(16, 46));
    add_init(g, "mu", {16}, randv(16, 47));
    auto var = randv(16, 48);
    for (auto& v : var) v = 0.5f + std::fabs(v);
    add_init(g, "var", {16}, var);
    add_node(g, "BatchNormalization", {"x", "s", "b", "mu", "var"}, {"y"});
    g->add_output()->set_name("y");
    auto x = random_input("x", {2, 16, 7, 7}, 49);
    EXPECT_LT(compare(m, {x}, Precision::FP32), 1e-5);
    EXPECT_LT(compare(m, {x}, Precision::FP16), 1e-2);
  }
  struct R { const char* op; std::vector<int64_t> axes; } reds[] = {{"ReduceMean", {-1}}, {"ReduceMean", {1}}, {"ReduceSum", {2, 3}}, {"ReduceMax", {1}}};
  for (const auto& r : reds) {
    onnx::ModelProto m;
    auto* g = m.mutable_graph();
    add_input(g, "x", {"2", "64", "7", "9"});
    auto* n = add_node(g, r.op, {"x"}, {"y"});
    add_ints(n, "axes", r.axes);
    add_int(n, "keepdims", 1);
    g->add_output()->set_name("y");
    auto x = random_input("x", {2, 64, 7, 9}, 50);
    EXPECT_LT(compare(m, {x}, Precision::FP32), 1e-5) << r.op;
    EXPECT_LT(compare(m, {x}, Precision::FP16), 1e-2) << r.op;
  }
}

TEST_F(CudaOps, Pools) {
  {
    auto m = one_op("GlobalAveragePool", {{2, 64, 14, 14}});
    auto in = inputs_for({{2, 64, 14, 14}}, 51);
    EXPECT_LT(compare(m, in, Precision::FP32), 1e-5);
    EXPECT_LT(compare(m, in, Precision::FP16), 5e-3);
  }
  for (const char* op : {"MaxPool", "AveragePool"}) {
    for (int include_pad : {0, 1}) {
      onnx::NodeProto* n = nullptr;
      auto m = one_op(op, {{2, 8, 15, 16}}, &n);
      add_ints(n, "kernel_shape", {3, 3});
      add_ints(n, "strides", {2, 2});
      add_ints(n, "pads", {1, 1, 1, 1});
      if (std::string(op) == "AveragePool") add_int(n, "count_include_pad", include_pad);
      auto in = inputs_for({{2, 8, 15, 16}}, 52);
      EXPECT_LT(compare(m, in, Precision::FP32), 1e-6) << op;
      EXPECT_LT(compare(m, in, Precision::FP16), 5e-3) << op;
    }
    // Windows of 2^40 taps (pads just below) over 4x4 planes: only the taps inside the input run,
    // and the geometry stays 64-bit on the device.
    const int64_t k = int64_t{1} << 40;
    onnx::NodeProto* n = nullptr;
    auto m = one_op(op, {{1, 2, 4, 4}}, &n);
    add_ints(n, "kernel_shape", {k, k});
    add_ints(n, "pads", {k - 3, k - 3, 0, 0});
    auto in = inputs_for({{1, 2, 4, 4}}, 53);
    EXPECT_LT(compare(m, in, Precision::FP32), 1e-6) << op << " with a 2^40 window";
  }
}

TEST_F(CudaOps, ConcatSplitTileExpandGatherPad) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "a", {"2", "6", "5"});
  add_input(g, "b", {"2", "3", "5"});
  add_int(add_node(g, "Concat", {"a", "b"}, {"c"}), "axis", 1);
  add_init_i64(g, "sp", {4, 5});
  add_int(add_node(g, "Split", {"c", "sp"}, {"s0", "s1"}), "axis", 1);
  add_init_i64(g, "reps", {1, 2, 1});
  add_node(g, "Tile", {"s0", "reps"}, {"t"});      // [2, 8, 5]
  add_init_i64(g, "shp", {3, 2, 8, 5});
  add_node(g, "Expand", {"t", "shp"}, {"e"});      // [3, 2, 8, 5]
  add_init_i64(g, "idx", {1});
  add_int(add_node(g, "Gather", {"e", "idx"}, {"ga"}), "axis", 2);  // [3, 2, 1, 5]
  add_init_i64(g, "pads", {0, 0, 1, 2, 0, 1, 0, 0});
  add_init(g, "pv", {}, {0.25f});
  add_node(g, "Pad", {"ga", "pads", "pv"}, {"p"}); // [3, 3, 1, 7]
  add_node(g, "ReduceSum", {"s1"}, {"r"});
  add_int(g->mutable_node(g->node_size() - 1), "keepdims", 0);
  add_node(g, "Add", {"p", "r"}, {"y"});
  g->add_output()->set_name("y");
  auto in = inputs_for({{2, 6, 5}, {2, 3, 5}}, 61);
  EXPECT_LT(compare(m, in, Precision::FP32), 1e-6);
  EXPECT_LT(compare(m, in, Precision::FP16), 5e-3);
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

// The fused attention (tensor-core flash kernel for head_dim 32/64 in float16, scalar kernel for
// other sizes and float32) against the CPU kernel, at the classifier's token counts (196, 49),
// ragged lengths that leave partial query and key tiles, and a long sequence.
TEST_F(CudaOps, FusedAttention) {
  struct Case {
    int64_t heads, hd, batch, tokens;
  };
  for (const Case& c : {Case{5, 64, 2, 196}, Case{8, 64, 3, 49}, Case{2, 32, 2, 70}, Case{2, 24, 2, 33}, Case{1, 64, 1, 1000}}) {
    auto m = attention_model(c.heads, c.hd, "n");
    auto in = random_input("x", {c.batch, c.tokens, 3 * c.heads * c.hd}, 11);
    SCOPED_TRACE("heads " + std::to_string(c.heads) + " head_dim " + std::to_string(c.hd) + " tokens " + std::to_string(c.tokens));
    EXPECT_LT(compare(m, {in}, Precision::FP32), 1e-5);
    EXPECT_LT(compare(m, {in}, Precision::FP16), 2e-2);
  }
}

// A CBlock in channels-last form on the GPU (patch conv as im2col + GEMM, depthwise kernels with the
// residual, 1x1 convs as GEMMs with bias/residual epilogues) against the NCHW graph on the CPU.
TEST_F(CudaOps, ChannelsLastCBlock) {
  auto m = cblock_model();
  // The last shape is large enough for the depthwise kernels' four-outputs-per-thread path (the
  // small ones take the one-output path), with an output width that is not a multiple of four.
  for (auto shape : {std::vector<int64_t>{2, 8, 12, 10}, std::vector<int64_t>{3, 8, 30, 18}, std::vector<int64_t>{8, 8, 510, 514}}) {
    auto in = random_input("x", shape, 5);
    EXPECT_LT(compare(m, {in}, Precision::FP32), 1e-5);
    EXPECT_LT(compare(m, {in}, Precision::FP16), 1e-2);
  }
}

// unirt.Mlp (float16 GEMM -> GELU -> GEMM -> bias + residual) for both channel counts it takes:
// 3 x 12000+ rows run the fused kernel (row counts that are not multiples of its 128-row tile),
// 3 x 100 rows the two-GEMM form it uses for small inputs; against the CPU in float32.
// Enough rows for the fused tensor-core kernel; FusedMlpFloat16FewRowsRunsTwoGemms covers the
// cuBLASLt path below the threshold (kept apart so racecheck can run our kernel alone).

void check_fused_mlp(const std::vector<std::pair<int64_t, int64_t>>& cases) {
  for (auto [c, rows] : cases) {
    auto m = mlp_model(c, 4 * c);
    BuildOptions o;
    o.backend = "cuda";
    o.precision = Precision::FP16;
    Engine e = build_engine(import_onnx_bytes(model_bytes(m), "m"), o);
    int mlps = 0;
    for (const auto& n : e.graph.nodes) mlps += n.op_type == "unirt.Mlp";
    EXPECT_EQ(mlps, 1) << "c=" << c;
    auto in = random_input("x", {3, rows, c}, 7);
    EXPECT_LT(compare(m, {in}, Precision::FP16), 1e-2) << "c=" << c;
    EXPECT_LT(compare(m, {in}, Precision::FP32), 1e-5) << "c=" << c;
  }
}
TEST_F(CudaOps, FusedMlpFloat16) { check_fused_mlp({{64, 12000}, {32, 12001}}); }
TEST_F(CudaOps, FusedMlpFloat16FewRowsRunsTwoGemms) { check_fused_mlp({{64, 100}, {32, 129}}); }

// Token pruning's index ops with indices computed on the device: TopK (argsort) feeds
// GatherElements, ScatterElements and ScatterND; ArgMax/ArgMin; indices compared as floats.
TEST_F(CudaOps, TopKGatherScatterArgMax) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "a", {"2", "196"});
  add_input(g, "b", {"196", "4"});
  add_input(g, "c", {"196", "4"});
  add_init_i64(g, "k", {196});
  add_node(g, "TopK", {"a", "k"}, {"v", "i"});  // full argsort, descending
  add_int(add_node(g, "GatherElements", {"a", "i"}, {"ge"}), "axis", 1);
  add_int(add_node(g, "ScatterElements", {"a", "i", "v"}, {"se"}), "axis", 1);
  add_init_i64(g, "s0", {0});
  add_init_i64(g, "s1", {1});
  add_init_i64(g, "ax", {0});
  add_node(g, "Slice", {"i", "s0", "s1", "ax"}, {"row"});
  add_init_i64(g, "col", {196, 1});
  add_node(g, "Reshape", {"row", "col"}, {"idx"});
  add_node(g, "ScatterND", {"b", "idx", "c"}, {"snd"});
  add_int(add_node(g, "ArgMax", {"a"}, {"am"}), "axis", 1);
  add_int(add_node(g, "ArgMin", {"b"}, {"an"}), "axis", 0);
  for (const char* v : {"i", "am", "an"}) add_int(add_node(g, "Cast", {v}, {std::string(v) + "f"}), "to", 1);
  for (const char* o : {"v", "ge", "se", "snd", "if", "amf", "anf"}) g->add_output()->set_name(o);
  auto in = inputs_for({{2, 196}, {196, 4}, {196, 4}}, 71);
  EXPECT_EQ(compare(m, in, Precision::FP32), 0.0);
}

TEST_F(CudaOps, TopKValuesFloat16) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "a", {"batch", "196"});
  add_init_i64(g, "k", {98});
  add_node(g, "TopK", {"a", "k"}, {"v", "i"});
  g->add_output()->set_name("v");
  auto in = inputs_for({{4, 196}}, 5);
  EXPECT_LT(compare(m, in, Precision::FP16), 2e-3);
}

TEST_F(CudaOps, ReduceMinProdAndSize) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "a", {"batch", "5", "4"});
  add_ints(add_node(g, "ReduceProd", {"a"}, {"p"}), "axes", {2});  // last axis: warp reduction
  add_ints(add_node(g, "ReduceMin", {"a"}, {"mn"}), "axes", {1});  // middle axis
  add_ints(add_node(g, "ReduceMin", {"a"}, {"ml"}), "axes", {2});
  add_node(g, "Size", {"a"}, {"n"});
  add_int(add_node(g, "Cast", {"n"}, {"nf"}), "to", 1);
  for (const char* o : {"p", "mn", "ml", "nf"}) g->add_output()->set_name(o);
  auto in = inputs_for({{3, 5, 4}}, 9);
  EXPECT_LT(compare(m, in, Precision::FP32), 1e-6);
}

namespace {

// Builds the model for the CPU (FP32) and CUDA (at p) and runs each input set on both, three times
// on the GPU (the third replays the captured segments); every output must match exactly, except
// float outputs of an FP16 engine (relative error <= 1e-3: float16 holds integers exactly to 2048).
void expect_same_outputs(onnx::ModelProto& m, const std::vector<std::vector<HostTensor>>& input_sets, Precision p) {
  const std::string bytes = model_bytes(m);
  auto ce = std::make_shared<Engine>(build_engine(import_onnx_bytes(bytes, "m"), BuildOptions{}));
  BuildOptions gpu_o;
  gpu_o.backend = "cuda";
  gpu_o.precision = p;
  auto ge = std::make_shared<Engine>(build_engine(import_onnx_bytes(bytes, "m"), gpu_o));
  Session cs(ce, make_cpu_backend(2)), gs(ge, make_cuda_backend());
  for (size_t set = 0; set < input_sets.size(); ++set) {
    auto a = cs.run(input_sets[set]);
    for (int rep = 0; rep < 3; ++rep) {
      auto b = gs.run(input_sets[set]);
      ASSERT_EQ(a.size(), b.size());
      for (size_t o = 0; o < a.size(); ++o) {
        ASSERT_EQ(a[o].shape, b[o].shape) << "output " << a[o].name << ", input set " << set << ", run " << rep;
        if (a[o].bytes == b[o].bytes) continue;
        if (p == Precision::FP16 && a[o].dtype == DType::Float32) {  // float values pass through float16
          double worst = 0;
          for (int64_t i = 0; i < a[o].numel(); ++i)
            worst = std::max(worst, std::fabs(double(a[o].as<float>()[i]) - b[o].as<float>()[i]) / std::max(1.0, std::fabs(double(a[o].as<float>()[i]))));
          EXPECT_LE(worst, 1e-3) << "output " << a[o].name << ", input set " << set;
          continue;
        }
        const size_t es = dtype_size(a[o].dtype);
        // Equal bytes, or NaN on both sides (a NaN's sign and payload carry no meaning).
        auto same = [&](size_t at) {
          if (std::memcmp(&a[o].bytes[at], &b[o].bytes[at], es) == 0) return true;
          return a[o].dtype == DType::Float32 && std::isnan(a[o].as<float>()[at / es]) && std::isnan(b[o].as<float>()[at / es]);
        };
        size_t first = 0;
        while (first + es <= a[o].bytes.size() && same(first)) first += es;
        if (first + es > a[o].bytes.size()) continue;
        double va = 0, vb = 0;
        if (a[o].dtype == DType::Float32) va = a[o].as<float>()[first / es], vb = b[o].as<float>()[first / es];
        if (a[o].dtype == DType::Int64) va = double(a[o].as<int64_t>()[first / es]), vb = double(b[o].as<int64_t>()[first / es]);
        ADD_FAILURE() << "output " << a[o].name << ", input set " << set << ", run " << rep << ": element " << first / es << " of "
                      << a[o].numel() << " is " << va << " on the CPU, " << vb << " on the GPU";
      }
    }
  }
}

// Normal values with about half of them set to zero (and a -0.0 and a NaN among them).
HostTensor sparse_input(const std::string& name, std::vector<int64_t> shape, uint32_t seed) {
  HostTensor t = random_input(name, shape, seed);
  std::mt19937 rng(seed + 100);
  for (int64_t i = 0; i < t.numel(); ++i)
    if (rng() % 2) t.as<float>()[i] = 0.f;
  t.as<float>()[0] = -0.0f;
  if (t.numel() > 1) t.as<float>()[1] = std::nanf("");
  return t;
}

// Boxes [b, n, 4] as [y1, x1, y2, x2] (or centre and size) in a 200x200 image, scores in 0..1.
std::vector<HostTensor> nms_inputs(int64_t b, int64_t c, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> pos(0.f, 200.f), size(4.f, 40.f), u(0.f, 1.f);
  HostTensor boxes, scores;
  boxes.name = "boxes";
  boxes.shape = {b, n, 4};
  boxes.bytes.resize(static_cast<size_t>(b * n * 4) * 4);
  for (int64_t i = 0; i < b * n; ++i) {
    float* bx = boxes.as<float>() + i * 4;
    const float y = pos(rng), x = pos(rng), h = size(rng), w = size(rng);
    if (rng() % 2) bx[0] = y, bx[1] = x, bx[2] = y + h, bx[3] = x + w;
    else bx[0] = y + h, bx[1] = x + w, bx[2] = y, bx[3] = x;  // the other diagonal
  }
  scores.name = "scores";
  scores.shape = {b, c, n};
  scores.bytes.resize(static_cast<size_t>(b * c * n) * 4);
  for (int64_t i = 0; i < b * c * n; ++i) scores.as<float>()[i] = u(rng);
  for (int64_t i = 0; i + 1 < b * c * n; i += 97) scores.as<float>()[i + 1] = scores.as<float>()[i];  // some ties
  return {boxes, scores};
}

}  // namespace

// QuantizeLinear / DequantizeLinear per tensor (uint8), per channel (int8) and blocked (opset 21)
// against the CPU: integers and floats bit-equal in FP32 (the shared rule: float32 division,
// round half to even), inputs with exact ties and saturating values. In FP16 engines the
// activations arrive as float16, so an integer may move by one step where x's float16 rounding
// crosses a boundary: within 3% of the output's scale (a step is at most 0.06 x 1.5 of ~7.6).
TEST_F(CudaOps, QuantizeDequantizeMatchCpu) {
  onnx::ModelProto m = qdq_chain_model();
  auto set = [](int64_t b, uint32_t seed) {
    HostTensor x = random_input("x", {b, 8, 6, 4}, seed);
    float* v = x.as<float>();
    for (int64_t i = 0; i < x.numel(); ++i) v[i] *= 3.f;
    for (int64_t i = 0; i < x.numel(); i += 7) v[i] = (std::round(v[i] / 0.04f) + 0.5f) * 0.04f;  // ties of the first scale
    v[1] = 1e6f, v[2] = -1e6f;
    return std::vector<HostTensor>{x};
  };
  // The blocked scale is [1, 8, 6, 2]: the model holds for batch 1 only.
  expect_same_outputs(m, {set(1, 1), set(1, 2)}, Precision::FP32);
  onnx::ModelProto m16 = qdq_chain_model();
  m16.mutable_graph()->mutable_output()->RemoveLast();  // the int8 output: compared in FP32 above
  const double err = compare(m16, set(1, 3), Precision::FP16);
  std::printf("QDQ chain, FP16 engine: max abs error / scale %.3e\n", err);
  EXPECT_LT(err, 0.03);
}

// unirt.QuantizedLinear (CUTLASS int8 / float8 WGMMA GEMMs): an explicitly quantized MLP block,
// lowered by the FP16 CUDA engine to two 8-bit GEMMs (GELU and the hidden requantize in fc1's
// epilogue, the residual in fc2's), against the CPU running the Q/DQ graph in float32. Row counts
// that are no multiple of the 128-row tile; 64-wide (N <= 64) and 128-wide tiles.
TEST_F(CudaOps, QuantizedLinearMatchesTheFloatSimulation) {
  struct Case {
    int64_t c, hidden, b, n;
    bool fp8;
  };
  for (const Case& k : {Case{32, 64, 3, 301, false}, Case{64, 256, 2, 1000, false}, Case{320, 1280, 2, 197, false},
                        Case{64, 256, 2, 1000, true}, Case{320, 1280, 2, 197, true}}) {
    SCOPED_TRACE((k.fp8 ? "fp8 c=" : "int8 c=") + std::to_string(k.c) + " hidden=" + std::to_string(k.hidden));
    const float sx = k.fp8 ? 4.f / 448 : 4.f / 127, sh = k.fp8 ? 3.f / 448 : 3.f / 127;
    onnx::ModelProto m = quantized_mlp_model(k.c, k.hidden, k.fp8, sx, sh);
    BuildOptions o;
    o.backend = "cuda";
    o.precision = Precision::FP16;
    const Engine e = build_engine(import_onnx_bytes(model_bytes(m, 19), "m"), o);
    // Up to 128 channels the pair is one unirt.QuantizedMlp (timed against the two GEMMs it holds).
    EXPECT_EQ(count_ops(e.graph, "unirt.QuantizedLinear") + 2 * count_ops(e.graph, "unirt.QuantizedMlp"), 2);
    EXPECT_EQ(count_ops(e.graph, "unirt.QuantizedMlp"), k.c <= 128 ? 1 : 0);
    EXPECT_EQ(count_ops(e.graph, "DequantizeLinear"), 0);
    const double err = compare(m, {random_input("x", {k.b, k.n, k.c}, 77)}, Precision::FP16);
    std::printf("QuantizedLinear %s c=%lld hidden=%lld M=%lld: max abs error / scale %.3e\n", k.fp8 ? "fp8" : "int8",
                static_cast<long long>(k.c), static_cast<long long>(k.hidden), static_cast<long long>(k.b * k.n), err);
    // float16 output rounding (the scale is ~4: 2e-3), tanh GELU, and hidden codes moved by one
    // step across a rounding boundary.
    EXPECT_LT(err, 0.03);
  }
}

// The short-K mma.sync 8-bit GEMM (quant_gemm_short_k.cu) on every epilogue, taken wherever it
// runs (UNIRT_QGEMM_TILE): the MLP block (GELU + requantize for fc1; the residual for fc2 at K =
// hidden <= 256) and the token mixer (float16 conv1; the residual + 8-bit copy of conv2), INT8 and
// FP8, row counts off the 128-row block, against the CPU's float32 Q/DQ graph as above.
TEST_F(CudaOps, ShortKEightBitGemmMatchesTheFloatSimulation) {
  setenv("UNIRT_QGEMM_TILE", "4", 1);
  setenv("UNIRT_QMLP", "pair", 1);  // the MLP's two GEMMs, not the fused kernel
  BuildOptions o;
  o.backend = "cuda";
  o.precision = Precision::FP16;
  auto short_k_layers = [](const std::map<std::string, std::string>& tactics) {  // GEMMs, two a unirt.QuantizedMlp
    int n = 0;
    for (const auto& [name, t] : tactics)
      for (size_t at = t.find("short-K"); at != std::string::npos; at = t.find("short-K", at + 1)) ++n;
    return n;
  };
  std::map<std::string, std::string> tactics;
  for (bool fp8 : {false, true}) {
    struct Case {
      int64_t c, hidden, b, n;
    };
    for (const Case& k : {Case{64, 256, 2, 1000}, Case{128, 256, 1, 77}, Case{32, 64, 3, 301}}) {
      SCOPED_TRACE((fp8 ? "mlp fp8 c=" : "mlp int8 c=") + std::to_string(k.c) + " hidden=" + std::to_string(k.hidden));
      const float sx = fp8 ? 4.f / 448 : 4.f / 127, sh = fp8 ? 3.f / 448 : 3.f / 127;
      onnx::ModelProto m = quantized_mlp_model(k.c, k.hidden, fp8, sx, sh);
      const Engine e = build_engine(import_onnx_bytes(model_bytes(m, 19), "m"), o);
      EXPECT_EQ(count_ops(e.graph, "unirt.QuantizedLinear") + 2 * count_ops(e.graph, "unirt.QuantizedMlp"), 2);
      const double err = compare(m, {random_input("x", {k.b, k.n, k.c}, 77)}, Precision::FP16, &tactics);
      EXPECT_EQ(short_k_layers(tactics), k.c % 64 == 0 ? 2 : 1);  // N = c must be a multiple of 64 for fc2
      std::printf("short-K QuantizedLinear %s c=%lld hidden=%lld M=%lld: max abs error / scale %.3e\n", fp8 ? "fp8" : "int8",
                  static_cast<long long>(k.c), static_cast<long long>(k.hidden), static_cast<long long>(k.b * k.n), err);
      EXPECT_LT(err, 0.03);
    }
    SCOPED_TRACE(fp8 ? "token mixer fp8" : "token mixer int8");
    onnx::ModelProto m = quantized_token_mixer_model(64, fp8, fp8 ? 4.f / 448 : 4.f / 127, fp8 ? 3.f / 448 : 3.f / 127);
    const Engine e = build_engine(import_onnx_bytes(model_bytes(m, 19), "m"), o);
    EXPECT_GE(count_ops(e.graph, "unirt.QuantizedLinear"), 2);
    const double err = compare(m, {random_input("x", {3, 64, 18, 20}, 79)}, Precision::FP16, &tactics);
    EXPECT_EQ(short_k_layers(tactics), count_ops(e.graph, "unirt.QuantizedLinear"));
    std::printf("short-K token mixer %s: max abs error / scale %.3e\n", fp8 ? "fp8" : "int8", err);
    EXPECT_LT(err, 0.03);
  }
  unsetenv("UNIRT_QGEMM_TILE");
  unsetenv("UNIRT_QMLP");
}

// The fused 8-bit MLP kernel (quantized_mlp.cu), taken wherever it runs (UNIRT_QMLP=fused): 32 to
// 128 channels, hidden widths of 3 to 16 chunks, row counts off the 128-row tile and enough rows
// for every persistent block to walk several tiles, INT8 and FP8, against the CPU's float32 Q/DQ
// graph. The hidden codes come from the hardware tanh (the CPU uses std::tanh), so a code may sit
// one step away where GELU lands near a rounding boundary.
TEST_F(CudaOps, FusedEightBitMlpMatchesTheFloatSimulation) {
  setenv("UNIRT_QMLP", "fused", 1);
  BuildOptions o;
  o.backend = "cuda";
  o.precision = Precision::FP16;
  struct Case {
    int64_t c, hidden, b, n;
  };
  for (bool fp8 : {false, true})
    for (const Case& k : {Case{64, 256, 2, 1000}, Case{128, 512, 2, 333}, Case{32, 96, 3, 301}, Case{96, 384, 1, 77},
                          Case{64, 256, 16, 3136}}) {
      SCOPED_TRACE((fp8 ? "fp8 c=" : "int8 c=") + std::to_string(k.c) + " hidden=" + std::to_string(k.hidden) + " rows=" +
                   std::to_string(k.b * k.n));
      const float sx = fp8 ? 4.f / 448 : 4.f / 127, sh = fp8 ? 3.f / 448 : 3.f / 127;
      onnx::ModelProto m = quantized_mlp_model(k.c, k.hidden, fp8, sx, sh);
      const Engine e = build_engine(import_onnx_bytes(model_bytes(m, 19), "m"), o);
      ASSERT_EQ(count_ops(e.graph, "unirt.QuantizedMlp"), 1);
      std::map<std::string, std::string> tactics;
      const double err = compare(m, {random_input("x", {k.b, k.n, k.c}, 78)}, Precision::FP16, &tactics);
      int fused = 0;
      for (const auto& [name, t] : tactics) fused += t.find("qmlp fused") != std::string::npos;
      EXPECT_EQ(fused, 1);
      std::printf("fused QuantizedMlp %s c=%lld hidden=%lld M=%lld: max abs error / scale %.3e\n", fp8 ? "fp8" : "int8",
                  static_cast<long long>(k.c), static_cast<long long>(k.hidden), static_cast<long long>(k.b * k.n), err);
      EXPECT_LT(err, 0.03);
    }
  unsetenv("UNIRT_QMLP");
}

// The vectorised per-tensor QuantizeLinear of FP16 engines (float16 in, eight elements a thread)
// against the CPU, bit for bit: inputs exactly representable in float16 (so the engine's input
// Cast changes nothing), rounding ties, saturation, int8 / uint8 with a zero point / float8.
TEST_F(CudaOps, PerTensorQuantizeOfFloat16MatchesCpuBitForBit) {
  struct Q {
    int type;
    int32_t zero;
  };
  for (const Q& k : {Q{onnx::TensorProto::INT8, 0}, Q{onnx::TensorProto::INT8, -3}, Q{onnx::TensorProto::UINT8, 128},
                     Q{onnx::TensorProto::FLOAT8E4M3FN, 0}}) {
    onnx::ModelProto m;
    auto* op = m.add_opset_import();
    op->set_domain("");
    op->set_version(19);
    auto* g = m.mutable_graph();
    add_input(g, "x", {"b", "40"});
    add_init(g, "s", {}, {0.0625f});
    auto* z = g->add_initializer();
    z->set_name("z");
    z->set_data_type(k.type);
    z->add_int32_data(k.zero);
    add_node(g, "QuantizeLinear", {"x", "s", "z"}, {"q"});
    g->add_output()->set_name("q");
    HostTensor x = random_input("x", {6, 40}, 91);
    for (int64_t i = 0; i < x.numel(); ++i) x.as<float>()[i] = std::round(x.as<float>()[i] * 64.f) / 128.f * (i % 3 ? 1.f : 40.f);
    x.as<float>()[0] = 1e4f, x.as<float>()[1] = -1e4f, x.as<float>()[2] = 0.03125f * 3;  // saturation and a tie
    SCOPED_TRACE("type " + std::to_string(k.type) + " zero point " + std::to_string(k.zero));
    expect_same_outputs(m, {{x}}, Precision::FP16);
  }
}

// unirt.LayerNormQuantize -> unirt.QuantizedLinear (a norm writing the GEMM's 8-bit input), against
// the CPU's float32 Q/DQ graph: float16 input and output rounding apart, the same codes.
TEST_F(CudaOps, LayerNormQuantizeFeedsTheEightBitGemm) {
  for (bool fp8 : {false, true}) {
    SCOPED_TRACE(fp8 ? "fp8" : "int8");
    onnx::ModelProto m = quantized_norm_linear_model(320, 960, fp8, fp8 ? 4.f / 448 : 4.f / 127);
    BuildOptions o;
    o.backend = "cuda";
    o.precision = Precision::FP16;
    const Engine e = build_engine(import_onnx_bytes(model_bytes(m, 19), "m"), o);
    EXPECT_EQ(count_ops(e.graph, "unirt.LayerNormQuantize"), 1);
    EXPECT_EQ(count_ops(e.graph, "unirt.QuantizedLinear"), 1);
    const double err = compare(m, {random_input("x", {2, 197, 320}, 78)}, Precision::FP16);
    std::printf("LayerNormQuantize -> QuantizedLinear %s: max abs error / scale %.3e\n", fp8 ? "fp8" : "int8", err);
    EXPECT_LT(err, 0.03);
  }
}

// Depthwise ConvNHWC writing the 8-bit codes (q_scale) of its float16 output, as a second output
// (the pos_embed conv, whose sum is also the residual) and in place of it (the 5x5), and the
// residual 8-bit GEMM storing the codes of its output next to it (CUTLASS auxiliary store), against
// the CPU's float32 Q/DQ graph: the per-thread, TW = 4 and shared-memory tiled conv kernels (batch
// 32 at 64 channels), and the scalar path (20 channels, where the 1x1 convs stay float and the
// last Q stays).
TEST_F(CudaOps, ConvsAndResidualGemmsWriteTheCodesOfTheirQuantize) {
  struct K {
    int64_t c, b, h;
    bool fp8;
  };
  for (const K& k : {K{64, 2, 18, false}, K{64, 2, 18, true}, K{64, 32, 112, false}, K{64, 32, 112, true}, K{20, 3, 14, false}}) {
    SCOPED_TRACE((k.fp8 ? "fp8 c=" : "int8 c=") + std::to_string(k.c) + " b=" + std::to_string(k.b));
    onnx::ModelProto m = quantized_token_mixer_model(k.c, k.fp8, k.fp8 ? 4.f / 448 : 4.f / 127, k.fp8 ? 3.f / 448 : 3.f / 127);
    BuildOptions o;
    o.backend = "cuda";
    o.precision = Precision::FP16;
    const Engine e = build_engine(import_onnx_bytes(model_bytes(m, 19), "m"), o);
    const bool gemms = k.c % 16 == 0;
    EXPECT_EQ(count_ops(e.graph, "QuantizeLinear"), gemms ? 0 : 1);
    int fused = 0, dual = 0;
    for (const auto& n : e.graph.nodes) {
      fused += n.op_type == "unirt.ConvNHWC" && n.has_attr("q_scale");
      dual += n.op_type == "unirt.QuantizedLinear" && n.outputs.size() == 2;
    }
    EXPECT_EQ(fused, 2);
    EXPECT_EQ(dual, gemms ? 1 : 0);
    const double err = compare(m, {random_input("x", {k.b, k.c, k.h, k.h + 2}, 79)}, Precision::FP16);
    std::printf("depthwise conv -> codes %s c=%lld b=%lld: max abs error / scale %.3e\n", k.fp8 ? "fp8" : "int8",
                static_cast<long long>(k.c), static_cast<long long>(k.b), err);
    // float16 rounding of the convs and the output, and codes moved by one step where the float16
    // value lands across a rounding boundary of the float32 one.
    EXPECT_LT(err, 0.03);
  }
}

// unirt.Attention writing the projection's 8-bit input (q_scale) against the CPU's float32 Q/DQ
// graph: the flash kernel (head_dim 32 and 64, token counts off the 16-query tiles) and the scalar
// one (head_dim 40).
TEST_F(CudaOps, AttentionWritesTheCodesOfItsQuantize) {
  struct K {
    int64_t heads, hd, n;
    bool fp8;
  };
  for (const K& k : {K{5, 64, 196, false}, K{5, 64, 196, true}, K{4, 32, 49, false}, K{2, 40, 50, true}}) {
    SCOPED_TRACE((k.fp8 ? "fp8 hd=" : "int8 hd=") + std::to_string(k.hd) + " n=" + std::to_string(k.n));
    onnx::ModelProto m = quantized_attention_model(k.heads, k.hd, k.fp8, k.fp8 ? 1.f / 448 : 1.f / 127);
    BuildOptions o;
    o.backend = "cuda";
    o.precision = Precision::FP16;
    const Engine e = build_engine(import_onnx_bytes(model_bytes(m, 19), "m"), o);
    EXPECT_EQ(count_ops(e.graph, "QuantizeLinear"), 0);
    const double err = compare(m, {random_input("x", {3, k.n, 3 * k.heads * k.hd}, 80)}, Precision::FP16);
    std::printf("attention -> codes %s hd=%lld n=%lld: max abs error / scale %.3e\n", k.fp8 ? "fp8" : "int8",
                static_cast<long long>(k.hd), static_cast<long long>(k.n), err);
    EXPECT_LT(err, 0.03);
  }
}

// float8 E4M3FN: QuantizeLinear per channel (saturating and not) -> DequantizeLinear, and Cast
// to float8 and back, against the CPU bit for bit (backend/float8_rule.h on both sides): values
// from subnormals to beyond 448, ties, infinities and NaN.
TEST_F(CudaOps, Float8QuantizeAndCastMatchCpu) {
  for (int64_t saturate : {1, 0}) {
    onnx::ModelProto m;
    auto* op = m.add_opset_import();
    op->set_domain("");
    op->set_version(19);
    auto* g = m.mutable_graph();
    add_input(g, "x", {"b", "4", "64"});
    add_init(g, "s", {4}, {0.5f, 0.25f, 2.f, 0.125f});
    auto* z = g->add_initializer();
    z->set_name("z");
    z->set_data_type(onnx::TensorProto::FLOAT8E4M3FN);
    z->add_dims(4);
    for (int i = 0; i < 4; ++i) z->add_int32_data(0);
    auto* q = add_node(g, "QuantizeLinear", {"x", "s", "z"}, {"q"});
    add_int(q, "axis", 1);
    add_int(q, "saturate", saturate);
    add_int(add_node(g, "DequantizeLinear", {"q", "s", "z"}, {"y"}), "axis", 1);
    auto* c8 = add_node(g, "Cast", {"x"}, {"c8"});
    add_int(c8, "to", onnx::TensorProto::FLOAT8E4M3FN);
    add_int(c8, "saturate", saturate);
    add_int(add_node(g, "Cast", {"c8"}, {"c"}), "to", onnx::TensorProto::FLOAT);
    for (const char* o : {"y", "c"}) g->add_output()->set_name(o);
    HostTensor x = random_input("x", {2, 4, 64}, 41);
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> e(-9.f, 7.f);
    for (int64_t i = 0; i < x.numel(); ++i) x.as<float>()[i] *= std::exp(e(rng));
    const float special[] = {448.f, 464.f, 465.f, 480.f, 490.f, 496.f, -500.f, 1e30f, INFINITY, -INFINITY, NAN, 0x1p-10f, 0x3p-11f, -0.f};
    for (size_t i = 0; i < sizeof(special) / sizeof(float); ++i) x.as<float>()[i] = special[i];
    expect_same_outputs(m, {{x}}, Precision::FP32);
  }
}

// Concat of many narrow inputs (one launch per 16 of them), a wide one among them (a 2-D copy,
// which splits the group), along the last and a middle axis, float and int64: bit-equal.
TEST_F(CudaOps, ConcatOfNarrowRowsMatchesCpu) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  std::vector<std::string> last, middle;
  std::vector<std::vector<int64_t>> shapes;
  for (int i = 0; i < 21; ++i) {
    const int64_t w = i == 9 ? 200 : 1 + i % 3;  // 200 floats: an 800-byte row
    const std::string n = "x" + std::to_string(i);
    add_input(g, n, {"50", std::to_string(w)});
    shapes.push_back({50, w});
    last.push_back(n);
    if (i < 18) {
      add_init_i64(g, "shape" + std::to_string(i), {5, w, 10});
      add_node(g, "Reshape", {n, "shape" + std::to_string(i)}, {n + "_r"});
      add_int(add_node(g, "Cast", {n + "_r"}, {n + "_i"}), "to", 7);  // int64
      middle.push_back(n + "_i");
    }
  }
  add_int(add_node(g, "Concat", last, {"y_last"}), "axis", -1);
  add_int(add_node(g, "Concat", middle, {"y_middle"}), "axis", 1);
  g->add_output()->set_name("y_last");
  g->add_output()->set_name("y_middle");
  auto in = inputs_for(shapes, 71);
  for (size_t i = 0; i < in.size(); ++i) in[i].name = "x" + std::to_string(i);
  for (auto& t : in)
    for (int64_t i = 0; i < t.numel(); ++i) t.as<float>()[i] = std::round(t.as<float>()[i] * 100.f);
  expect_same_outputs(m, {in}, Precision::FP32);
}

TEST_F(CudaOps, NonZeroMatchesCpu) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "a", {"batch", "n"});
  add_node(g, "NonZero", {"a"}, {"nz"});
  add_int(add_node(g, "Cast", {"a"}, {"ab"}), "to", 9);  // bool
  add_node(g, "NonZero", {"ab"}, {"nzb"});
  add_ints(add_node(g, "Transpose", {"nz"}, {"nzt"}), "perm", {1, 0});  // data-shaped downstream
  add_int(add_node(g, "Cast", {"nzt"}, {"nzf"}), "to", 1);
  add_node(g, "Neg", {"nzf"}, {"neg"});
  for (const char* o : {"nz", "nzb", "neg"}) g->add_output()->set_name(o);
  std::vector<std::vector<HostTensor>> sets = {{sparse_input("a", {3, 1000}, 1)}, {sparse_input("a", {3, 1000}, 2)},
                                               {sparse_input("a", {2, 5000}, 3)}, {sparse_input("a", {1, 1}, 4)}};
  HostTensor zeros = random_input("a", {2, 7}, 5);
  std::fill(zeros.bytes.begin(), zeros.bytes.end(), 0);
  sets.push_back({zeros});
  expect_same_outputs(m, sets, Precision::FP32);
  expect_same_outputs(m, sets, Precision::FP16);
}

namespace {

// NonMaxSuppression(boxes [b, n, 4], scores [b, c, n]), at most max_out per class, IoU 0.5.
// Without a score threshold when score_threshold is NaN.
onnx::ModelProto nms_model(float score_threshold, int64_t center_point_box, int64_t max_out = 100) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "boxes", {"b", "n", "4"});
  add_input(g, "scores", {"b", "c", "n"});
  add_init_i64(g, "max_out", {max_out});
  add_init(g, "iou", {1}, {0.5f});
  std::vector<std::string> ins = {"boxes", "scores", "max_out", "iou"};
  if (score_threshold == score_threshold) {
    add_init(g, "thr", {1}, {score_threshold});
    ins.push_back("thr");
  }
  add_int(add_node(g, "NonMaxSuppression", ins, {"sel"}), "center_point_box", center_point_box);
  g->add_output()->set_name("sel");
  return m;
}

}  // namespace

TEST_F(CudaOps, NonMaxSuppressionMatchesCpu) {
  for (int center = 0; center < 2; ++center) {
    onnx::ModelProto m = nms_model(0.3f, center);
    // The last set returns to the first shape: each shape keeps its own plan.
    expect_same_outputs(m, {nms_inputs(2, 4, 500, 1), nms_inputs(2, 4, 500, 2), nms_inputs(1, 80, 1000, 3), nms_inputs(3, 1, 70, 4),
                            nms_inputs(2, 4, 500, 6), nms_inputs(2, 1, 20000, 7)},
                        Precision::FP32);
    expect_same_outputs(m, {nms_inputs(1, 80, 1000, 5)}, Precision::FP16);  // box arithmetic stays float32
  }
}

// NaN scores sort after every real score on both backends, and a score threshold leaves them out.
TEST_F(CudaOps, NonMaxSuppressionOfNanScoresMatchesCpu) {
  auto with_nans = [](uint32_t seed) {
    auto in = nms_inputs(2, 3, 400, seed);
    for (int64_t i = 0; i < in[1].numel(); i += 7) in[1].as<float>()[i] = std::numeric_limits<float>::quiet_NaN();
    return in;
  };
  for (float thr : {0.3f, std::numeric_limits<float>::quiet_NaN()}) {
    onnx::ModelProto m = nms_model(thr, 0, 1000);
    expect_same_outputs(m, {with_nans(21), with_nans(22)}, Precision::FP32);
  }
}

// A detector's box NMS: 1000 proposals x 80 classes per image in one class-offset row, taken in
// chunks of candidates.
TEST_F(CudaOps, NonMaxSuppressionOfLargeRowsTakesTurns) {
  onnx::ModelProto m = nms_model(0.95f, 0);  // a few thousand candidates per row, like score_thr after a trained head
  expect_same_outputs(m, {nms_inputs(3, 1, 80000, 11)}, Precision::FP32);
}

// Rows whose candidates span several chunks and keep boxes in each: the later chunks' candidates
// are checked against the boxes kept before them (no max_out cut-off reached).
TEST_F(CudaOps, NonMaxSuppressionAcrossChunksKeepsTheGreedyOrder) {
  for (int64_t max_out : {int64_t{1} << 40, int64_t{700}}) {
    onnx::ModelProto m = nms_model(0.1f, 0, max_out);
    expect_same_outputs(m, {nms_inputs(2, 1, 50000, 12), nms_inputs(1, 2, 33000, 13)}, Precision::FP32);
  }
}

namespace {

// Builds `m` for CUDA and counts the nodes of `op` (the fused op must be what the comparison
// runs).
int fused_count(onnx::ModelProto& m, const std::string& op) {
  BuildOptions o;
  o.backend = "cuda";
  const Engine e = build_engine(import_onnx_bytes(model_bytes(m), "m"), o);
  int n = 0;
  for (const auto& node : e.graph.nodes) n += node.op_type == op;
  return n;
}

}  // namespace

// unirt.BoxDecode (fused from the exported decoding) against the CPU: the RPN form (one RoI per
// delta, clipped to a bound) and the box head's (RoIs broadcast over classes); FP16 engines keep
// it in float32. Boxes of up to ~1000 px: 1e-6 of the scale is a thousandth of a pixel.
TEST_F(CudaOps, BoxDecodeMatchesCpu) {
  for (bool broadcast : {false, true}) {
    onnx::ModelProto m = box_decode_model(true, broadcast);
    std::mt19937 rng(17);
    std::uniform_real_distribution<float> pos(0.f, 300.f), size(0.f, 80.f), delta(-3.f, 3.f);
    const int64_t b = 2, n = 1000, c = broadcast ? 80 : 1;
    HostTensor r = random_input("rois", {b, n, broadcast ? 1 : c, 4}, 3), d = random_input("deltas", {b, n, c, 4}, 4),
               bd = random_input("bound", {2}, 5);
    for (int64_t i = 0; i < r.numel() / 4; ++i) {
      float* q = r.as<float>() + i * 4;
      q[0] = pos(rng), q[1] = pos(rng), q[2] = q[0] + size(rng), q[3] = q[1] + size(rng);
    }
    for (int64_t i = 0; i < d.numel(); ++i) d.as<float>()[i] = delta(rng);
    bd.as<float>()[0] = 320.f, bd.as<float>()[1] = 256.f;
    EXPECT_EQ(fused_count(m, "unirt.BoxDecode"), 1);
    for (Precision p : {Precision::FP32, Precision::FP16})
      EXPECT_LT(compare(m, {r, d, bd}, p), 1e-6) << "broadcast " << broadcast << (p == Precision::FP16 ? " fp16" : " fp32");
  }
}

// unirt.MultiLevelTopK against the CPU: values and indices bit-equal (one radix sort over the
// levels; ties to the lower index), batch 1 and 3, FP32 and FP16 engines (score selection stays
// float32).
TEST_F(CudaOps, MultiLevelTopKMatchesCpu) {
  onnx::ModelProto m = multilevel_topk_model();
  auto set = [](int64_t batch, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<HostTensor> v;
    for (auto [name, n] : {std::pair<const char*, int64_t>{"a", 50}, {"b", 20}, {"c", 7}}) {
      HostTensor t = random_input(name, {batch, n}, seed);
      for (int64_t i = 0; i < t.numel(); ++i) t.as<float>()[i] = static_cast<float>(rng() % 13) * 0.25f - 1.f;  // ties
      v.push_back(t);
    }
    return v;
  };
  EXPECT_EQ(fused_count(m, "unirt.MultiLevelTopK"), 1);
  expect_same_outputs(m, {set(1, 1), set(3, 2), set(1, 3)}, Precision::FP32);
  expect_same_outputs(m, {set(2, 4)}, Precision::FP16);
}

TEST_F(CudaOps, TopKWithADataK) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "a", {"batch", "n"});
  auto* k = g->add_input();
  k->set_name("k");
  k->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::INT64);
  k->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(1);
  add_node(g, "TopK", {"a", "k"}, {"v", "i"}, "topk");
  add_node(g, "Neg", {"v"}, {"nv"});
  for (const char* o : {"nv", "i"}) g->add_output()->set_name(o);
  auto set = [](int64_t kk, uint32_t seed) {
    HostTensor kt;
    kt.name = "k";
    kt.dtype = DType::Int64;
    kt.shape = {1};
    kt.bytes.resize(8);
    std::memcpy(kt.bytes.data(), &kk, 8);
    return std::vector<HostTensor>{random_input("a", {2, 300}, seed), kt};
  };
  expect_same_outputs(m, {set(5, 1), set(300, 2), set(0, 3), set(5, 4)}, Precision::FP32);
  BuildOptions o;
  o.backend = "cuda";
  auto e = std::make_shared<Engine>(build_engine(import_onnx_bytes(model_bytes(m), "m"), o));
  Session s(e, make_cuda_backend());
  try {
    s.run(set(301, 5));
    ADD_FAILURE() << "k beyond the axis was accepted";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("topk"), std::string::npos) << err.what();
  }
}

// compute-sanitizer initcheck reports every read of a float16 patch-embedding output (im2col +
// cuBLASLt GEMM, then LayerNorm) as uninitialised. With the arena and workspace poisoned (0xFF:
// NaN), anything really left unwritten would turn the output into NaN: it must match the CPU.
TEST_F(CudaOps, PatchEmbeddingOutputIsWrittenEverywhere) {
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.f, 0.1f);
  std::vector<float> w(64 * 3 * 16);
  for (auto& v : w) v = nd(rng);
  onnx::ModelProto m = patch_embed_model(w);
  setenv("UNIRT_POISON_MEMORY", "1", 1);
  auto in = inputs_for({{2, 3, 224, 224}}, 3);
  const double fp16 = compare(m, in, Precision::FP16), fp32 = compare(m, in, Precision::FP32);
  unsetenv("UNIRT_POISON_MEMORY");
  EXPECT_LT(fp16, 2e-2);  // NaN compares false: a NaN output fails here
  EXPECT_LT(fp32, 1e-4);
}

// ---- the detector's ops: RoiAlign, Resize, ConvTranspose, integer index arithmetic ----

namespace {

// Boxes (x0, y0, x1, y1) in image pixels for a map of stride 4: small, large, thin, partly
// outside the image and degenerate.
void add_rois(onnx::GraphProto* g) {
  add_init(g, "rois", {6, 4}, {3, 5, 40, 31, 0, 0, 95, 79, 10.5f, 2, 12, 70, -6, -4, 20, 18, 60, 50, 110, 90, 30, 30, 30, 30});
  add_init_i64(g, "bidx", {0, 1, 1, 0, 1, 0});
}

}  // namespace

TEST_F(CudaOps, RoiAlignMatchesCpu) {
  for (int64_t sr : {0, 2}) {
    onnx::ModelProto m;
    auto* g = m.mutable_graph();
    add_input(g, "x", {"2", "8", "20", "24"});
    add_rois(g);
    auto* n = add_node(g, "RoiAlign", {"x", "rois", "bidx"}, {"y"});
    add_int(n, "output_height", 7);
    add_int(n, "output_width", 5);
    add_int(n, "sampling_ratio", sr);
    add_float(n, "spatial_scale", 0.25f);
    g->add_output()->set_name("y");
    auto in = inputs_for({{2, 8, 20, 24}}, 31);
    in[0].name = "x";
    onnx::ModelProto m16 = m;
    EXPECT_LT(compare(m, in, Precision::FP32), 1e-5) << "sampling_ratio " << sr;
    EXPECT_LT(compare(m16, in, Precision::FP16), 3e-3) << "sampling_ratio " << sr;
  }
}

TEST_F(CudaOps, ResizeNearestAndLinearMatchCpu) {
  struct Case {
    const char* mode;
    const char* coord;
    std::vector<int64_t> sizes;
  };
  for (const Case& c : {Case{"nearest", "asymmetric", {2, 4, 10, 14}}, Case{"linear", "half_pixel", {2, 4, 9, 4}},
                        Case{"linear", "align_corners", {2, 4, 3, 11}}, Case{"nearest", "half_pixel", {2, 4, 8, 5}}}) {
    onnx::ModelProto m;
    auto* g = m.mutable_graph();
    add_input(g, "a", {"2", "4", "5", "7"});
    add_init_i64(g, "sizes", c.sizes);
    auto* n = add_node(g, "Resize", {"a", "", "", "sizes"}, {"y"});
    auto str_attr = [&](const char* k, const char* v) {
      auto* at = n->add_attribute();
      at->set_name(k);
      at->set_type(onnx::AttributeProto::STRING);
      at->set_s(v);
    };
    str_attr("mode", c.mode);
    str_attr("coordinate_transformation_mode", c.coord);
    if (std::string(c.mode) == "nearest") str_attr("nearest_mode", "floor");
    g->add_output()->set_name("y");
    auto in = inputs_for({{2, 4, 5, 7}}, 41);
    onnx::ModelProto m16 = m;
    EXPECT_LT(compare(m, in, Precision::FP32), 1e-6) << c.mode << " " << c.coord;
    EXPECT_LT(compare(m16, in, Precision::FP16), 2e-3) << c.mode << " " << c.coord;
  }
}

TEST_F(CudaOps, ConvTransposeMatchesCpu) {
  struct Case {
    int64_t k, stride, pad, out_pad;
  };
  for (const Case& c : {Case{2, 2, 0, 0}, Case{3, 2, 1, 1}, Case{3, 1, 1, 0}}) {
    onnx::ModelProto m;
    auto* g = m.mutable_graph();
    add_input(g, "x", {"batch", "16", "7", "6"});
    add_init(g, "w", {16, 8, c.k, c.k}, randv(16 * 8 * c.k * c.k, 5, 0.2f));
    add_init(g, "b", {8}, randv(8, 6, 0.2f));
    auto* n = add_node(g, "ConvTranspose", {"x", "w", "b"}, {"y"});
    add_ints(n, "strides", {c.stride, c.stride});
    add_ints(n, "pads", {c.pad, c.pad, c.pad, c.pad});
    add_ints(n, "output_padding", {c.out_pad, c.out_pad});
    g->add_output()->set_name("y");
    auto in = inputs_for({{3, 16, 7, 6}}, 51);
    in[0].name = "x";
    onnx::ModelProto m16 = m;
    EXPECT_LT(compare(m, in, Precision::FP32), 1e-5) << "kernel " << c.k << " stride " << c.stride;
    EXPECT_LT(compare(m16, in, Precision::FP16), 3e-3) << "kernel " << c.k << " stride " << c.stride;
  }
}

// The detector's index arithmetic on data: ranks within a batch item (ReduceSum of a comparison),
// label = index % classes, offsets by multiplication; exact.
TEST_F(CudaOps, IntegerArithmeticMatchesCpu) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "a", {"6", "5"});
  add_init(g, "ten", {1}, {10.f});
  add_node(g, "Mul", {"a", "ten"}, {"a10"});
  add_node(g, "Floor", {"a10"}, {"af"});
  add_int(add_node(g, "Cast", {"af"}, {"ai"}), "to", 7);
  add_init_i64(g, "seven", {7});
  add_init_i64(g, "three", {3});
  add_node(g, "Mod", {"ai", "seven"}, {"md"});
  auto* fm = add_node(g, "Mod", {"ai", "seven"}, {"fmd"});
  add_int(fm, "fmod", 1);
  add_node(g, "Sub", {"ai", "md"}, {"sb"});
  add_node(g, "Mul", {"sb", "three"}, {"ml"});
  add_node(g, "Add", {"ml", "fmd"}, {"ad"});
  add_node(g, "Div", {"ad", "seven"}, {"dv"});
  add_node(g, "Max", {"dv", "md"}, {"mx"});
  add_node(g, "Less", {"ai", "seven"}, {"lt"});
  add_int(add_node(g, "Cast", {"lt"}, {"lti"}), "to", 7);
  add_init_i64(g, "ax", {0});
  add_node(g, "ReduceSum", {"lti", "ax"}, {"cnt"});
  add_ints(add_node(g, "ReduceMax", {"ai"}, {"rmax"}), "axes", {1});
  for (const char* v : {"mx", "cnt", "rmax"}) {
    add_int(add_node(g, "Cast", {v}, {std::string(v) + "f"}), "to", 1);
    g->add_output()->set_name(std::string(v) + "f");
  }
  auto in = inputs_for({{6, 5}}, 61);
  EXPECT_EQ(compare(m, in, Precision::FP32), 0.0);
}

// Rows longer than the shared-memory sort (a detector's per-level anchor scores): CUB's radix sort,
// ties by lower index as on the CPU, largest and smallest, a shape revisited after another.
TEST_F(CudaOps, TopKLongRowsMatchCpu) {
  for (int largest = 0; largest < 2; ++largest) {
    onnx::ModelProto m;
    auto* g = m.mutable_graph();
    add_input(g, "a", {"batch", "n"});
    add_init(g, "q", {1}, {8.f});
    add_node(g, "Mul", {"a", "q"}, {"aq"});
    add_node(g, "Floor", {"aq"}, {"x"});  // many equal values
    add_init_i64(g, "k", {1000});
    add_int(add_node(g, "TopK", {"x", "k"}, {"v", "i"}), "largest", largest);
    g->add_output()->set_name("v");
    g->add_output()->set_name("i");
    auto set = [](int64_t b, int64_t n, uint32_t seed) { return std::vector<HostTensor>{random_input("a", {b, n}, seed)}; };
    expect_same_outputs(m, {set(1, 201600, 1), set(2, 50400, 2), set(1, 201600, 3), set(3, 2049, 4)}, Precision::FP32);
  }
}

// Channels-last 3x3 convolutions through cuDNN (UNIRT_CONV_NHWC=cudnn) against the CPU, with a
// residual Add that the passes fold into the convolution.
TEST_F(CudaOps, ConvNhwcViaCudnnMatchesCpu) {
  setenv("UNIRT_CONV_NHWC", "cudnn", 1);
  for (int64_t stride : {1}) {
    onnx::ModelProto m;
    conv_model(m, 32, 32, 3, 1, stride, 1);
    auto* g = m.mutable_graph();
    g->mutable_output()->Clear();
    add_node(g, "Relu", {"y"}, {"r"});
    add_node(g, "Conv", {"r", "w", "b"}, {"y2"}, "conv2");
    add_ints(g->mutable_node(g->node_size() - 1), "pads", {1, 1, 1, 1});
    add_node(g, "Add", {"y2", "r"}, {"z"});
    g->add_output()->set_name("z");
    auto in = inputs_for({{2, 32, 20, 26}}, 81);
    in[0].name = "x";
    onnx::ModelProto m16 = m;
    EXPECT_LT(compare(m, in, Precision::FP32), 1e-5) << "stride " << stride;
    EXPECT_LT(compare(m16, in, Precision::FP16), 3e-3) << "stride " << stride;
  }
  unsetenv("UNIRT_CONV_NHWC");
}

// Few long rows (one block per row) and the usual many short ones.
TEST_F(CudaOps, ReduceLongRows) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "a", {"batch", "n"});
  add_ints(add_node(g, "ReduceMax", {"a"}, {"mx"}), "axes", {1});
  add_init_i64(g, "ax", {1});
  add_node(g, "ReduceSum", {"a", "ax"}, {"sm"});
  for (const char* o : {"mx", "sm"}) g->add_output()->set_name(o);
  EXPECT_LT(compare(m, inputs_for({{2, 40000}}, 91), Precision::FP32), 1e-5);
}

// Nearest upsampling of a channels-last map (16-byte vectors of the unresized innermost axis).
TEST_F(CudaOps, ResizeNearestChannelsLastMatchesCpu) {
  for (const char* coord : {"asymmetric", "half_pixel"}) {
    onnx::ModelProto m;
    auto* g = m.mutable_graph();
    add_input(g, "a", {"2", "5", "7", "16"});
    add_init_i64(g, "sizes", {2, 10, 13, 16});
    auto* n = add_node(g, "Resize", {"a", "", "", "sizes"}, {"y"});
    auto* at = n->add_attribute();
    at->set_name("coordinate_transformation_mode");
    at->set_type(onnx::AttributeProto::STRING);
    at->set_s(coord);
    g->add_output()->set_name("y");
    auto in = inputs_for({{2, 5, 7, 16}}, 43);
    onnx::ModelProto m16 = m;
    EXPECT_EQ(compare(m, in, Precision::FP32), 0.0) << coord;
    EXPECT_LT(compare(m16, in, Precision::FP16), 1e-3) << coord;
  }
}

// The fused multi-level RoIAlign against the CPU: levels from data (x * 0 + level), one RoI whose
// level matches no map, FP32 and FP16 maps (RoI coordinates stay float32).
TEST_F(CudaOps, MultiLevelRoiAlignMatchesCpu) {
  // With a conv per level the maps arrive channels-last; the RoIs' features are then written
  // channels-last for a conv after them, or NCHW for the graph output (as for the box head's FC).
  for (int variant : {0, 1, 2}) {
  const bool convs = variant > 0, conv_after = variant == 1;
  const std::string what = variant == 0 ? "NCHW maps" : conv_after ? "channels-last maps and output" : "channels-last maps, NCHW output";
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "a", {"2", "8", "32", "40"});
  add_ints(add_node(g, "MaxPool", {"a"}, {"f1"}), "kernel_shape", {2, 2});
  add_ints(g->mutable_node(0), "strides", {2, 2});
  add_ints(add_node(g, "MaxPool", {"f1"}, {"f2"}), "kernel_shape", {2, 2});
  add_ints(g->mutable_node(1), "strides", {2, 2});
  add_init(g, "rois", {6, 4}, {3, 5, 40, 31, 0, 0, 95, 79, 10.5f, 2, 12, 70, -6, -4, 20, 18, 60, 50, 110, 90, 30, 30, 30, 30});
  add_init_i64(g, "bidx", {0, 1, 1, 0, 1, 0});
  add_init_i64(g, "flat", {-1});
  add_init_i64(g, "s0", {0});
  add_init_i64(g, "s6", {6});
  add_init(g, "zero", {}, {0.f});
  add_init(g, "lv", {6}, {0, 2, 1, 0, 7, 1});
  add_node(g, "Reshape", {"a", "flat"}, {"xf"});
  add_node(g, "Slice", {"xf", "s0", "s6"}, {"xs"});
  add_node(g, "Mul", {"xs", "zero"}, {"xz"});
  add_node(g, "Add", {"xz", "lv"}, {"level"});
  add_init_i64(g, "axes", {1, 2, 3});
  std::vector<std::string> feats = {"a", "f1", "f2"};
  if (convs) {
    add_init(g, "cw", {8, 8, 3, 3}, randv(8 * 8 * 9, 13, 0.2f));
    for (auto& f : feats) {
      add_ints(add_node(g, "Conv", {f, "cw"}, {f + "_c"}), "pads", {1, 1, 1, 1});
      f += "_c";
    }
  }
  for (int i = 0; i < 3; ++i) {
    const std::string s = std::to_string(i);
    add_init(g, "c" + s, {}, {static_cast<float>(i)});
    add_node(g, "Equal", {"level", "c" + s}, {"eq" + s});
    add_int(add_node(g, "Cast", {"eq" + s}, {"mf" + s}), "to", 1);
    add_node(g, "Unsqueeze", {"mf" + s, "axes"}, {"mask" + s});
    auto* ra = add_node(g, "RoiAlign", {feats[i], std::string("rois"), std::string("bidx")}, {"ra" + s});
    add_int(ra, "output_height", 7);
    add_int(ra, "output_width", 7);
    add_int(ra, "sampling_ratio", 0);
    add_float(ra, "spatial_scale", 0.25f / static_cast<float>(1 << i));
    add_node(g, "Mul", {"ra" + s, "mask" + s}, {"t" + s});
  }
  add_node(g, "Add", {"t0", "t1"}, {"s01"});
  add_node(g, "Add", {"s01", "t2"}, {conv_after ? "yr" : "y"});
  if (conv_after) add_ints(add_node(g, "Conv", {"yr", "cw"}, {"y"}), "pads", {1, 1, 1, 1});
  g->add_output()->set_name("y");
  auto in = inputs_for({{2, 8, 32, 40}}, 101);
  onnx::ModelProto m16 = m;
  EXPECT_LT(compare(m, in, Precision::FP32), 1e-5) << what;
  EXPECT_LT(compare(m16, in, Precision::FP16), 3e-3) << what;
  }
}
