#include <gtest/gtest.h>

#include <cmath>

#include "runtime/session.h"
#include "runtime_test_util.h"

using namespace unirt;
using namespace unirt::testing;

namespace {

HostTensor make_x(int64_t batch, int64_t width) {
  HostTensor x;
  x.name = "x";
  x.shape = {batch, width};
  x.bytes.resize(static_cast<size_t>(batch * width) * 4);
  for (int64_t i = 0; i < batch * width; ++i) x.as<float>()[i] = static_cast<float>((i * 7) % 11) / 5.f - 1.f;
  return x;
}

std::vector<float> mlp_reference(const HostTensor& x) {
  const int64_t batch = x.shape[0];
  std::vector<float> y(static_cast<size_t>(batch) * 8);
  for (int64_t r = 0; r < batch; ++r)
    for (int j = 0; j < 8; ++j) {
      double acc = mlp_b(j);
      for (int i = 0; i < 16; ++i) acc += x.as<float>()[r * 16 + i] * mlp_w(i, j);
      y[r * 8 + j] = static_cast<float>(std::max(0.0, acc));
    }
  return y;
}

void expect_mlp(const HostTensor& x, const float* y) {
  const auto ref = mlp_reference(x);
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(y[i], ref[i], 1e-5) << i;
}

}  // namespace

TEST(Session, RunsMatMulAddReluWithDynamicBatch) {
  auto e = std::make_shared<Engine>(mlp_engine());
  Session s(e, make_cpu_backend(1));
  EXPECT_EQ(s.weight_bytes(), (16 * 8 + 8) * 4u);
  for (int64_t b : {1, 5, 2, 5}) {  // a shape seen before reuses its cached plan
    HostTensor x = make_x(b, 16);
    auto out = s.run({x});
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].name, "y");
    EXPECT_EQ(out[0].dtype, DType::Float32);
    ASSERT_EQ(out[0].shape, (std::vector<int64_t>{b, 8}));
    expect_mlp(x, out[0].as<float>());
  }
}

TEST(Session, ChainAndDiamondMatchDirectComputation) {
  {
    auto e = std::make_shared<Engine>(chain_engine());
    Session s(e, make_cpu_backend(2));
    HostTensor x = make_x(3, 16);
    auto out = s.run({x});
    for (int i = 0; i < 48; ++i) EXPECT_FLOAT_EQ(out[0].as<float>()[i], std::fabs(x.as<float>()[i]));
    EXPECT_GT(s.peak_activation_bytes(), 0u);
    EXPECT_LT(s.peak_activation_bytes(), s.naive_activation_bytes());
  }
  {
    auto e = std::make_shared<Engine>(diamond_engine());
    Session s(e, make_cpu_backend(1));
    HostTensor x = make_x(4, 32);
    auto out = s.run({x});
    for (int i = 0; i < 4 * 32; ++i) {
      const float v = x.as<float>()[i];
      const float a = std::max(0.f, v);
      const float want = std::tanh(std::fabs(a) + 1.f / (1.f + std::exp(v))) * a;
      EXPECT_NEAR(out[0].as<float>()[i], want, 1e-5) << i;
    }
  }
}

TEST(Session, ExecuteOnCallerBuffersAndOutputShapes) {
  auto e = std::make_shared<Engine>(mlp_engine());
  Session s(e, make_cpu_backend(1));
  EXPECT_EQ(s.output_shapes({{6, 16}}), (std::vector<std::vector<int64_t>>{{6, 8}}));
  HostTensor x = make_x(6, 16);
  std::vector<float> y(6 * 8, -1.f);
  TensorView in, out;
  in.data = x.bytes.data();
  in.dtype = DType::Float32;
  in.shape = x.shape;
  out.data = y.data();
  out.dtype = DType::Float32;
  out.shape = {6, 8};
  for (int rep = 0; rep < 3; ++rep) {
    std::fill(y.begin(), y.end(), -1.f);
    s.execute({in}, {out});
    expect_mlp(x, y.data());
  }
  out.shape = {6, 9};
  EXPECT_THROW(s.execute({in}, {out}), Error);
  EXPECT_THROW(s.execute({in}, {}), Error);
}

TEST(Session, InputErrorsNameTheTensor) {
  ShapeProfile prof;
  prof.min["x"] = {1, 16};
  prof.max["x"] = {4, 16};
  auto e = std::make_shared<Engine>(chain_engine(prof));
  Session s(e, make_cpu_backend(1));
  auto expect_error = [&](const std::vector<HostTensor>& in, const std::string& needle) {
    try {
      s.run(in);
      FAIL() << "accepted bad input (" << needle << ")";
    } catch (const Error& err) {
      EXPECT_NE(std::string(err.what()).find(needle), std::string::npos) << err.what();
    }
  };
  HostTensor wrong_type = make_x(1, 16);
  wrong_type.dtype = DType::Int64;
  wrong_type.bytes.resize(16 * 8);
  expect_error({wrong_type}, "int64");
  HostTensor unknown = make_x(1, 16);
  unknown.name = "nope";
  expect_error({unknown}, "'nope' is not an input");
  expect_error({}, "'x' was not given");
  expect_error({make_x(5, 16)}, "max 4x16");
  expect_error({make_x(2, 8)}, "must be 16");
  HostTensor short_buf = make_x(2, 16);
  short_buf.bytes.resize(10);
  expect_error({short_buf}, "bytes");
  EXPECT_NO_THROW(s.run({make_x(4, 16)}));  // still usable after errors
}

TEST(Session, MissingKernelAndBackendMismatchAreErrors) {
  Engine bad = chain_engine();
  bad.graph.nodes[2].op_type = "NoSuchOp";
  try {
    Session s(std::make_shared<Engine>(bad), make_cpu_backend(1));
    FAIL() << "created a session without a kernel";
  } catch (const Error& err) {
    const std::string msg = err.what();
    EXPECT_NE(msg.find("no cpu kernel for op NoSuchOp at node '" + bad.graph.nodes[2].name + "'"), std::string::npos) << msg;
  }
  Engine cuda = chain_engine();
  cuda.options.backend = "cuda";
  EXPECT_THROW(Session(std::make_shared<Engine>(cuda), make_cpu_backend(1)), Error);
}

TEST(Session, ProfileLayersTimesEveryRunningNode) {
  auto e = std::make_shared<Engine>(mlp_engine());
  Session s(e, make_cpu_backend(1));
  HostTensor x = make_x(2, 16);
  auto layers = s.profile_layers({x}, 3);
  std::vector<std::string> ops;
  for (const auto& l : layers) {
    ops.push_back(l.op);
    EXPECT_GE(l.ms, 0.0);
    EXPECT_FALSE(l.node.empty());
  }
  EXPECT_EQ(ops, (std::vector<std::string>{"unirt.Linear", "Relu"}));  // MatMul + bias Add fused
  auto out = s.run({x});  // the session still runs normally afterwards
  expect_mlp(x, out[0].as<float>());
}

TEST(Session, EngineFileRunsLikeTheBuiltEngine) {
  Engine built = mlp_engine();
  const std::string path = ::testing::TempDir() + "/mlp.engine";
  save_engine(built, path);
  auto loaded = std::make_shared<Engine>(load_engine(path));
  Session s(loaded, make_cpu_backend(1));
  HostTensor x = make_x(3, 16);
  auto out = s.run({x});
  expect_mlp(x, out[0].as<float>());
}
