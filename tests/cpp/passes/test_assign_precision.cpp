#include <gtest/gtest.h>

#include "onnx/importer.h"
#include "runtime/engine.h"
#include "test_graphs.h"

using namespace unirt;
using namespace unirt::testing;

TEST(AssignPrecision, Fp16KeepsFloat32BoundaryWithCasts) {
  auto m = window_pad_model();
  BuildOptions o;
  o.backend = "cuda";  // building needs no GPU
  o.precision = Precision::FP16;
  Engine e = build_engine(import_onnx_bytes(model_bytes(m), "w"), o);
  const Graph& g = e.graph;
  EXPECT_EQ(g.value(g.inputs[0]).dtype, DType::Float32);
  EXPECT_EQ(g.value(g.outputs[0]).dtype, DType::Float32);
  int casts = 0;
  for (const auto& n : g.nodes) {
    if (n.op_type == "Cast") ++casts;
    if (n.op_type == "Conv") {
      EXPECT_EQ(g.value(n.inputs[0]).dtype, DType::Float16);
      EXPECT_EQ(g.value(n.inputs[1]).dtype, DType::Float16);  // weights converted once, at build time
      EXPECT_EQ(g.value(n.inputs[1]).data->bytes.size(), 4u * 9 * 2);
    }
  }
  EXPECT_EQ(casts, 2);
  bool reported = false;
  for (const auto& p : e.passes) reported |= p.pass == "assign_precision" && p.changes > 0;
  EXPECT_TRUE(reported);
}

TEST(AssignPrecision, CpuBackendRefusesFp16) {
  auto m = window_pad_model();
  BuildOptions o;
  o.precision = Precision::FP16;
  EXPECT_THROW(build_engine(import_onnx_bytes(model_bytes(m), "w"), o), Error);
}
