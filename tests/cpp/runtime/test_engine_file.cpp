#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <random>

#include "runtime_test_util.h"

using namespace unirt;
using namespace unirt::testing;

namespace {

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

std::string saved_bytes(const Engine& e, const std::string& name) {
  const std::string path = ::testing::TempDir() + "/" + name;
  save_engine(e, path);
  return read_all(path);
}

// A graph exercising every attribute type, notes, domains, omitted inputs and symbolic values.
Engine everything_engine() {
  Engine e;
  Graph& g = e.graph;
  g.name = "everything";
  g.opset = 17;
  g.producer = "test 1.0";
  const Dim b = Dim::symbol("batch"), h = Dim::symbol("height");
  const int x = g.add_value("x", DType::Float32);
  g.value(x).shape = {b, 3, h, ceildiv(h, 7) * 7 - h};
  g.value(x).has_shape = true;
  const int w = g.add_constant("w", TensorData::from_float({1, 2, 3, 4, 5, 6}, {2, 3}));
  const int s = g.add_value("s", DType::Int64);
  g.value(s).shape = {4};
  g.value(s).has_shape = true;
  g.value(s).sym_value = std::vector<Dim>{b, 3, dmax(h, 5), dmin(mod(h, 14), floordiv(h, 2))};
  const int y = g.add_value("y", DType::Float16);
  g.value(y).shape = {b * 2 - 1};
  g.value(y).has_shape = true;
  Node n;
  n.name = "n0";
  n.op_type = "Attention";
  n.domain = "unirt";
  n.inputs = {x, -1, w, s};
  n.outputs = {y};
  n.attrs["i"] = int64_t{-7};
  n.attrs["f"] = 0.125f;
  n.attrs["s"] = std::string("hello");
  n.attrs["ints"] = std::vector<int64_t>{1, -2, 3};
  n.attrs["floats"] = std::vector<float>{0.5f, -1.5f};
  n.attrs["strings"] = std::vector<std::string>{"a", "", "ccc"};
  n.attrs["t"] = TensorData::from_int64({9, 8, 7}, {3});
  n.notes = {"fused: attention from 12 nodes", "second note"};
  g.add_node(std::move(n));
  g.inputs = {x};
  g.outputs = {y};
  e.options.precision = Precision::FP16;
  e.options.backend = "cuda";
  e.options.fuse = false;
  e.options.profile.min["x"] = {1, 3, 224, 0};
  e.options.profile.max["x"] = {8, 3, 448, 6};
  e.passes.push_back({"fuse_attention", 3, 1.5, {"block1", "block2"}});
  e.source = "model.onnx";
  e.tactics["n0"] = "flash";
  e.created = 1234567890;
  e.unirt_version = "0.1.0";
  return e;
}

void expect_same_tensor(const TensorData& a, const TensorData& b) {
  EXPECT_EQ(a.dtype, b.dtype);
  EXPECT_EQ(a.shape, b.shape);
  EXPECT_EQ(a.bytes, b.bytes);
}

void expect_same_dims(const std::vector<Dim>& a, const std::vector<Dim>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].str(), b[i].str());
    EXPECT_TRUE(unirt::same(a[i], b[i])) << a[i].str() << " vs " << b[i].str();
  }
}

void expect_same_graph(const Graph& a, const Graph& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.opset, b.opset);
  EXPECT_EQ(a.producer, b.producer);
  EXPECT_EQ(a.inputs, b.inputs);
  EXPECT_EQ(a.outputs, b.outputs);
  ASSERT_EQ(a.values.size(), b.values.size());
  for (size_t i = 0; i < a.values.size(); ++i) {
    const Value &u = a.values[i], &v = b.values[i];
    SCOPED_TRACE(u.name);
    EXPECT_EQ(u.name, v.name);
    EXPECT_EQ(u.dtype, v.dtype);
    EXPECT_EQ(u.has_shape, v.has_shape);
    expect_same_dims(u.shape, v.shape);
    ASSERT_EQ(u.sym_value.has_value(), v.sym_value.has_value());
    if (u.sym_value) expect_same_dims(*u.sym_value, *v.sym_value);
    ASSERT_EQ(u.data != nullptr, v.data != nullptr);
    if (u.data) expect_same_tensor(*u.data, *v.data);
    EXPECT_EQ(u.producer, v.producer);
  }
  ASSERT_EQ(a.nodes.size(), b.nodes.size());
  for (size_t i = 0; i < a.nodes.size(); ++i) {
    const Node &m = a.nodes[i], &n = b.nodes[i];
    SCOPED_TRACE(m.name);
    EXPECT_EQ(m.name, n.name);
    EXPECT_EQ(m.op_type, n.op_type);
    EXPECT_EQ(m.domain, n.domain);
    EXPECT_EQ(m.inputs, n.inputs);
    EXPECT_EQ(m.outputs, n.outputs);
    EXPECT_EQ(m.notes, n.notes);
    ASSERT_EQ(m.attrs.size(), n.attrs.size());
    for (const auto& kv : m.attrs) {
      ASSERT_TRUE(n.attrs.count(kv.first)) << kv.first;
      const AttrValue& o = n.attrs.at(kv.first);
      ASSERT_EQ(kv.second.index(), o.index()) << kv.first;
      std::visit(
          [&](const auto& x) {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, TensorData>) expect_same_tensor(x, std::get<T>(o));
            else EXPECT_EQ(x, std::get<T>(o)) << kv.first;
          },
          kv.second);
    }
  }
}

