// unirt compare MODEL.onnx|ENGINE [--engine E] [--shapes ...|--input ...]: our engine vs ONNX Runtime
// (CPU) on the same inputs, polygraphy style. Exits 1 when an output is outside --atol/--rtol.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "cli.h"
#include "npy.h"

namespace fs = std::filesystem;

namespace unirt::cli {
namespace {

struct Opts {
  Common common;
  std::string model, engine, onnx, shapes;
  std::vector<std::string> inputs;
  double atol = 1e-3, rtol = 1e-3;
  uint32_t seed = 0;
  const char* argv0 = "unirt";
};

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char ch : s) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return q + "'";
}

bool is_onnx_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  char magic[8] = {};
  f.read(magic, 8);
  return f.gcount() >= 1 && std::string(magic, 8) != kEngineMagic;
}

// ort_run.py: $UNIRT_PYTHON_DIR (the python/ folder or unirt_models/ itself), else the source tree.
std::string ort_script(const char* argv0) {
  if (const char* d = std::getenv("UNIRT_PYTHON_DIR")) {
    for (const fs::path& p : {fs::path(d) / "unirt_models" / "ort_run.py", fs::path(d) / "ort_run.py"})
      if (fs::exists(p)) return p.string();
    throw Error(std::string("UNIRT_PYTHON_DIR=") + d + " holds neither unirt_models/ort_run.py nor ort_run.py");
  }
  const std::string p = repo_file(argv0, "python/unirt_models/ort_run.py");
  if (!fs::exists(p)) throw Error("cannot find python/unirt_models/ort_run.py: set UNIRT_PYTHON_DIR to the repository's python/ folder");
  return p;
}

struct Stats {
  double max_abs = 0, mean_abs = 0, median_abs = 0, max_rel = 0, mean_rel = 0, median_rel = 0;
  int64_t mismatches = 0;
  std::string top1 = "-";
};

Stats compare_tensor(const HostTensor& ours, const HostTensor& ref, double atol, double rtol) {
  if (ref.shape != ours.shape)
    throw Error("output '" + ours.name + "' is " + dims_text(ours.shape) + " here but " + dims_text(ref.shape) + " in ONNX Runtime");
  const auto a = to_doubles(ours), b = to_doubles(ref);
  const size_t n = a.size();
  Stats s;
  std::vector<double> abs_e(n), rel_e(n);
  for (size_t i = 0; i < n; ++i) {
    abs_e[i] = std::fabs(a[i] - b[i]);
    rel_e[i] = abs_e[i] / std::max(std::fabs(b[i]), 1e-12);
    if (std::isnan(a[i]) != std::isnan(b[i]) || abs_e[i] > atol + rtol * std::fabs(b[i])) ++s.mismatches;
    s.max_abs = std::max(s.max_abs, abs_e[i]);
    s.max_rel = std::max(s.max_rel, rel_e[i]);
    s.mean_abs += abs_e[i] / n;
    s.mean_rel += rel_e[i] / n;
  }
  s.median_abs = percentile(abs_e, 50);
  s.median_rel = percentile(rel_e, 50);
  if (ours.shape.size() == 2 && ours.shape[1] > 1) {  // [batch, classes]: top-1 agreement per row
    const int64_t rows = ours.shape[0], k = ours.shape[1];
    int64_t agree = 0;
    for (int64_t r = 0; r < rows; ++r)
      agree += std::max_element(a.begin() + r * k, a.begin() + (r + 1) * k) - (a.begin() + r * k) ==
               std::max_element(b.begin() + r * k, b.begin() + (r + 1) * k) - (b.begin() + r * k);
    s.top1 = std::to_string(agree) + "/" + std::to_string(rows);
  }
  return s;
}

