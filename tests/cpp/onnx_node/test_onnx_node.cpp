// ONNX backend node tests (Debian's libonnx-testdata): every test directory whose ops unirt
// supports runs through import -> passes -> CPU session and is compared with the expected outputs.
// Tests unirt cannot run are reported as skipped with the reason; the summary prints the counts.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "onnx.pb.h"
#include "onnx/importer.h"
#include "runtime/planner.h"
#include "runtime/session.h"

namespace fs = std::filesystem;
using namespace unirt;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> test_dirs() {
  std::vector<std::string> v;
  if (!fs::exists(UNIRT_ONNX_TESTDATA)) return v;
  for (const auto& e : fs::directory_iterator(UNIRT_ONNX_TESTDATA))
    if (e.is_directory() && fs::exists(e.path() / "model.onnx")) v.push_back(e.path().filename().string());
  std::sort(v.begin(), v.end());
  return v;
}

struct Summary {
  int passed = 0, failed = 0;
  std::map<std::string, int> skipped;
  std::map<std::string, int> outside_ops;  // op type -> tests skipped for it
  ~Summary() {
    int sk = 0;
    for (const auto& kv : skipped) sk += kv.second;
    std::printf("\nONNX node tests: %d passed, %d failed, %d skipped (of %d)\n", passed, failed, sk, passed + failed + sk);
    for (const auto& kv : skipped) std::printf("  skipped %4d: %s\n", kv.second, kv.first.c_str());
    std::string list;
    for (const auto& kv : outside_ops) list += (list.empty() ? "" : ", ") + kv.first + " (" + std::to_string(kv.second) + ")";
    if (!list.empty()) std::printf("  ops outside unirt's list, by tests: %s\n", list.c_str());
  }
} summary;

// Why unirt does not run this model, or "" when it should. `detail` names the op or tensor.
std::string unsupported_reason(const onnx::ModelProto& m, std::string& detail) {
  std::set<std::string> ops;
  for (const auto& s : supported_onnx_ops()) ops.insert(s);
  const auto& reg = KernelRegistry::get("cpu");
  for (const auto& n : m.graph().node()) {
    detail = n.op_type();
    if (!n.domain().empty() && n.domain() != "ai.onnx") return "op outside the default domain";
    if (!ops.count(n.op_type())) return "op not in unirt's op list";
    if (n.op_type() != "Constant" && !reg.find(n.op_type())) return "no CPU kernel";
  }
  for (const auto& i : m.graph().input()) {
    detail = i.name() + " of element type " + std::to_string(i.type().tensor_type().elem_type());
    if (!dtype_supported(i.type().tensor_type().elem_type())) return "input element type unirt does not hold (string/bfloat16/complex/uint16...)";
  }
  for (const auto& o : m.graph().output()) {
    detail = o.name() + " of element type " + std::to_string(o.type().tensor_type().elem_type());
    if (!dtype_supported(o.type().tensor_type().elem_type())) return "output element type unirt does not hold";
  }
  detail.clear();
  return "";
}

HostTensor to_host(const onnx::TensorProto& t, const std::string& name) {
  HostTensor h;
  h.name = name;
  h.dtype = static_cast<DType>(t.data_type());
  for (auto d : t.dims()) h.shape.push_back(d);
  const size_t n = static_cast<size_t>(h.numel());
  h.bytes.resize(n * dtype_size(h.dtype));
  if (t.has_raw_data()) {
    std::memcpy(h.bytes.data(), t.raw_data().data(), std::min(h.bytes.size(), t.raw_data().size()));
  } else if (h.dtype == DType::Float32) {
    for (size_t i = 0; i < n; ++i) h.as<float>()[i] = t.float_data(static_cast<int>(i));
  } else if (h.dtype == DType::Int64) {
    for (size_t i = 0; i < n; ++i) h.as<int64_t>()[i] = t.int64_data(static_cast<int>(i));
  } else if (h.dtype == DType::Float64) {
    for (size_t i = 0; i < n; ++i) h.as<double>()[i] = t.double_data(static_cast<int>(i));
  } else {
    for (size_t i = 0; i < n; ++i) {
      const int32_t v = t.int32_data(static_cast<int>(i));
      std::memcpy(h.bytes.data() + i * dtype_size(h.dtype), &v, dtype_size(h.dtype));
    }
  }
  return h;
}

double element(const HostTensor& t, int64_t i) {
  switch (t.dtype) {
    case DType::Float32: return t.as<float>()[i];
    case DType::Float64: return t.as<double>()[i];
    case DType::Int64: return static_cast<double>(t.as<int64_t>()[i]);
    case DType::Int32: return t.as<int32_t>()[i];
    case DType::Int8: return reinterpret_cast<const int8_t*>(t.bytes.data())[i];
    case DType::Uint8:
    case DType::Bool: return t.bytes[i];
    case DType::Float16: {
      uint16_t h;
      std::memcpy(&h, t.bytes.data() + 2 * i, 2);
      const int e = (h >> 10) & 31, m = h & 1023;
      double v = e == 0 ? std::ldexp(m, -24) : (e == 31 ? INFINITY : std::ldexp(m + 1024, e - 25));
      return (h & 0x8000) ? -v : v;
    }
    default: return 0;
  }
}