void expect_error(const std::string& bytes, const std::string& needle) {
  try {
    load_engine_bytes(bytes, "e");
    FAIL() << "accepted a bad engine (" << needle << ")";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find(needle), std::string::npos) << err.what();
  }
}

// Rewrites the stored checksum so damage inside the payload reaches the parser.
void fix_checksum(std::string& b) { b = frame_engine_payload(engine_payload(b)); }

}  // namespace

TEST(EngineFile, RoundTripKeepsEveryField) {
  Engine e = everything_engine();
  const std::string path = ::testing::TempDir() + "/everything.engine";
  save_engine(e, path);
  // A format test: the graph exercises every field, not a runnable model, so it skips validation.
  std::ifstream f(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  Engine l = load_engine_bytes(bytes, path, false);
  expect_same_graph(e.graph, l.graph);
  EXPECT_EQ(l.options.precision, Precision::FP16);
  EXPECT_EQ(l.options.backend, "cuda");
  EXPECT_FALSE(l.options.fuse);
  EXPECT_EQ(l.options.profile.min, e.options.profile.min);
  EXPECT_EQ(l.options.profile.max, e.options.profile.max);
  EXPECT_TRUE(l.options.profile.opt.empty());
  ASSERT_EQ(l.passes.size(), 1u);
  EXPECT_EQ(l.passes[0].pass, "fuse_attention");
  EXPECT_EQ(l.passes[0].changes, 3);
  EXPECT_EQ(l.passes[0].details, e.passes[0].details);
  EXPECT_EQ(l.source, "model.onnx");
  EXPECT_EQ(l.tactics, e.tactics);
  EXPECT_EQ(l.created, 1234567890);
  EXPECT_EQ(l.unirt_version, "0.1.0");
  // Saving the loaded engine gives the same bytes: nothing is lost or reordered.
  EXPECT_EQ(saved_bytes(e, "a.engine"), saved_bytes(l, "b.engine"));
}

TEST(EngineFile, RoundTripOfBuiltEngineKeepsSymbolicShapes) {
  auto m = window_pad_model();
  Engine e = build_engine(import_onnx_bytes(model_bytes(m), "w"), BuildOptions{});
  const std::string path = ::testing::TempDir() + "/w.engine";
  save_engine(e, path);
  Engine l = load_model(path, BuildOptions{});  // sniffed as an engine, not ONNX
  expect_same_graph(e.graph, l.graph);
  const Value& y = l.graph.value(l.graph.outputs[0]);
  EXPECT_EQ(y.shape[2].eval({{"height", 50}, {"width", 9}, {"batch", 1}}), 56);
  EXPECT_EQ(l.passes.size(), e.passes.size());
}

TEST(EngineFile, CorruptTruncatedWrongVersionAndGarbageAreRejected) {
  const std::string b = saved_bytes(everything_engine(), "c.engine");
  std::string flipped = b;
  flipped[b.size() / 2] ^= 0x40;
  expect_error(flipped, "checksum");
  expect_error(b.substr(0, b.size() - 100), "truncated at byte");
  expect_error(b.substr(0, b.size() - 3), "inside the checksum");
  expect_error(b.substr(0, 15), "truncated");
  std::string version = b;
  version[8] = 99;
  expect_error(version, "engine format version 99, this unirt reads version 3: rebuild");
  expect_error("garbage that is not an engine", "not a unirt engine file");
  expect_error("", "not a unirt engine file");
  expect_error(b + "x", "trailing");
  EXPECT_THROW(load_engine(::testing::TempDir() + "/does_not_exist.engine"), Error);
}

TEST(EngineFile, EveryTruncationIsAnError) {
  const std::string b = saved_bytes(everything_engine(), "t.engine");
  for (size_t n = 0; n < b.size(); ++n) EXPECT_THROW(load_engine_bytes(b.substr(0, n), "t"), Error) << n;
}

TEST(EngineFile, DamagedPayloadWithValidChecksumNeverCrashes) {
  // Past the checksum the parser must still bounds-check everything: a wrong length, tag or
  // index is an Error, never an out-of-bounds read or a huge allocation.
  const std::string b = saved_bytes(everything_engine(), "d.engine");
  uint64_t len;
  std::memcpy(&len, b.data() + 12, 8);
  std::mt19937 rng(7);
  int rejected = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string m = b;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < edits; ++k) m[20 + rng() % len] = static_cast<char>(rng() & 0xff);
    fix_checksum(m);
    try {
      load_engine_bytes(m, "d");
    } catch (const Error&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 100);
}

TEST(EngineFile, LoadModelSniffsOnnxAndReportsBadFiles) {
  auto m = window_pad_model();
  const std::string onnx = ::testing::TempDir() + "/w.onnx";
  {
    std::ofstream f(onnx, std::ios::binary);
    f << model_bytes(m);
  }
  Engine e = load_model(onnx, BuildOptions{});
  EXPECT_EQ(e.source, onnx);
  EXPECT_FALSE(e.passes.empty());
  const std::string bad = ::testing::TempDir() + "/bad.onnx";
  {
    std::ofstream f(bad, std::ios::binary);
    f << "\x01\x02 definitely not protobuf";
  }
  EXPECT_THROW(load_model(bad, BuildOptions{}), Error);
}