int run_compare(const Opts& o) {
  // Our side: --engine if given, else the model itself; the reference: the ONNX model.
  const std::string ours_path = o.engine.empty() ? o.model : o.engine;
  auto e = load(ours_path, o.common);
  std::string ref = o.onnx;
  if (ref.empty()) ref = is_onnx_file(o.model) ? o.model : e->source;
  if (ref.empty() || !fs::exists(ref) || !is_onnx_file(ref))
    throw Error("no ONNX model to run in ONNX Runtime: '" + ours_path + "' is an engine built from '" + e->source +
                "'; pass the ONNX file first, or --onnx FILE");
  Session sess(e, make_backend(e->options.backend, o.common.threads), SessionOptions{o.common.threads});
  const auto in = gather_inputs(*e, o.inputs, "", 224, o.shapes, o.seed);
  const auto ours = sess.run(in);

  const fs::path tmp = fs::temp_directory_path() / ("unirt_compare_" + std::to_string(::getpid()));
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  } cleanup{tmp};
  fs::create_directories(tmp / "in");
  const char* py = std::getenv("UNIRT_PYTHON");
  std::string cmd = shell_quote(py ? py : "python3") + " " + shell_quote(ort_script(o.argv0)) + " " + shell_quote(ref) + " " +
                    shell_quote((tmp / "out").string());
  for (const auto& t : in) {
    const std::string p = (tmp / "in" / (sanitize(t.name) + ".npy")).string();
    write_npy(p, t);
    cmd += " " + shell_quote(t.name + "=" + p);
  }
  if (std::system(cmd.c_str()) != 0) throw Error("the ONNX Runtime reference run failed: " + cmd);

  std::printf("%s (%s, %s) vs ONNX Runtime CPU on %s; inputs", ours_path.c_str(), e->options.backend.c_str(),
              precision_name(e->options.precision), ref.c_str());
  for (const auto& t : in) std::printf(" %s:%s", t.name.c_str(), dims_text(t.shape).c_str());
  std::printf("\n%-16s %11s %11s %11s %11s %11s %11s %10s %8s\n", "output", "max abs", "mean abs", "median abs", "max rel", "mean rel",
              "median rel", "mismatch", "top-1");
  int64_t bad = 0;
  for (const auto& t : ours) {
    const HostTensor r = read_npy((tmp / "out" / (sanitize(t.name) + ".npy")).string(), t.name);
    const Stats s = compare_tensor(t, r, o.atol, o.rtol);
    std::printf("%-16s %11.3e %11.3e %11.3e %11.3e %11.3e %11.3e %10lld %8s\n", t.name.substr(0, 16).c_str(), s.max_abs, s.mean_abs,
                s.median_abs, s.max_rel, s.mean_rel, s.median_rel, static_cast<long long>(s.mismatches), s.top1.c_str());
    bad += s.mismatches;
  }
  if (bad == 0) std::printf("PASSED: every element satisfies |ours - ort| <= atol + rtol * |ort| (atol %.1e, rtol %.1e)\n", o.atol, o.rtol);
  else std::printf("FAILED: %lld elements exceed |ours - ort| <= atol + rtol * |ort| (atol %.1e, rtol %.1e)\n", static_cast<long long>(bad), o.atol, o.rtol);
  return bad == 0 ? 0 : 1;
}

}  // namespace

void add_compare_command(CLI::App& app, Registry& r) {
  auto o = std::make_shared<Opts>();
  o->argv0 = r.argv0;
  auto* c = app.add_subcommand("compare", "compare against ONNX Runtime (CPU) on the same inputs");
  c->add_option("model", o->model, "ONNX model (or an engine built from one)")->required();
  c->add_option("--engine", o->engine, "engine to test against the ONNX model (default: build one from it now)");
  c->add_option("--onnx", o->onnx, "ONNX model for ONNX Runtime when MODEL is an engine (default: the engine's source)");
  c->add_option("--shapes", o->shapes, "random input shapes, e.g. input:2x3x224x224");
  c->add_option("--input", o->inputs, "NAME=FILE.npy (repeatable) instead of random inputs");
  c->add_option("--seed", o->seed, "seed of the random inputs");
  c->add_option("--atol", o->atol, "absolute tolerance")->check(CLI::NonNegativeNumber);
  c->add_option("--rtol", o->rtol, "relative tolerance")->check(CLI::NonNegativeNumber);
  add_common(c, o->common);
  r.actions[c] = [o] { return run_compare(*o); };
}

}  // namespace unirt::cli
