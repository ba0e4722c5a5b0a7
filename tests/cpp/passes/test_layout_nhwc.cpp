// convert_to_nhwc and the epilogue fusions on a CBlock + token-reshape graph: the result must
// match the NCHW graph on the CPU and keep only the unavoidable reformats.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "onnx/importer.h"
#include "passes/fusions.h"
#include "passes/pipeline.h"
#include "passes/shape_inference.h"
#include "runtime/session.h"
#include "test_graphs.h"

using namespace unirt;
using namespace unirt::testing;

namespace {

std::vector<float> run(const std::string& bytes, const std::string& layout, const std::vector<float>& x, std::vector<int64_t> shape,
                       Engine* keep, const QuantizationOptions& q = {}) {
  BuildOptions o;
  o.layout = layout;
  o.quantization = q;
  auto e = std::make_shared<Engine>(build_engine(import_onnx_bytes(bytes, "m"), o));
  if (keep) *keep = *e;
  Session s(e, make_cpu_backend(1));
  HostTensor t;
  t.name = "x";
  t.shape = shape;
  t.bytes.resize(x.size() * 4);
  std::memcpy(t.bytes.data(), x.data(), t.bytes.size());
  auto out = s.run({t});
  return std::vector<float>(out[0].as<float>(), out[0].as<float>() + out[0].numel());
}

}  // namespace

TEST(LayoutNhwc, CBlockMatchesNchwWithoutReformats) {
  auto m = cblock_model();
  const std::string bytes = model_bytes(m);
  for (auto shape : {std::vector<int64_t>{2, 8, 12, 10}, std::vector<int64_t>{1, 8, 14, 18}}) {
    const auto x = randn(static_cast<size_t>(shape[0] * shape[1] * shape[2] * shape[3]), 1.f, 21);
    Engine nhwc, nchw;
    auto a = run(bytes, "nhwc", x, shape, &nhwc);
    auto b = run(bytes, "nchw", x, shape, &nchw);
    ASSERT_EQ(a.size(), b.size());
    double worst = 0, scale = 1;
    for (size_t i = 0; i < a.size(); ++i) {
      worst = std::max(worst, std::fabs(double(a[i]) - b[i]));
      scale = std::max(scale, std::fabs(double(b[i])));
    }
    EXPECT_LT(worst / scale, 1e-5);
    // No reformat is left: the patch conv reads the NCHW input, the token reshape and its transpose cancel.
    EXPECT_EQ(count_ops(nhwc.graph, "Transpose"), 0);
    EXPECT_EQ(count_ops(nhwc.graph, "Gelu"), 0);  // in the fc1 GEMM's epilogue
    EXPECT_EQ(count_ops(nhwc.graph, "Conv"), 0);
    EXPECT_EQ(count_ops(nhwc.graph, "BatchNormalization"), 0);
    EXPECT_EQ(count_ops(nhwc.graph, "unirt.ConvNHWC"), 3);  // patch, pos, dw5x5
    EXPECT_EQ(count_ops(nhwc.graph, "unirt.Linear"), 4);
    EXPECT_EQ(count_ops(nhwc.graph, "Add"), 0);  // every residual in an epilogue
  }
}

// A kernel == stride ConvTranspose between convolutions becomes a channels-last GEMM and a
// depth-to-space (same numbers as NCHW); a padded one stays a ConvTranspose.
TEST(LayoutNhwc, ConvTransposeWithKernelEqualStrideIsAGemm) {
  for (int64_t pad : {0, 1}) {
    onnx::ModelProto m;
    auto* g = m.mutable_graph();
    add_input(g, "x", {"n", "8", "6", "5"});
    add_init(g, "w0", {8, 8, 3, 3}, randn(8 * 8 * 9, 0.2f, 31));
    add_init(g, "wt", {8, 4, 2, 2}, randn(8 * 4 * 4, 0.3f, 32));
    add_init(g, "bt", {4}, randn(4, 0.1f, 33));
    add_init(g, "w1", {3, 4, 1, 1}, randn(12, 0.4f, 34));
    add_ints(add_node(g, "Conv", {"x", "w0"}, {"c0"}), "pads", {1, 1, 1, 1});
    add_node(g, "Relu", {"c0"}, {"r0"});
    auto* ct = add_node(g, "ConvTranspose", {"r0", "wt", "bt"}, {"up"});
    add_ints(ct, "strides", {2, 2});
    add_ints(ct, "pads", {pad, pad, pad, pad});
    add_node(g, "Relu", {"up"}, {"r1"});
    add_node(g, "Conv", {"r1", "w1"}, {"y"});
    g->add_output()->set_name("y");
    const std::string bytes = model_bytes(m);
    const std::vector<int64_t> shape{3, 8, 6, 5};
    const auto x = randn(3 * 8 * 6 * 5, 1.f, 35);
    Engine nhwc, nchw;
    auto a = run(bytes, "nhwc", x, shape, &nhwc);
    auto b = run(bytes, "nchw", x, shape, &nchw);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-5) << i;
    EXPECT_EQ(count_ops(nhwc.graph, "ConvTranspose"), pad ? 1 : 0) << "pad " << pad;
    if (!pad) EXPECT_EQ(count_ops(nhwc.graph, "Transpose"), 2);  // the depth-to-space and the output's reformat
  }
}

