// fuse_quantized_mlp: the two 8-bit GEMMs of a lowered MLP (fc1 with GELU and the hidden
// requantize, fc2 with the residual) become one unirt.QuantizedMlp, which computes exactly what the
// pair does: checked by structure and by running both graphs on the CPU, bit for bit.
#include <gtest/gtest.h>

#include <cstring>

#include "onnx/importer.h"
#include "passes/fusions.h"
#include "passes/pipeline.h"
#include "passes/shape_inference.h"
#include "runtime/engine.h"
#include "runtime/session.h"
#include "../test_graphs.h"

using namespace unirt;
using namespace unirt::testing;

namespace {

// The pipeline up to the lowering (float32: CPU-runnable), then the fusion alone on a copy.
Engine lowered(onnx::ModelProto m) {
  Engine e;
  e.graph = import_onnx_bytes(model_bytes(m, 19), "m");
  PipelineOptions po;
  po.evaluate = cpu_constant_evaluator();
  po.quantized_kernels = true;
  e.passes = run_passes(e.graph, po);
  e.graph.compact();
  return e;
}

HostTensor run_on_cpu(const Engine& e, const std::vector<float>& x, std::vector<int64_t> shape) {
  Session s(std::make_shared<Engine>(e), make_cpu_backend(2));
  HostTensor t;
  t.name = "x";
  t.shape = shape;
  t.bytes.resize(x.size() * 4);
  std::memcpy(t.bytes.data(), x.data(), t.bytes.size());
  return s.run({t})[0];
}

}  // namespace

TEST(FuseQuantizedMlp, TheTwoEightBitGemmsBecomeOneOpComputingTheSame) {
  struct Case {
    int64_t c, hidden;
  };
  for (bool fp8 : {false, true})
    for (const Case& k : {Case{64, 256}, Case{128, 512}, Case{32, 96}}) {
      SCOPED_TRACE(std::string(fp8 ? "fp8" : "int8") + " c=" + std::to_string(k.c) + " hidden=" + std::to_string(k.hidden));
      const float sx = fp8 ? 3.f / 448 : 3.f / 127, sh = fp8 ? 2.f / 448 : 2.f / 127;
      const Engine pair = lowered(quantized_mlp_model(k.c, k.hidden, fp8, sx, sh));
      ASSERT_EQ(count_ops(pair.graph, "unirt.QuantizedLinear"), 2);
      Engine fused = pair;
      EXPECT_EQ(fuse_quantized_mlp(fused.graph), 1);
      eliminate_dead_code(fused.graph);
      infer_shapes(fused.graph);
      fused.graph.compact();
      EXPECT_EQ(count_ops(fused.graph, "unirt.QuantizedLinear"), 0);
      ASSERT_EQ(count_ops(fused.graph, "unirt.QuantizedMlp"), 1);
      for (const Node& n : fused.graph.nodes)
        if (n.op_type == "unirt.QuantizedMlp") {
          EXPECT_FLOAT_EQ(n.attr_f("hidden_scale", 0.f), sh);
          EXPECT_EQ(n.inputs.size(), 8u) << "X, W1, alpha1, bias1, W2, alpha2, bias2 and the residual";
          EXPECT_EQ(fused.graph.value(n.inputs[1]).data->shape, (std::vector<int64_t>{k.hidden, k.c}));
          EXPECT_EQ(fused.graph.value(n.inputs[4]).data->shape, (std::vector<int64_t>{k.c, k.hidden}));
        }
      // An engine file keeps the fused op.
      const std::string path = ::testing::TempDir() + "/fused_qmlp.engine";
      save_engine(fused, path);
      EXPECT_EQ(count_ops(load_engine(path).graph, "unirt.QuantizedMlp"), 1);

      const std::vector<int64_t> shape{3, 41, k.c};
      const auto x = randn(3 * 41 * k.c, 1.f, 11);
      const HostTensor a = run_on_cpu(pair, x, shape), b = run_on_cpu(fused, x, shape);
      ASSERT_EQ(a.shape, b.shape);
      EXPECT_EQ(a.bytes, b.bytes) << "the fused op is the pair's arithmetic, not an approximation of it";
    }
}

TEST(FuseQuantizedMlp, WideMlpsKeepTwoGemms) {
  // The SABlocks' 320 -> 1280 -> 320: W1 and W2 would not fit in one multiprocessor's shared memory.
  Engine e = lowered(quantized_mlp_model(320, 1280, false, 3.f / 127, 2.f / 127));
  ASSERT_EQ(count_ops(e.graph, "unirt.QuantizedLinear"), 2);
  EXPECT_EQ(fuse_quantized_mlp(e.graph), 0);
  EXPECT_EQ(count_ops(e.graph, "unirt.QuantizedLinear"), 2);
}

TEST(FuseQuantizedMlp, ADamagedNodeIsRefusedByName) {
  Engine e = lowered(quantized_mlp_model(64, 256, false, 3.f / 127, 2.f / 127));
  ASSERT_EQ(fuse_quantized_mlp(e.graph), 1);
  eliminate_dead_code(e.graph);
  for (Node& n : e.graph.nodes)
    if (n.op_type == "unirt.QuantizedMlp") n.attrs["hidden_scale"] = 0.f;
  try {
    infer_shapes(e.graph);
    FAIL() << "a zero hidden_scale was accepted";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("hidden_scale"), std::string::npos) << err.what();
    EXPECT_NE(std::string(err.what()).find("fc1"), std::string::npos) << err.what();
  }
}
