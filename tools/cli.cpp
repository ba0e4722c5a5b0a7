#include "cli.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>

#include "image.h"
#include "npy.h"
#include "runtime/planner.h"
#include "ir/half.h"

namespace fs = std::filesystem;

namespace unirt::cli {

void add_common(CLI::App* c, Common& o) {
  c->add_option("--backend", o.backend, "auto, cpu or cuda (auto: cuda when this build has it and a GPU is usable)")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  c->add_flag("--fp16", o.fp16, "FP16 engine (CUDA backend)");
  c->add_option("--layout", o.layout, "convolution layout: auto (channels-last on CUDA), nchw or nhwc")
      ->check(CLI::IsMember({"auto", "nchw", "nhwc"}));
  c->add_option("--threads", o.threads, "CPU threads (0 = all cores)")->check(CLI::Range(0, 1024));
}

std::string resolve_backend(const std::string& b) {
  if (b == "cpu" || b == "cuda") return b;
  if (b != "auto") throw Error("unknown backend '" + b + "' (auto, cpu, cuda)");
  std::string why;
  return cuda_backend_available(&why) ? "cuda" : "cpu";
}

std::unique_ptr<Backend> make_backend(const std::string& b, int threads) {
  if (b == "cuda") {
    std::string why;
    if (!cuda_backend_available(&why)) throw Error("the CUDA backend is not usable: " + why);
    return make_cuda_backend();
  }
  return make_cpu_backend(threads);
}

BuildOptions build_options(const Common& c) {
  BuildOptions o;
  o.backend = resolve_backend(c.backend);
  o.precision = c.fp16 ? Precision::FP16 : Precision::FP32;
  o.layout = c.layout;
  return o;
}

std::shared_ptr<Engine> load(const std::string& path, const Common& c) {
  auto e = std::make_shared<Engine>(load_model(path, build_options(c)));
  // Build options given with an engine file cannot apply: say so instead of ignoring them.
  if (c.fp16 && e->options.precision != Precision::FP16)
    throw Error(path + " is a " + precision_name(e->options.precision) + " engine: --fp16 applies when building from ONNX");
  if (c.layout != "auto" && e->options.layout != c.layout)
    throw Error(path + " was built with layout " + e->options.layout + ": --layout applies when building from ONNX");
  return e;
}

std::string sanitize(const std::string& n) {
  std::string s = n;
  for (char& ch : s)
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '.' || ch == '-')) ch = '_';
  return s;
}

std::string human_bytes(double b) {
  char buf[32];
  if (b >= 1 << 30) std::snprintf(buf, sizeof buf, "%.2f GiB", b / (1 << 30));
  else if (b >= 1 << 20) std::snprintf(buf, sizeof buf, "%.2f MiB", b / (1 << 20));
  else std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024);
  return buf;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double k = (v.size() - 1) * p / 100.0;
  const size_t lo = static_cast<size_t>(k);
  return v[lo] + (v[std::min(lo + 1, v.size() - 1)] - v[lo]) * (k - lo);
}

std::vector<int64_t> input_shape(const Engine& e, const Value& v, const std::map<std::string, std::vector<int64_t>>& shapes) {
  auto it = shapes.find(v.name);
  if (it != shapes.end()) return it->second;
  auto opt = e.options.profile.opt.find(v.name);
  if (opt != e.options.profile.opt.end()) return opt->second;
  std::vector<int64_t> s;
  for (const Dim& d : v.shape) {
    if (!d.is_const())
      throw Error("input '" + v.name + "' has dynamic shape " + shape_str(v.shape) + ": give --shapes " + v.name + ":<dims>, e.g. " +
                  v.name + ":1x3x224x224");
    s.push_back(d.value());
  }
  return s;
}

std::vector<HostTensor> random_inputs(const Engine& e, const std::map<std::string, std::vector<int64_t>>& shapes, uint32_t seed) {
  for (const auto& kv : shapes) {
    bool known = false;
    for (int id : e.graph.inputs) known |= e.graph.value(id).name == kv.first;
    if (!known) throw Error("--shapes names '" + kv.first + "', which is not an input of this model");
  }
  // The engine checks the shapes (profile, fixed dims, guards) before anything is allocated.
  std::map<std::string, std::vector<int64_t>> all;
  for (int id : e.graph.inputs) {
    const Value& v = e.graph.value(id);
    all[v.name] = input_shape(e, v, shapes);
    if (is_deferred(e)) checked_bytes(all[v.name], v.dtype, "input '" + v.name + "'");  // else make_plan checks it
  }
  if (!is_deferred(e)) make_plan(e, all);
  std::vector<HostTensor> in;
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (int id : e.graph.inputs) {
    const Value& v = e.graph.value(id);
    HostTensor t;
    t.name = v.name;
    t.dtype = v.dtype;
    t.shape = all[v.name];
    t.bytes.resize(checked_bytes(t.shape, t.dtype, "input '" + v.name + "'"));
    for (int64_t i = 0; i < t.numel(); ++i) {
      switch (t.dtype) {
        case DType::Float32: t.as<float>()[i] = nd(rng); break;
        case DType::Int64: t.as<int64_t>()[i] = rng() % 10; break;
        case DType::Int32: t.as<int32_t>()[i] = static_cast<int32_t>(rng() % 10); break;
        default:
          throw Error("random inputs cover float32, int64 and int32; input '" + v.name + "' is " + dtype_name(v.dtype) +
                      ": pass --input " + v.name + "=FILE.npy");
      }
    }
    in.push_back(std::move(t));
  }
  return in;
}

std::vector<HostTensor> gather_inputs(const Engine& e, const std::vector<std::string>& specs, const std::string& image, int size,
                                      const std::string& shapes, uint32_t seed) {
  std::vector<HostTensor> in;
  for (const auto& s : specs) {
    auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0) throw Error("--input '" + s + "' should be NAME=FILE.npy");
    in.push_back(read_npy(s.substr(eq + 1), s.substr(0, eq)));
  }
  if (!image.empty()) {
    if (!in.empty()) throw Error("give either --input or --image, not both");
    in.push_back(load_image(image, e.graph.value(e.graph.inputs.at(0)).name, size));
  }
  if (in.empty()) return random_inputs(e, parse_shapes(shapes), seed);
  return in;
}

std::string repo_file(const char* argv0, const std::string& rel) {
  std::vector<fs::path> bases;
  if (const char* d = std::getenv("UNIRT_HOME")) bases.push_back(d);
  std::error_code ec;
  fs::path exe = fs::canonical("/proc/self/exe", ec);
  if (ec) exe = fs::absolute(argv0);
  for (fs::path p = exe.parent_path(); !p.empty() && p != p.root_path(); p = p.parent_path()) bases.push_back(p);
  bases.push_back(fs::current_path());
  for (const auto& b : bases)
    if (fs::exists(b / rel)) return (b / rel).string();
  return rel;
}

}  // namespace unirt::cli