// Quantized layers in a channels-last region: the Q/DQ pairs of an INT8 CBlock (per tensor) and
// an explicit per-channel Q/DQ pair between two convs let the transposes through (the per-axis
// pair with its axis renumbered to 3), so the region keeps no reformat and the convs become
// channels-last kernels; the numbers are the NCHW engine's. Rounding ties may round differently
// after the two layouts' different summation orders (which depend on the CPU's BLAS kernels).
TEST(LayoutNhwc, QuantizedLayersKeepTheRegionChannelsLast) {
  QuantizationOptions q;
  q.mode = QuantMode::Int8;
  for (const char* t : {"x", "x1", "dw", "x2", "act"}) q.amax[t] = 4.f;
  auto cm = cblock_model();
  const std::string cblock = model_bytes(cm);
  const std::vector<int64_t> shape{2, 8, 12, 10};
  const auto x = randn(2 * 8 * 12 * 10, 1.f, 23);
  Engine nhwc, nchw;
  auto a = run(cblock, "nhwc", x, shape, &nhwc, q);
  auto b = run(cblock, "nchw", x, shape, &nchw, q);
  EXPECT_EQ(count_ops(nhwc.graph, "QuantizeLinear"), 5);
  EXPECT_EQ(count_ops(nhwc.graph, "Transpose"), 0);
  EXPECT_EQ(count_ops(nhwc.graph, "Conv"), 0);
  EXPECT_EQ(count_ops(nhwc.graph, "unirt.Linear"), 4);
  ASSERT_EQ(a.size(), b.size());
  // One code that rounds the other way in x1 or x2 moves every output its 1x1 and 5x5 convs reach
  // (hundreds of elements) by a fraction of a step, so the bound is on the size of the
  // differences, not on how many there are: a step of the activations (4 / 127) is 0.2% of the
  // output's range here.
  double worst = 0, total = 0, range = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, double(std::fabs(a[i] - b[i])));
    total += std::fabs(a[i] - b[i]);
    range = std::max(range, double(std::fabs(b[i])));
  }
  std::printf("NHWC vs NCHW quantized CBlock: max abs difference %.3g, mean %.3g, output range %.3g\n", worst, total / a.size(), range);
  EXPECT_LE(worst, 0.01 * range);
  EXPECT_LE(total / a.size(), 1e-3 * range);

  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  auto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(13);
  add_input(g, "x", {"n", "4", "7", "9"});
  add_init(g, "w0", {6, 4, 3, 3}, randn(6 * 4 * 9, 0.3f, 41));
  add_init(g, "w1", {5, 6, 1, 1}, randn(30, 0.4f, 42));
  std::vector<float> sc(6);
  for (int c = 0; c < 6; ++c) sc[c] = 0.02f + 0.01f * c;
  add_init(g, "s", {6}, sc);
  add_init_q8(g, "z", {6}, {0, 0, 0, 0, 0, 0}, true);
  add_ints(add_node(g, "Conv", {"x", "w0"}, {"c0"}), "pads", {1, 1, 1, 1});
  add_int(add_node(g, "QuantizeLinear", {"c0", "s", "z"}, {"q"}), "axis", 1);
  add_int(add_node(g, "DequantizeLinear", {"q", "s", "z"}, {"d"}), "axis", 1);
  add_node(g, "Conv", {"d", "w1"}, {"y"});
  g->add_output()->set_name("y");
  const std::vector<int64_t> s2{3, 4, 7, 9};
  const auto x2 = randn(3 * 4 * 7 * 9, 1.f, 43);
  const std::string explicit_qdq = model_bytes(m);
  a = run(explicit_qdq, "nhwc", x2, s2, &nhwc);
  b = run(explicit_qdq, "nchw", x2, s2, &nchw);
  EXPECT_EQ(count_ops(nhwc.graph, "Transpose"), 1);  // the output's reformat
  for (const auto& n : nhwc.graph.nodes)
    if (n.op_type == "QuantizeLinear" || n.op_type == "DequantizeLinear") EXPECT_EQ(n.attr_i("axis", 1), 3) << n.name;
  ASSERT_EQ(a.size(), b.size());
  size_t off = 0;
  for (size_t i = 0; i < a.size(); ++i) off += std::fabs(a[i] - b[i]) > 1e-4f * std::max(1.f, std::fabs(b[i]));
  EXPECT_LE(off, a.size() / 100) << off << " of " << a.size() << " elements differ";
}
