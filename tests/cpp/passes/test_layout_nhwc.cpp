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
                       Engine* keep) {
  BuildOptions o;
  o.layout = layout;
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

int count(const Engine& e, const std::string& op) {
  int n = 0;
  for (const auto& node : e.graph.nodes) n += node.op_type == op;
  return n;
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
    EXPECT_EQ(count(nhwc, "Transpose"), 0);
    EXPECT_EQ(count(nhwc, "Gelu"), 0);  // in the fc1 GEMM's epilogue
    EXPECT_EQ(count(nhwc, "Conv"), 0);
    EXPECT_EQ(count(nhwc, "BatchNormalization"), 0);
    EXPECT_EQ(count(nhwc, "unirt.ConvNHWC"), 3);  // patch, pos, dw5x5
    EXPECT_EQ(count(nhwc, "unirt.Linear"), 4);
    EXPECT_EQ(count(nhwc, "Add"), 0);  // every residual in an epilogue
  }
}
