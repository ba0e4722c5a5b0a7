// Hostile inputs: every case of ../shared/hostile-inputs/ (which were engine-format-1 files and
// ONNX models that crashed unirt or made it print garbage) re-created here for the current engine
// format, plus the attribute and size classes behind them. Each must end in an Error that says what
// is wrong, or (where the input is valid) in the right answer; never a signal.
#include <gtest/gtest.h>

#include <cctype>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <limits>

#include "runtime/planner.h"
#include "runtime/session.h"
#include "runtime_test_util.h"

using namespace unirt;
using namespace unirt::testing;

namespace {

// x [1, 3, H, W] -> Conv (8 filters, 3x3, pad 1) -> Relu -> y; nodes as imported (no fusion).
Engine conv_relu() {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "x", {"1", "3", "H", "W"});
  add_conv(g, "x", "c", 3, 8, 3, 1, 1, 1);
  add_node(g, "Relu", {"c"}, {"y"}, "relu");
  g->add_output()->set_name("y");
  BuildOptions o;
  o.fuse = false;
  return build_engine(import_onnx_bytes(model_bytes(m), "conv_relu"), o);
}

// Saves the (damaged) engine and loads it back; returns the error, "" if it loaded.
std::string load_error(const Engine& e) {
  static int saved = 0;
  // One file per test: ctest runs the tests of this binary in parallel processes.
  const std::string path = ::testing::TempDir() + "/hostile_" + ::testing::UnitTest::GetInstance()->current_test_info()->name() +
                           "_" + std::to_string(++saved) + ".engine";
  save_engine(e, path);
  const std::string msg = error_of([&] { load_engine(path); });
  std::remove(path.c_str());
  return msg;
}

Node& node_named(Graph& g, const std::string& op) {
  for (auto& n : g.nodes)
    if (n.op_type == op) return n;
  throw Error("no " + op);
}

HostTensor image(int64_t h, int64_t w) {
  HostTensor t;
  t.name = "x";
  t.shape = {1, 3, h, w};
  t.bytes.resize(static_cast<size_t>(t.numel()) * 4);
  for (int64_t i = 0; i < t.numel(); ++i) t.as<float>()[i] = static_cast<float>((i * 7) % 13) - 6.f;
  return t;
}

#define EXPECT_ERROR_HAS(msg, needle)                                                    \
  do {                                                                                   \
    const std::string m_ = (msg);                                                        \
    EXPECT_FALSE(m_.empty()) << "accepted, expected an error containing '" << (needle) << "'"; \
    EXPECT_NE(m_.find(needle), std::string::npos) << m_;                                 \
  } while (0)

}  // namespace

TEST(HostileEngines, CleanEngineLoadsAndRuns) {
  const Engine e = conv_relu();
  EXPECT_EQ(load_error(e), "");
}

TEST(HostileEngines, ConvStridesZero) {
  Engine e = conv_relu();
  node_named(e.graph, "Conv").attrs["strides"] = std::vector<int64_t>{0, 0};
  EXPECT_ERROR_HAS(load_error(e), "strides value 0");
}

TEST(HostileEngines, NodeArityNotAsItsOpNeeds) {
  {
    Engine e = conv_relu();
    node_named(e.graph, "Conv").inputs.resize(1);  // eng_conv_one_input
    EXPECT_ERROR_HAS(load_error(e), "inputs, expected 2..3");
  }
  {
    Engine e = conv_relu();
    Node& r = node_named(e.graph, "Relu");  // eng_relu_as_conv_one_input
    r.op_type = "Conv";
    EXPECT_ERROR_HAS(load_error(e), "inputs, expected 2..3");
  }
  {
    Engine e = conv_relu();
    Node& c = node_named(e.graph, "Conv");  // eng_conv_no_io
    c.inputs.clear();
    c.outputs.clear();
    EXPECT_ERROR_HAS(load_error(e), "inputs, expected");
  }
  {
    Engine e = conv_relu();
    node_named(e.graph, "Relu").op_type = "MatMul";  // eng_relu_as_matmul_one_input
    EXPECT_ERROR_HAS(load_error(e), "inputs, expected 2");
  }
}

TEST(HostileEngines, NodeOutputsThatAreNotFreshValues) {
  {
    Engine e = conv_relu();
    Node& c = node_named(e.graph, "Conv");  // eng_conv_writes_weight
    c.outputs[0] = c.inputs[1];
    EXPECT_ERROR_HAS(load_error(e), "which is a constant");
  }
  {
    Engine e = conv_relu();
    node_named(e.graph, "Conv").outputs[0] = -1;  // eng_node_output_minus1
    EXPECT_ERROR_HAS(load_error(e), "required output 0 is missing");
  }
  {
    Engine e = conv_relu();
    node_named(e.graph, "Relu").outputs[0] = e.graph.inputs[0];  // eng_node_writes_value4 (the graph input)
    EXPECT_ERROR_HAS(load_error(e), "which is a graph input");
  }
}

