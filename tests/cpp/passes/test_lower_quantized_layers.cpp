// lower_quantized_layers: Q -> DQ -> unirt.Linear chains become unirt.QuantizedLinear (the fc1's
// output Q folded in), checked by structure and by running both graphs on the CPU: the lowered
// graph (integer GEMMs, tanh GELU) against the Q/DQ graph run as written in float32.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

#include "onnx/importer.h"
#include "passes/fusions.h"
#include "passes/pipeline.h"
#include "runtime/engine.h"
#include "runtime/session.h"
#include "../test_graphs.h"

using namespace unirt;
using namespace unirt::testing;

namespace {

Engine lowered_engine(const std::string& bytes, bool nhwc = false) {
  Engine e;
  e.graph = import_onnx_bytes(bytes, "m");
  PipelineOptions po;
  po.evaluate = cpu_constant_evaluator();
  po.quantized_kernels = true;
  po.nhwc = nhwc;
  e.passes = run_passes(e.graph, po);
  e.graph.compact();
  return e;
}

std::vector<float> run_on_cpu(const Engine& e, const std::vector<float>& x, std::vector<int64_t> shape) {
  Session s(std::make_shared<Engine>(e), make_cpu_backend(1));
  HostTensor t;
  t.name = "x";
  t.shape = shape;
  t.bytes.resize(x.size() * 4);
  std::memcpy(t.bytes.data(), x.data(), t.bytes.size());
  auto out = s.run({t});
  return std::vector<float>(out[0].as<float>(), out[0].as<float>() + out[0].numel());
}

const Node* find_node(const Graph& g, const std::string& name) {
  for (const auto& n : g.nodes)
    if (n.name == name) return &n;
  return nullptr;
}

const Node* find_op_with(const Graph& g, const std::string& op, const std::string& attr) {
  for (const auto& n : g.nodes)
    if (n.op_type == op && n.has_attr(attr)) return &n;
  return nullptr;
}

struct Diff {
  double worst = 0, mean = 0;
};
Diff difference(const std::vector<float>& a, const std::vector<float>& b) {
  Diff d;
  for (size_t i = 0; i < a.size(); ++i) {
    const double e = std::fabs(double(a[i]) - b[i]);
    d.worst = std::max(d.worst, e);
    d.mean += e / a.size();
  }
  return d;
}

}  // namespace

TEST(LowerQuantizedLayers, QdqMlpBecomesTwoEightBitGemmsAgreeingWithTheFloatSimulation) {
  for (bool fp8 : {false, true}) {
    SCOPED_TRACE(fp8 ? "float8 e4m3fn" : "int8");
    const float sx = fp8 ? 3.f / 448 : 3.f / 127, sh = fp8 ? 2.f / 448 : 2.f / 127;
    onnx::ModelProto m = quantized_mlp_model(32, 64, fp8, sx, sh);
    const std::string bytes = model_bytes(m, 19);
    const Engine lo = lowered_engine(bytes);
    EXPECT_EQ(count_ops(lo.graph, "unirt.QuantizedLinear"), 2);
    EXPECT_EQ(count_ops(lo.graph, "DequantizeLinear"), 0);
    EXPECT_EQ(count_ops(lo.graph, "QuantizeLinear"), 1);  // x's: the fc1 epilogue writes fc2's input
    EXPECT_EQ(count_ops(lo.graph, "unirt.Linear"), 0);
    const Node* fc1 = find_node(lo.graph, "fc1");
    const Node* fc2 = find_node(lo.graph, "fc2");
    ASSERT_TRUE(fc1 && fc2);
    EXPECT_EQ(fc1->attr_s("activation", ""), "gelu");
    EXPECT_FLOAT_EQ(fc1->attr_f("out_scale", 0.f), sh);
    EXPECT_EQ(lo.graph.value(fc1->outputs[0]).dtype, fp8 ? DType::Float8E4M3FN : DType::Int8);
    EXPECT_TRUE(fc2->has_input(4)) << "the residual rides in fc2's epilogue";
    const auto& w = lo.graph.value(fc1->inputs[1]);
    ASSERT_TRUE(w.data);
    EXPECT_EQ(w.data->shape, (std::vector<int64_t>{64, 32}));  // [N, K]

    // An engine file keeps the lowered ops and their attributes.
    const std::string path = ::testing::TempDir() + "/lowered_mlp.engine";
    save_engine(lo, path);
    const Engine back = load_engine(path);
    EXPECT_EQ(count_ops(back.graph, "unirt.QuantizedLinear"), 2);

    BuildOptions o;  // the reference: CPU FP32, the Q/DQ nodes as written
    const Engine sim = build_engine(import_onnx_bytes(bytes, "m"), o);
    EXPECT_EQ(count_ops(sim.graph, "unirt.QuantizedLinear"), 0);
    const std::vector<int64_t> shape{2, 37, 32};
    auto x = randn(2 * 37 * 32, 1.f, 7);
    const auto a = run_on_cpu(lo, x, shape), b = run_on_cpu(sim, x, shape);
    ASSERT_EQ(a.size(), b.size());
    // The two differ by GELU's tanh form (< 1e-3) and the hidden codes it moves across a rounding
    // boundary (one step of sh times a row of W2 each); everything else is exact.
    double worst = 0, mean = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      const double d = std::fabs(double(a[i]) - b[i]);
      worst = std::max(worst, d);
      mean += d / a.size();
    }
    EXPECT_LT(worst, 0.05) << "mean " << mean;
    EXPECT_LT(mean, 2e-3);
  }
}