class OnnxNodeTest : public ::testing::TestWithParam<std::string> {};

TEST_P(OnnxNodeTest, MatchesExpectedOutputs) {
  const fs::path dir = fs::path(UNIRT_ONNX_TESTDATA) / GetParam();
  onnx::ModelProto m;
  if (!m.ParseFromString(slurp(dir / "model.onnx"))) FAIL() << "cannot parse " << dir;
  std::string detail;
  const std::string why = unsupported_reason(m, detail);
  if (!why.empty()) {
    ++summary.skipped[why];
    if (why == "op not in unirt's op list" || why == "op outside the default domain") ++summary.outside_ops[detail];
    GTEST_SKIP() << why << ": " << detail;
  }
  std::shared_ptr<Engine> e;
  try {
    e = std::make_shared<Engine>(build_engine(import_onnx_file((dir / "model.onnx").string()), BuildOptions{}));
  } catch (const Error& ex) {
    const std::string msg = ex.what();
    // Model features unirt reports as unsupported by design count as skips, with the message.
    if (msg.find("not supported") != std::string::npos || msg.find("depends on tensor data") != std::string::npos ||
        msg.find("unsupported") != std::string::npos) {
      ++summary.skipped["build refused: " + msg.substr(msg.find(':') + 1, 70)];
      GTEST_SKIP() << msg;
    }
    ++summary.failed;
    FAIL() << "build failed: " << msg;
  }
  Session sess(e, make_cpu_backend(1));
  int sets = 0;
  for (const auto& ds : fs::directory_iterator(dir)) {
    if (!ds.is_directory() || ds.path().filename().string().rfind("test_data_set", 0) != 0) continue;
    std::vector<HostTensor> inputs;
    const auto& gi = m.graph().input();
    std::vector<std::string> runtime_inputs;
    for (int id : e->graph.inputs) runtime_inputs.push_back(e->graph.value(id).name);
    for (int i = 0; i < gi.size(); ++i) {
      const fs::path p = ds.path() / ("input_" + std::to_string(i) + ".pb");
      if (!fs::exists(p)) continue;
      if (std::find(runtime_inputs.begin(), runtime_inputs.end(), gi[i].name()) == runtime_inputs.end()) continue;
      onnx::TensorProto t;
      t.ParseFromString(slurp(p));
      inputs.push_back(to_host(t, gi[i].name()));
    }
    std::vector<HostTensor> outs;
    try {
      outs = sess.run(inputs);
    } catch (const Error& ex) {
      const std::string msg = ex.what();
      // Kernels refuse element types they do not implement (uint8 arithmetic, say) by name.
      if (msg.find("unsupported type") != std::string::npos || msg.find("the CPU backend expects") != std::string::npos ||
          msg.find("not supported") != std::string::npos) {
        ++summary.skipped["kernel refuses: element type or feature it does not implement"];
        GTEST_SKIP() << msg;
      }
      ++summary.failed;
      FAIL() << "run failed: " << msg;
    }
    for (int i = 0; i < m.graph().output_size(); ++i) {
      onnx::TensorProto t;
      t.ParseFromString(slurp(ds.path() / ("output_" + std::to_string(i) + ".pb")));
      HostTensor want = to_host(t, m.graph().output(i).name());
      const HostTensor& got = outs.at(i);
      if (got.shape != want.shape || got.dtype != want.dtype) {
        ++summary.failed;
        FAIL() << "output " << i << " shape/type differs";
      }
      for (int64_t k = 0; k < want.numel(); ++k) {
        const double a = element(got, k), b = element(want, k);
        if (std::isnan(b) && std::isnan(a)) continue;
        if (!(std::fabs(a - b) <= 1e-4 + 1e-3 * std::fabs(b))) {
          ++summary.failed;
          FAIL() << "output " << i << " element " << k << ": got " << a << ", expected " << b;
        }
      }
    }
    ++sets;
  }
  // What `unirt ops` prints comes from the registrations: every kernel that just ran must declare
  // the type it ran on.
  for (const Node& n : e->graph.nodes) {
    if (node_is_static(e->graph, n)) continue;
    const KernelInfo* k = KernelRegistry::get("cpu").info(n.op_type);
    ASSERT_NE(k, nullptr) << n.op_type;
    const int v = !n.inputs.empty() && n.inputs[0] >= 0 ? n.inputs[0] : n.outputs[0];
    const std::string t = dtype_name(e->graph.value(v).dtype);
    if (k->types != "any" && (" " + k->types + " ").find(" " + t + " ") == std::string::npos) {
      ++summary.failed;
      FAIL() << "the CPU " << n.op_type << " kernel ran on " << t << " but its registration declares \"" << k->types << "\"";
    }
  }
  ++summary.passed;
  EXPECT_GT(sets, 0);
}

INSTANTIATE_TEST_SUITE_P(Node, OnnxNodeTest, ::testing::ValuesIn(test_dirs()),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

}  // namespace