TEST(HostileEngines, NodesOutOfOrderOrReadingTheirOwnOutput) {
  {
    Engine e = conv_relu();  // eng_nodes_swapped
    std::swap(e.graph.nodes[0], e.graph.nodes[1]);
    e.graph.relink();
    EXPECT_ERROR_HAS(load_error(e), "before any node writes it");
  }
  {
    Engine e = conv_relu();  // eng_relu_self_loop
    Node& r = node_named(e.graph, "Relu");
    r.inputs[0] = r.outputs[0];
    EXPECT_ERROR_HAS(load_error(e), "before any node writes it");
  }
}

TEST(HostileEngines, ConstantsThatDisagreeWithTheirDeclaredShape) {
  {
    Engine e = conv_relu();  // eng_matmul_w_16x4: data of another shape than declared
    Value& w = e.graph.value(node_named(e.graph, "Conv").inputs[1]);
    auto d = std::make_shared<TensorData>(*w.data);
    d->shape = {4, 3, 3, 3};
    d->bytes.resize(4 * 27 * 4);
    w.data = d;
    EXPECT_ERROR_HAS(load_error(e), "is declared [8,3,3,3] but holds 4x3x3x3");
  }
  {
    Engine e = conv_relu();  // eng_pad_bitflip_pads_shape: the declared shape alone is damaged
    Value& w = e.graph.value(node_named(e.graph, "Conv").inputs[1]);
    w.shape = {Dim(131080)};
    EXPECT_ERROR_HAS(load_error(e), "is declared [131080]");
  }
  {
    Engine e = conv_relu();  // eng_W_numel_wraps: [2^62, 4] holding 0 bytes
    Value& w = e.graph.value(node_named(e.graph, "Conv").inputs[1]);
    auto d = std::make_shared<TensorData>(*w.data);
    d->shape = {int64_t{1} << 62, 4};
    d->bytes.clear();
    w.data = d;
    EXPECT_ERROR_HAS(load_error(e), "corrupted engine file");
  }
}