TEST(LowerQuantizedLayers, NormReadOnlyByAQuantizeWritesTheCodes) {
  for (bool fp8 : {false, true}) {
    SCOPED_TRACE(fp8 ? "float8 e4m3fn" : "int8");
    onnx::ModelProto m = quantized_norm_linear_model(64, 96, fp8, fp8 ? 4.f / 448 : 4.f / 127);
    const std::string bytes = model_bytes(m, 19);
    const Engine lo = lowered_engine(bytes);
    EXPECT_EQ(count_ops(lo.graph, "unirt.LayerNormQuantize"), 1);
    EXPECT_EQ(count_ops(lo.graph, "QuantizeLinear"), 0);
    const std::string path = ::testing::TempDir() + "/lowered_norm.engine";
    save_engine(lo, path);
    EXPECT_EQ(count_ops(load_engine(path).graph, "unirt.LayerNormQuantize"), 1);
    EXPECT_EQ(count_ops(lo.graph, "unirt.QuantizedLinear"), 1);
    const Engine sim = build_engine(import_onnx_bytes(bytes, "m"), BuildOptions{});
    const std::vector<int64_t> shape{3, 5, 64};
    auto x = randn(3 * 5 * 64, 2.f, 9);
    const auto a = run_on_cpu(lo, x, shape), b = run_on_cpu(sim, x, shape);
    ASSERT_EQ(a.size(), b.size());
    // The same codes on both sides (the norm's statistics are computed the same way), then an
    // exact integer GEMM against float32 sums of the same products.
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(double(a[i]) - b[i]) / std::max(1.0, std::fabs(double(b[i]))));
    EXPECT_LT(worst, 1e-4);
  }
}

TEST(LowerQuantizedLayers, WeightsOffTheGridAndAsymmetricScalesStayInFloat) {
  onnx::ModelProto m = quantized_mlp_model(32, 64, false, 0.02f, 0.02f);
  auto* g = m.mutable_graph();
  for (auto& t : *g->mutable_initializer()) {
    if (t.name() == "w2") t.set_float_data(0, t.float_data(0) * 1.001f);  // fc2's weight leaves its grid
    if (t.name() == "zx") t.set_int32_data(0, 3);                         // x's zero point is not 0
  }
  const Engine lo = lowered_engine(model_bytes(m, 19));
  // fc1 reads an asymmetric DQ and fc2 an off-grid weight: both stay unirt.Linear, and fc1's
  // GELU output keeps its Q/DQ pair.
  EXPECT_EQ(count_ops(lo.graph, "unirt.QuantizedLinear"), 0);
  EXPECT_EQ(count_ops(lo.graph, "unirt.Linear"), 2);
  EXPECT_EQ(count_ops(lo.graph, "DequantizeLinear"), 2);
}