// Header numbers of the wrong kind (fuzzing found a float where an integer belongs: nlohmann's
// conversion is undefined out of range) are refused, naming the field.
TEST(HostileEngines, HeaderNumbersOfTheWrongKind) {
  const std::string path = ::testing::TempDir() + "/header_numbers.engine";
  save_engine(conv_relu(), path);
  std::string file;
  {
    std::ifstream f(path, std::ios::binary);
    file.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  std::remove(path.c_str());
  const std::string payload = engine_payload(file);
  // Same length, so the length-prefixed header stays well formed: only the value changes.
  auto with = [&](const std::string& key, const std::string& value) {
    std::string p = payload;
    const size_t at = p.find("\"" + key + "\":");
    EXPECT_NE(at, std::string::npos) << key;
    size_t v = at + key.size() + 3, end = v;
    while (end < p.size() && (std::isdigit(static_cast<unsigned char>(p[end])) || p[end] == '-')) ++end;
    std::string repl = value;
    if (repl.size() > end - v) return std::string();
    repl.resize(end - v, ' ');
    p.replace(v, end - v, repl);
    return error_of([&] { load_engine_bytes(frame_engine_payload(p), "damaged header"); });
  };
  EXPECT_ERROR_HAS(with("created", "3.3e27"), "created is 3.3e+27, expected an integer");
  EXPECT_EQ(with("created", "12345"), "") << "an integer in range still loads";
}

TEST(HostileEngines, ShapeValueOnAnActivationIsRecomputedNotTrusted) {
  // eng_sym_value_on_c: a shape value planted on the conv output. Loading recomputes every shape
  // value, so the engine runs and gives the clean engine's answer.
  const Engine clean = conv_relu();
  Engine e = clean;
  const int c = node_named(e.graph, "Conv").outputs[0];
  e.graph.value(c).sym_value = std::vector<Dim>{Dim(1), Dim(2)};
  const std::string path = ::testing::TempDir() + "/symc.engine";
  save_engine(e, path);
  auto loaded = std::make_shared<Engine>(load_engine(path));
  std::remove(path.c_str());
  EXPECT_FALSE(loaded->graph.value(c).sym_value.has_value());
  Session a(std::make_shared<Engine>(clean), make_cpu_backend(1)), b(loaded, make_cpu_backend(1));
  EXPECT_EQ(a.run({image(8, 8)})[0].bytes, b.run({image(8, 8)})[0].bytes);
}

TEST(HostileEngines, DimensionsBeyondTheFileLimitAreRefusedWhenSaving) {
  Engine e = conv_relu();
  e.graph.value(e.graph.outputs[0]).shape[0] = Dim(int64_t{1} << 41);
  const std::string msg = error_of([&] { save_engine(e, ::testing::TempDir() + "/big.engine"); });
  EXPECT_ERROR_HAS(msg, "beyond +-2^40");
}

TEST(HostileSizes, ElementCountsThatOverflowAreErrors) {
  const Engine e = conv_relu();
  EXPECT_ERROR_HAS(error_of([&] { make_plan(e, {{"x", {1, 3, int64_t{1} << 32, int64_t{1} << 32}}}); }), "serves 1..");
  EXPECT_ERROR_HAS(error_of([] { checked_bytes({1, 3, int64_t{1} << 32, int64_t{1} << 32}, DType::Float32, "t"); }),
                   "more elements than int64 holds");
  EXPECT_ERROR_HAS(error_of([] { checked_bytes({99999999999, 3, 224, 224}, DType::Float32, "t"); }), "above the limit");
  EXPECT_ERROR_HAS(error_of([] { checked_bytes({-1, 3}, DType::Float32, "t"); }), "negative");
  EXPECT_EQ(checked_bytes({0, int64_t{1} << 40, int64_t{1} << 40}, DType::Float32, "t"), 0u);  // empty
  EXPECT_ERROR_HAS(error_of([] { parse_shapes("x:1x3x2000000000000x1"); }), "above the limit");
  EXPECT_ERROR_HAS(error_of([] { make_cpu_backend(100000); }), "threads requested");
}

TEST(HostileSizes, LimitsAreConfigurable) {
  const int64_t saved = resource_limits().max_tensor_bytes;
  resource_limits().max_tensor_bytes = 1000;
  const Engine e = conv_relu();
  const std::string msg = error_of([&] { make_plan(e, {{"x", {1, 3, 16, 16}}}); });
  resource_limits().max_tensor_bytes = saved;
  EXPECT_ERROR_HAS(msg, "above the limit of 1000 bytes");
}

namespace {

std::string build_error(onnx::ModelProto& m, const ShapeProfile& prof = {}) {
  BuildOptions o;
  o.profile = prof;
  return error_of([&] { build_engine(import_onnx_bytes(model_bytes(m), "hostile"), o); });
}

}  // namespace

TEST(HostileModels, ConstantInt64MinDividedByMinusOne) {
  // const_div_int64min_by_minus1.onnx: folding used to trap (SIGFPE). Now it wraps as numpy does.
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_init_i64(g, "a", {std::numeric_limits<int64_t>::min()});
  add_init_i64(g, "b", {-1});
  add_node(g, "Div", {"a", "b"}, {"q"});
  add_node(g, "Mod", {"a", "b"}, {"r"});
  g->add_output()->set_name("q");
  g->add_output()->set_name("r");
  Engine e = build_engine(import_onnx_bytes(model_bytes(m), "div"), BuildOptions{});
  Session s(std::make_shared<Engine>(e), make_cpu_backend(1));
  auto out = s.run({});
  EXPECT_EQ(out[0].as<int64_t>()[0], std::numeric_limits<int64_t>::min());
  EXPECT_EQ(out[1].as<int64_t>()[0], 0);
}

TEST(HostileModels, HugeRangeIsRefusedBeforeAllocating) {
  onnx::ModelProto m;  // range_huge.onnx
  auto* g = m.mutable_graph();
  add_scalar_i64(g, "s", 0);
  add_scalar_i64(g, "l", int64_t{1} << 62);
  add_scalar_i64(g, "d", 1);
  add_node(g, "Range", {"s", "l", "d"}, {"r"});
  g->add_output()->set_name("r");
  EXPECT_ERROR_HAS(build_error(m), "above the limit");
}

TEST(HostileModels, WindowAttributesOutOfRange) {
  auto conv_with = [](const std::string& attr, std::vector<int64_t> v) {
    onnx::ModelProto m;
    auto* g = m.mutable_graph();
    add_input(g, "x", {"1", "3", "8", "8"});
    add_conv(g, "x", "y", 3, 4, 3, 1, 1, 1);
    auto* n = g->mutable_node(g->node_size() - 1);
    for (int i = 0; i < n->attribute_size(); ++i)
      if (n->attribute(i).name() == attr) n->mutable_attribute()->DeleteSubrange(i, 1);
    add_ints(n, attr, v);
    g->add_output()->set_name("y");
    return m;
  };
  const int64_t big = std::numeric_limits<int64_t>::max();
  for (const auto& c : std::vector<std::pair<std::string, std::vector<int64_t>>>{
           {"strides", {0, 0}}, {"dilations", {0, 1}}, {"pads", {-1, 0, 0, 0}}, {"pads", {big, 0, big, 0}}}) {
    auto m = conv_with(c.first, c.second);
    EXPECT_ERROR_HAS(build_error(m), c.first + " value");
  }
  onnx::ModelProto m;  // MaxPool with a zero kernel used to give all -inf
  auto* g = m.mutable_graph();
  add_input(g, "x", {"1", "3", "8", "8"});
  add_ints(add_node(g, "MaxPool", {"x"}, {"y"}), "kernel_shape", {0, 0});
  g->add_output()->set_name("y");
  EXPECT_ERROR_HAS(build_error(m), "kernel_shape value 0");
}

// A window of 2^40 x 2^40 taps over a 4x4 input (legal: the pads stay below the kernel): the pools
// visit only the taps inside the input, so this answers at once instead of looping 2^80 times.
TEST(HostileModels, HugePoolWindowsCostWhatTheInputHolds) {
  const int64_t k = int64_t{1} << 40;
  for (const char* op : {"MaxPool", "AveragePool"}) {
    onnx::ModelProto m;
    auto* g = m.mutable_graph();
    add_input(g, "x", {"1", "1", "4", "4"});
    auto* n = add_node(g, op, {"x"}, {"y"});
    add_ints(n, "kernel_shape", {k, k});
    add_ints(n, "pads", {k - 3, k - 3, 0, 0});  // output 2x2: windows end at rows/cols 2 and 3
    if (std::string(op) == "AveragePool") add_int(n, "count_include_pad", 0);
    g->add_output()->set_name("y");
    BuildOptions o;
    o.fuse = false;
    auto e = std::make_shared<Engine>(build_engine(import_onnx_bytes(model_bytes(m), "pool"), o));
    Session s(e, make_cpu_backend(1));
    HostTensor x("x", DType::Float32, {1, 1, 4, 4}, std::vector<uint8_t>(64));
    for (int i = 0; i < 16; ++i) x.as<float>()[i] = static_cast<float>(i);
    const auto y = s.run({x});
    ASSERT_EQ(y[0].shape, (std::vector<int64_t>{1, 1, 2, 2}));
    const float* v = y[0].as<float>();
    if (std::string(op) == "MaxPool") {
      EXPECT_EQ(v[0], 10.f);  // rows 0..2, cols 0..2
      EXPECT_EQ(v[3], 15.f);  // everything
    } else {
      EXPECT_FLOAT_EQ(v[0], 5.f);    // mean of rows 0..2, cols 0..2
      EXPECT_FLOAT_EQ(v[3], 7.5f);  // mean of all 16
    }
  }
}

TEST(HostileModels, ReflectPaddingBeyondTheAxis) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "x", {"1", "2"});
  add_init_i64(g, "pads", {0, 5, 0, 5});
  auto* n = add_node(g, "Pad", {"x", "pads"}, {"y"});
  auto* a = n->add_attribute();
  a->set_name("mode");
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s("reflect");
  g->add_output()->set_name("y");
  EXPECT_ERROR_HAS(build_error(m), "reflect padding 5");
}

TEST(HostileModels, ProfilesThatDoNotFitTheModel) {
  const std::string bytes = [] {
    onnx::ModelProto m;
    auto* g = m.mutable_graph();
    add_input(g, "x", {"1", "3", "H", "W"});
    add_node(g, "Relu", {"x"}, {"y"});
    g->add_output()->set_name("y");
    return model_bytes(m);
  }();
  auto err = [&](ShapeProfile p) {
    BuildOptions o;
    o.profile = std::move(p);
    return error_of([&] { build_engine(import_onnx_bytes(bytes, "p"), o); });
  };
  ShapeProfile p;
  p.min["x"] = {1, 3, 8, 8};
  p.max["x"] = {1, 3, 16, 16};
  p.opt["x"] = {1, 3, 32, 32};
  EXPECT_ERROR_HAS(err(p), "opt 32 outside 8..16");
  ShapeProfile q;
  q.min["x"] = {1, 4, 8, 8};
  EXPECT_ERROR_HAS(err(q), "fixes it to 3");
  ShapeProfile r;
  r.max["x"] = {1, 3, 8};
  EXPECT_ERROR_HAS(err(r), "has rank 3, the input has rank 4");
  ShapeProfile s;
  s.max["nope"] = {1};
  EXPECT_ERROR_HAS(err(s), "which is not a graph input");
}