TEST(LowerQuantizedLayers, TheKernelsRefuseWhatTheyCannotRun) {
  // A damaged engine: an 8-bit output with a residual, or with no out_scale.
  onnx::ModelProto m = quantized_mlp_model(32, 64, false, 0.02f, 0.02f);
  Engine lo = lowered_engine(model_bytes(m, 19));
  for (auto& n : lo.graph.nodes)
    if (n.name == "fc1") n.attrs.erase("out_scale");
  EXPECT_THROW(
      {
        try {
          run_on_cpu(lo, randn(32, 1.f, 3), {1, 1, 32});
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("out_scale"), std::string::npos) << e.what();
          throw;
        }
      },
      Error);
}

TEST(LowerQuantizedLayers, ConvsAndResidualGemmsWriteTheCodesTheirQuantizeWouldWrite) {
  for (bool fp8 : {false, true}) {
    SCOPED_TRACE(fp8 ? "float8 e4m3fn" : "int8");
    onnx::ModelProto m = quantized_token_mixer_model(32, fp8, fp8 ? 4.f / 448 : 4.f / 127, fp8 ? 3.f / 448 : 3.f / 127);
    const std::string bytes = model_bytes(m, 19);
    const Engine lo = lowered_engine(bytes, true);
    // The three quantizes fused: the pos conv (x1 also feeds the residual) writes float and codes,
    // the 5x5 conv only codes, conv2's residual epilogue float and codes.
    EXPECT_EQ(count_ops(lo.graph, "QuantizeLinear"), 0);
    EXPECT_EQ(count_ops(lo.graph, "DequantizeLinear"), 0);
    EXPECT_EQ(count_ops(lo.graph, "unirt.QuantizedLinear"), 3);
    const Node* conv2 = find_node(lo.graph, "conv2");
    ASSERT_TRUE(conv2);
    EXPECT_EQ(conv2->outputs.size(), 2u);
    int dual = 0, codes_only = 0;
    const DType t = fp8 ? DType::Float8E4M3FN : DType::Int8;
    for (const auto& n : lo.graph.nodes) {
      if (n.op_type != "unirt.ConvNHWC" || !n.has_attr("q_scale")) continue;
      if (n.outputs.size() == 2) {
        ++dual;
        EXPECT_EQ(lo.graph.value(n.outputs[0]).dtype, DType::Float32);
        EXPECT_EQ(lo.graph.value(n.outputs[1]).dtype, t);
      } else {
        ++codes_only;
        EXPECT_EQ(lo.graph.value(n.outputs[0]).dtype, t);
      }
    }
    EXPECT_EQ(dual, 1);
    EXPECT_EQ(codes_only, 1);
    const std::string path = ::testing::TempDir() + "/lowered_mixer.engine";
    save_engine(lo, path);
    const Engine back = load_engine(path);
    EXPECT_EQ(count_ops(back.graph, "QuantizeLinear"), 0);

    const Engine sim = build_engine(import_onnx_bytes(bytes, "m"), BuildOptions{});
    const std::vector<int64_t> shape{2, 32, 18, 22};
    const auto x = randn(2 * 32 * 18 * 22, 1.f, 11);
    const auto a = run_on_cpu(lo, x, shape), b = run_on_cpu(sim, x, shape);
    ASSERT_EQ(a.size(), b.size());
    // The same codes but where the channels-last conv's float32 sum lands on the other side of a
    // rounding boundary (one step of the scale times a weight row).
    const Diff d = difference(a, b);
    std::printf("token mixer %s, lowered vs Q/DQ graph: max abs %.3e, mean abs %.3e\n", fp8 ? "fp8" : "int8", d.worst, d.mean);
    EXPECT_LT(d.worst, 0.05) << "mean " << d.mean;
    EXPECT_LT(d.mean, 1e-3);
  }
}

TEST(LowerQuantizedLayers, AQuantizedOutputNeedsADepthwiseConv) {
  onnx::ModelProto m = quantized_token_mixer_model(16, false, 0.03f, 0.03f);
  Engine lo = lowered_engine(model_bytes(m, 19), true);
  const Node* dw = find_op_with(lo.graph, "unirt.ConvNHWC", "q_scale");
  ASSERT_TRUE(dw);
  for (auto& n : lo.graph.nodes)
    if (&n == dw) n.attrs["q_scale"] = -1.f;  // a damaged engine file
  EXPECT_THROW(
      {
        try {
          run_on_cpu(lo, randn(16 * 8 * 8, 1.f, 3), {1, 16, 8, 8});
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("q_scale"), std::string::npos) << e.what();
          throw;
        }
      },
      Error);
}

TEST(LowerQuantizedLayers, AttentionWritesTheProjectionsCodes) {
  for (bool fp8 : {false, true}) {
    SCOPED_TRACE(fp8 ? "float8 e4m3fn" : "int8");
    onnx::ModelProto m = quantized_attention_model(2, 32, fp8, fp8 ? 1.f / 448 : 1.f / 127);
    const std::string bytes = model_bytes(m, 19);
    const Engine lo = lowered_engine(bytes);
    EXPECT_EQ(count_ops(lo.graph, "QuantizeLinear"), 0);
    EXPECT_EQ(count_ops(lo.graph, "unirt.QuantizedLinear"), 1);
    const Node* attn = find_op_with(lo.graph, "unirt.Attention", "q_scale");
    ASSERT_TRUE(attn);
    EXPECT_EQ(lo.graph.value(attn->outputs[0]).dtype, fp8 ? DType::Float8E4M3FN : DType::Int8);
    const Engine sim = build_engine(import_onnx_bytes(bytes, "m"), BuildOptions{});
    const std::vector<int64_t> shape{2, 37, 3 * 64};
    const auto x = randn(2 * 37 * 3 * 64, 1.f, 13);
    const Diff d = difference(run_on_cpu(lo, x, shape), run_on_cpu(sim, x, shape));
    std::printf("attention -> codes %s, lowered vs Q/DQ graph: max abs %.3e, mean abs %.3e\n", fp8 ? "fp8" : "int8", d.worst, d.mean);
    EXPECT_LT(d.worst, 0.05) << "mean " << d.mean;
    EXPECT_LT(d.mean, 1e-3);
  }
}

// NVIDIA modelopt's ONNX quantizer (tests/data/modelopt, scripts/make_modelopt_fixtures.py): two
// pre-norm MLP blocks with weight Q -> DQ pairs (per channel, axis 1), activation Q/DQ on every
// MatMul input and on the residual stream. Every MatMul becomes an 8-bit GEMM, both norms write
// their codes, and on the CPU the lowered graph agrees with the Q/DQ graph as written.
TEST(LowerQuantizedLayers, ModeloptQdqGraphsLowerToTheEightBitKernels) {
  for (const char* mode : {"int8", "fp8"}) {
    SCOPED_TRACE(mode);
    std::ifstream f(std::string(UNIRT_SOURCE_DIR) + "/tests/data/modelopt/mlp_" + mode + ".onnx", std::ios::binary);
    ASSERT_TRUE(f) << "tests/data/modelopt/mlp_" << mode << ".onnx";
    const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const Engine lo = lowered_engine(bytes);
    EXPECT_EQ(count_ops(lo.graph, "unirt.QuantizedLinear"), 4);
    EXPECT_EQ(count_ops(lo.graph, "unirt.LayerNormQuantize"), 2);
    EXPECT_EQ(count_ops(lo.graph, "unirt.Linear"), 0);
    const Engine sim = build_engine(import_onnx_bytes(bytes, "m"), BuildOptions{});
    const std::vector<int64_t> shape{3, 49, 64};
    const auto x = randn(3 * 49 * 64, 1.f, 17);
    const Diff d = difference(run_on_cpu(lo, x, shape), run_on_cpu(sim, x, shape));
    std::printf("modelopt %s MLP, lowered vs Q/DQ graph: max abs %.3e, mean abs %.3e\n", mode, d.worst, d.mean);
    // GELU's tanh form and the hidden codes it moves across a rounding boundary, as above; an FP8
    // step near the top of a column's range is 1/16 of the value (measured: 1.5e-2 int8, 4.9e-2
    // fp8, on outputs up to 3.6).
    EXPECT_LT(d.worst, 0.1) << "mean " << d.mean;
    EXPECT_LT(d.mean, 2e-3);
  }
}
