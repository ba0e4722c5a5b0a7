// unirt: build, run, bench, compare, inspect and classify UniFormer engines (trtexec/polygraphy style).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <unistd.h>

#include "npy.h"
#include "runtime/session.h"

namespace fs = std::filesystem;
using namespace unirt;

namespace {

struct Common {
  std::string backend = "auto";
  bool fp16 = false;
  int threads = 0;
};

std::string resolve_backend(const std::string& b) {
  if (b == "cpu" || b == "cuda") return b;
  if (b != "auto") throw Error("unknown backend '" + b + "' (auto, cpu, cuda)");
  std::string why;
  return cuda_backend_available(&why) ? "cuda" : "cpu";
}

std::unique_ptr<Backend> make_backend(const std::string& b, int threads) {
  if (b == "cuda") return make_cuda_backend();
  return make_cpu_backend(threads);
}

BuildOptions build_options(const Common& c) {
  BuildOptions o;
  o.backend = resolve_backend(c.backend);
  o.precision = c.fp16 ? Precision::FP16 : Precision::FP32;
  return o;
}

// Loads an engine or builds one from ONNX; an engine file keeps its own backend and precision.
std::shared_ptr<Engine> load(const std::string& path, const Common& c) {
  auto e = std::make_shared<Engine>(load_model(path, build_options(c)));
  return e;
}

std::string sanitize(const std::string& n) {
  std::string s = n;
  for (char& ch : s)
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '.' || ch == '-')) ch = '_';
  return s;
}

std::vector<HostTensor> random_inputs(const Engine& e, const std::map<std::string, std::vector<int64_t>>& shapes, uint32_t seed) {
  std::vector<HostTensor> in;
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (int id : e.graph.inputs) {
    const Value& v = e.graph.value(id);
    HostTensor t;
    t.name = v.name;
    t.dtype = DType::Float32;
    auto it = shapes.find(v.name);
    if (it != shapes.end()) t.shape = it->second;
    else {
      auto opt = e.options.profile.opt.find(v.name);
      if (opt != e.options.profile.opt.end()) t.shape = opt->second;
      else {
        for (const Dim& d : v.shape) {
          if (!d.is_const()) throw Error("input '" + v.name + "' has dynamic shape " + shape_str(v.shape) + ": give --shapes " + v.name + ":...");
          t.shape.push_back(d.value());
        }
      }
    }
    if (v.dtype != DType::Float32) throw Error("random inputs are float32; input '" + v.name + "' is " + dtype_name(v.dtype) + ": pass --input");
    t.bytes.resize(static_cast<size_t>(t.numel()) * 4);
    for (int64_t i = 0; i < t.numel(); ++i) t.as<float>()[i] = nd(rng);
    in.push_back(std::move(t));
  }
  return in;
}

std::vector<HostTensor> gather_inputs(const Engine& e, const std::vector<std::string>& specs, const std::string& image, int size,
                                      const std::string& shapes) {
  std::vector<HostTensor> in;
  for (const auto& s : specs) {
    auto eq = s.find('=');
    if (eq == std::string::npos) throw Error("--input '" + s + "' should be NAME=FILE.npy");
    in.push_back(read_npy(s.substr(eq + 1), s.substr(0, eq)));
  }
  if (!image.empty()) in.push_back(load_image(image, e.graph.value(e.graph.inputs.at(0)).name, size));
  if (in.empty()) return random_inputs(e, parse_shapes(shapes), 0);
  return in;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const double k = (v.size() - 1) * p / 100.0;
  const size_t lo = static_cast<size_t>(k);
  return v[lo] + (v[std::min(lo + 1, v.size() - 1)] - v[lo]) * (k - lo);
}

std::string human_bytes(double b) {
  char buf[32];
  if (b >= 1 << 20) std::snprintf(buf, sizeof buf, "%.2f MiB", b / (1 << 20));
  else std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024);
  return buf;
}

std::vector<std::string> read_labels(const std::string& path) {
  std::vector<std::string> labels;
  std::ifstream f(path);
  for (std::string line; std::getline(f, line);) labels.push_back(line);
  return labels;
}

std::string repo_file(const char* argv0, const std::string& rel) {
  // The binary lives in <repo>/build*/ ; look beside it, then its parent, then the cwd.
  std::vector<fs::path> bases = {fs::absolute(argv0).parent_path(), fs::absolute(argv0).parent_path().parent_path(), fs::current_path()};
  if (const char* d = std::getenv("UNIRT_HOME")) bases.insert(bases.begin(), fs::path(d));
  for (const auto& b : bases)
    if (fs::exists(b / rel)) return (b / rel).string();
  return rel;
}

void add_common(CLI::App* c, Common& o) {
  c->add_option("--backend", o.backend, "auto, cpu or cuda (auto: cuda when a GPU is usable)");
  c->add_flag("--fp16", o.fp16, "build FP16 (CUDA backend)");
  c->add_option("--threads", o.threads, "CPU threads (0 = all cores)");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"unirt: UniFormer inference engine (ONNX -> engine -> CPU/CUDA)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", [] {
    std::string why;
    const bool cuda = cuda_backend_available(&why);
    return std::string("unirt ") + kUnirtVersion + " (engine format " + std::to_string(kEngineFormatVersion) + "; cpu: available; cuda: " +
           (cuda ? "available" : "unavailable: " + why) + ")";
  });
  Common common;

  // build
  auto* build = app.add_subcommand("build", "ONNX -> engine file");
  std::string onnx_path, out_path, min_s, opt_s, max_s;
  bool no_fuse = false, int8 = false;
  build->add_option("model", onnx_path, "ONNX model")->required();
  build->add_option("-o,--output", out_path, "engine file to write")->required();
  build->add_option("--min-shapes", min_s, "e.g. input:1x3x224x224");
  build->add_option("--opt-shapes", opt_s, "e.g. input:8x3x224x224");
  build->add_option("--max-shapes", max_s, "e.g. input:128x3x448x448");
  build->add_flag("--no-fuse", no_fuse, "skip fusion passes");
  build->add_flag("--int8", int8, "INT8 engine");
  add_common(build, common);

  // run
  auto* run = app.add_subcommand("run", "run a model on inputs (.npy or an image); write outputs as .npy");
  std::string model, out_dir = ".", image, shapes;
  std::vector<std::string> input_specs;
  int size = 224;
  for (auto* c : {run}) {
    c->add_option("model", model, "engine or ONNX file")->required();
    c->add_option("--input", input_specs, "NAME=FILE.npy (repeatable)");
    c->add_option("--image", image, "image file for the first input");
    c->add_option("--size", size, "image crop size");
    c->add_option("--shapes", shapes, "random inputs of these shapes when no --input");
    add_common(c, common);
  }
  run->add_option("--output-dir", out_dir, "where to write <output>.npy");

  // bench
  auto* bench = app.add_subcommand("bench", "latency and throughput");
  int iterations = 50, warmup = 10;
  bool json = false, profile = false;
  bench->add_option("model", model, "engine or ONNX file")->required();
  bench->add_option("--shapes", shapes, "input shapes, e.g. input:1x3x224x224");
  bench->add_option("--iterations", iterations, "timed runs");
  bench->add_option("--warmup", warmup, "untimed runs first");
  bench->add_flag("--json", json, "print JSON");
  bench->add_flag("--profile", profile, "per-layer time (like trtexec --dumpProfile)");
  add_common(bench, common);

  // compare
  auto* compare = app.add_subcommand("compare", "compare against ONNX Runtime on the same inputs");
  std::string ref_onnx;
  double atol = 1e-3, rtol = 1e-3;
  compare->add_option("model", model, "engine or ONNX file")->required();
  compare->add_option("--onnx", ref_onnx, "ONNX model for ONNX Runtime (default: the model itself)");
  compare->add_option("--shapes", shapes, "random input shapes");
  compare->add_option("--input", input_specs, "NAME=FILE.npy (repeatable)");
  compare->add_option("--atol", atol, "fail when max abs error / max(1, output scale) exceeds this");
  compare->add_option("--rtol", rtol, "unused alias kept for polygraphy users")->group("");
  add_common(compare, common);

  // inspect
  auto* inspect = app.add_subcommand("inspect", "layers, shapes, fusions, weights");
  inspect->add_option("model", model, "engine or ONNX file")->required();
  inspect->add_option("--shapes", shapes, "also plan memory for these input shapes");
  add_common(inspect, common);

  // classify
  auto* classify = app.add_subcommand("classify", "image -> top-5 ImageNet classes");
  std::string labels_path;
  classify->add_option("model", model, "engine or ONNX file")->required();
  classify->add_option("image", image, "image file")->required();
  classify->add_option("--labels", labels_path, "one label per line");
  classify->add_option("--size", size, "crop size");
  add_common(classify, common);

  try {
    CLI11_PARSE(app, argc, argv);
    SessionOptions so;
    so.threads = common.threads;

    if (*build) {
      BuildOptions o = build_options(common);
      if (int8) o.precision = Precision::INT8;
      o.fuse = !no_fuse;
      o.profile.min = parse_shapes(min_s);
      o.profile.opt = parse_shapes(opt_s);
      o.profile.max = parse_shapes(max_s);
      Engine e = build_engine_from_onnx(onnx_path, o);
      save_engine(e, out_path);
      size_t weights = 0;
      for (const auto& v : e.graph.values)
        if (v.data) weights += v.data->bytes.size();
      std::cout << "built " << out_path << ": " << e.graph.nodes.size() << " nodes, " << human_bytes(weights) << " weights, "
                << precision_name(o.precision) << ", backend " << o.backend << ", " << e.build_ms << " ms\n";
      return 0;
    }

    auto e = load(model, common);
    const std::string backend = e->options.backend;
    Session sess(e, make_backend(backend, common.threads), so);

    if (*run) {
      auto in = gather_inputs(*e, input_specs, image, size, shapes);
      auto outs = sess.run(in);
      fs::create_directories(out_dir);
      for (const auto& t : outs) {
        write_npy((fs::path(out_dir) / (sanitize(t.name) + ".npy")).string(), t);
        std::cout << t.name << " " << (t.shape.empty() ? "scalar" : "") ;
        for (size_t i = 0; i < t.shape.size(); ++i) std::cout << (i ? "x" : "") << t.shape[i];
        std::cout << " -> " << (fs::path(out_dir) / (sanitize(t.name) + ".npy")).string() << "\n";
      }
      return 0;
    }

    if (*bench) {
      auto in = random_inputs(*e, parse_shapes(shapes), 0);
      std::vector<double> ms;
      std::string timing = "host-to-host latency: includes input upload and output download";
      if (backend == "cpu") {
        for (int i = 0; i < std::max(1, warmup); ++i) sess.run(in);
        for (int i = 0; i < iterations; ++i) {
          auto t0 = std::chrono::steady_clock::now();
          sess.run(in);
          ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        }
      } else {
        // Device-resident inputs and outputs, as an application feeding the engine from the GPU
        // would: each sample is enqueue + stream synchronize (a CUDA graph replay after the 2nd run).
        Backend& be = sess.backend();
        std::vector<TensorView> dins, douts;
        std::vector<std::vector<int64_t>> in_shapes;
        for (const auto& t : in) {
          TensorView v;
          v.dtype = t.dtype;
          v.shape = t.shape;
          v.data = be.alloc(t.bytes.size());
          be.copy_from_host(v.data, t.bytes.data(), t.bytes.size());
          dins.push_back(v);
          in_shapes.push_back(t.shape);
        }
        auto oshapes = sess.output_shapes(in_shapes);
        for (size_t i = 0; i < oshapes.size(); ++i) {
          TensorView v;
          v.dtype = e->graph.value(e->graph.outputs[i]).dtype;
          v.shape = oshapes[i];
          v.data = be.alloc(v.bytes());
          douts.push_back(v);
        }
        for (int i = 0; i < std::max(2, warmup); ++i) sess.execute(dins, douts);
        sess.synchronize();
        for (int i = 0; i < iterations; ++i) {
          auto t0 = std::chrono::steady_clock::now();
          sess.execute(dins, douts);
          sess.synchronize();
          ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        }
        for (auto& v : dins) be.free(v.data);
        for (auto& v : douts) be.free(v.data);
        timing = "device-resident inputs/outputs: enqueue + stream synchronize, CUDA graph replay";
      }
      const int64_t batch = in.empty() || in[0].shape.empty() ? 1 : in[0].shape[0];
      double mean = 0;
      for (double x : ms) mean += x;
      mean /= ms.size();
      nlohmann::json j = {{"model", model}, {"backend", backend}, {"precision", precision_name(e->options.precision)},
                          {"batch", batch}, {"iterations", iterations}, {"median_ms", percentile(ms, 50)}, {"mean_ms", mean},
                          {"min_ms", *std::min_element(ms.begin(), ms.end())}, {"max_ms", *std::max_element(ms.begin(), ms.end())},
                          {"p90_ms", percentile(ms, 90)}, {"p95_ms", percentile(ms, 95)}, {"p99_ms", percentile(ms, 99)},
                          {"throughput_per_s", batch * 1000.0 / percentile(ms, 50)},
                          {"peak_activation_bytes", sess.peak_activation_bytes()}, {"weight_bytes", sess.weight_bytes()},
                          {"workspace_bytes", sess.workspace_bytes()}, {"timing", timing}};
      if (json) std::cout << j.dump(1) << "\n";
      else {
        std::printf("%s on %s (%s), batch %lld, %d iterations after %d warm-up\n", model.c_str(), backend.c_str(),
                    precision_name(e->options.precision), static_cast<long long>(batch), iterations, warmup);
        std::printf("latency ms: median %.3f  mean %.3f  min %.3f  p90 %.3f  p95 %.3f  p99 %.3f  max %.3f\n", percentile(ms, 50), mean,
                    j["min_ms"].get<double>(), percentile(ms, 90), percentile(ms, 95), percentile(ms, 99), j["max_ms"].get<double>());
        std::printf("throughput: %.1f inferences/s\n", batch * 1000.0 / percentile(ms, 50));
        std::printf("memory: weights %s, activations %s (without reuse %s)\n", human_bytes(sess.weight_bytes()).c_str(),
                    human_bytes(sess.peak_activation_bytes()).c_str(), human_bytes(sess.naive_activation_bytes()).c_str());
      }
      if (profile) {
        auto layers = sess.profile_layers(in, std::max(1, iterations / 5));
        double total = 0;
        for (const auto& l : layers) total += l.ms;
        std::sort(layers.begin(), layers.end(), [](const LayerTiming& a, const LayerTiming& b) { return a.ms > b.ms; });
        std::map<std::string, double> by_op;
        for (const auto& l : layers) by_op[l.op] += l.ms;
        std::printf("\nper-layer time (sum %.3f ms over %zu layers)\n%-60s %-22s %10s %7s\n", total, layers.size(), "layer", "op", "ms", "%");
        for (const auto& l : layers) std::printf("%-60s %-22s %10.4f %6.2f%%\n", l.node.substr(0, 60).c_str(), l.op.c_str(), l.ms, 100 * l.ms / total);
        std::printf("\nby op\n");
        for (const auto& kv : by_op) std::printf("%-22s %10.4f %6.2f%%\n", kv.first.c_str(), kv.second, 100 * kv.second / total);
      }
      return 0;
    }

    if (*compare) {
      const std::string onnx_ref = ref_onnx.empty() ? (e->source.empty() ? model : e->source) : ref_onnx;
      auto in = gather_inputs(*e, input_specs, "", size, shapes);
      auto ours = sess.run(in);
      const fs::path tmp = fs::temp_directory_path() / ("unirt_compare_" + std::to_string(::getpid()));
      fs::create_directories(tmp / "in");
      fs::create_directories(tmp / "out");
      std::string cmd = "python3 \"" + repo_file(argv[0], "python/unirt_models/ort_run.py") + "\" \"" + onnx_ref + "\" \"" + (tmp / "out").string() + "\"";
      for (const auto& t : in) {
        const std::string p = (tmp / "in" / (sanitize(t.name) + ".npy")).string();
        write_npy(p, t);
        cmd += " \"" + t.name + "=" + p + "\"";
      }
      if (std::system(cmd.c_str()) != 0) throw Error("ONNX Runtime reference run failed: " + cmd);
      bool ok = true;
      std::printf("%-12s %12s %12s %12s %12s %12s %10s\n", "output", "max abs", "mean abs", "median abs", "max rel", "median rel", "top-1");
      for (const auto& t : ours) {
        HostTensor ref = read_npy((tmp / "out" / (sanitize(t.name) + ".npy")).string(), t.name);
        if (ref.shape != t.shape) throw Error("output '" + t.name + "' shape differs from ONNX Runtime's");
        const int64_t n = t.numel();
        std::vector<double> abs_e(n), rel_e(n);
        double scale = 1;
        for (int64_t i = 0; i < n; ++i) {
          const double a = t.as<float>()[i], b = ref.as<float>()[i];
          abs_e[i] = std::fabs(a - b);
          rel_e[i] = abs_e[i] / std::max(std::fabs(b), 1e-6);
          scale = std::max(scale, std::fabs(b));
        }
        double mean = 0;
        for (double x : abs_e) mean += x;
        mean /= std::max<int64_t>(1, n);
        std::string top1 = "-";
        if (t.shape.size() == 2 && t.shape[1] > 1) {
          int agree = 0;
          for (int64_t r = 0; r < t.shape[0]; ++r) {
            const float* a = t.as<float>() + r * t.shape[1];
            const float* b = ref.as<float>() + r * t.shape[1];
            agree += (std::max_element(a, a + t.shape[1]) - a) == (std::max_element(b, b + t.shape[1]) - b);
          }
          top1 = std::to_string(agree) + "/" + std::to_string(t.shape[0]);
        }
        const double mx = *std::max_element(abs_e.begin(), abs_e.end());
        std::printf("%-12s %12.3e %12.3e %12.3e %12.3e %12.3e %10s\n", t.name.c_str(), mx, mean, percentile(abs_e, 50),
                    *std::max_element(rel_e.begin(), rel_e.end()), percentile(rel_e, 50), top1.c_str());
        if (mx / scale > atol) ok = false;
      }
      fs::remove_all(tmp);
      std::printf("%s (max abs error / max(1, output scale) %s %.1e)\n", ok ? "PASSED" : "FAILED", ok ? "<=" : ">", atol);
      return ok ? 0 : 1;
    }

    if (*inspect) {
      const Graph& g = e->graph;
      std::cout << "model: " << model << (e->source.empty() ? "" : " (from " + e->source + ")") << "\n";
      std::cout << "backend: " << backend << ", precision: " << precision_name(e->options.precision) << ", opset " << g.opset
                << ", producer '" << g.producer << "'\n";
      for (int id : g.inputs) std::cout << "input  " << g.value(id).name << " " << dtype_name(g.value(id).dtype) << " " << shape_str(g.value(id).shape) << "   " << e->options.profile.describe(g.value(id).name) << "\n";
      for (int id : g.outputs) std::cout << "output " << g.value(id).name << " " << dtype_name(g.value(id).dtype) << " " << shape_str(g.value(id).shape) << "\n";
      size_t weights = 0, nconst = 0;
      for (const auto& v : g.values)
        if (v.data) weights += v.data->bytes.size(), ++nconst;
      std::cout << "weights: " << human_bytes(weights) << " in " << nconst << " constants\n\npasses:\n";
      for (const auto& p : e->passes) std::printf("  %-22s changes %5d  %8.2f ms\n", p.pass.c_str(), p.changes, p.ms);
      std::map<std::string, int> ops;
      int runtime_nodes = 0;
      std::cout << "\nlayers (" << g.nodes.size() << " nodes; shape-only nodes are evaluated by the planner, marked *):\n";
      for (const auto& n : g.nodes) {
        const bool st = node_is_static(g, n);
        if (!st) ++runtime_nodes, ++ops[n.op_type];
        std::string out = n.outputs.empty() || n.outputs[0] < 0 ? "" : shape_str(g.value(n.outputs[0]).shape);
        std::string notes;
        for (const auto& s : n.notes) notes += " [" + s + "]";
        std::printf("  %s %-48s %-20s %s%s\n", st ? "*" : " ", n.name.substr(0, 48).c_str(), n.op_type.c_str(), out.c_str(), notes.c_str());
      }
      std::cout << "\nruntime layers by op (" << runtime_nodes << "):";
      for (const auto& kv : ops) std::cout << " " << kv.first << "=" << kv.second;
      std::cout << "\n";
      if (!shapes.empty()) {
        Plan p = make_plan(*e, parse_shapes(shapes));
        std::cout << "plan at " << shapes << ": " << p.steps.size() << " kernels, peak activations " << human_bytes(p.arena_bytes)
                  << " (without reuse " << human_bytes(p.naive_bytes) << ")\n";
      }
      return 0;
    }

    if (*classify) {
      auto in = gather_inputs(*e, {}, image, size, "");
      sess.run(in);  // warm-up (plans memory for this shape)
      std::vector<double> ms;
      std::vector<HostTensor> out;
      for (int i = 0; i < 10; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        out = sess.run(in);
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      }
      const HostTensor& logits = out.at(0);
      if (logits.shape.size() != 2) throw Error("classify needs a [batch, classes] output, got '" + logits.name + "'");
      const int64_t nc = logits.shape[1];
      std::vector<double> prob(nc);
      const float* l = logits.as<float>();
      const float mx = *std::max_element(l, l + nc);
      double sum = 0;
      for (int64_t i = 0; i < nc; ++i) sum += prob[i] = std::exp(l[i] - mx);
      std::vector<int64_t> idx(nc);
      for (int64_t i = 0; i < nc; ++i) idx[i] = i;
      std::partial_sort(idx.begin(), idx.begin() + std::min<int64_t>(5, nc), idx.end(), [&](int64_t a, int64_t b) { return prob[a] > prob[b]; });
      auto labels = read_labels(labels_path.empty() ? repo_file(argv[0], "assets/imagenet_labels.txt") : labels_path);
      std::cout << "top-5 for " << image << " (" << backend << ", " << precision_name(e->options.precision) << "):\n";
      for (int k = 0; k < std::min<int64_t>(5, nc); ++k) {
        const int64_t c = idx[k];
        std::printf("  %5.2f%%  %4lld  %s\n", 100 * prob[c] / sum, static_cast<long long>(c),
                    c < static_cast<int64_t>(labels.size()) ? labels[c].c_str() : "");
      }
      std::printf("latency: median %.3f ms over 10 runs (batch 1, %dx%d, host to host)\n", percentile(ms, 50), size, size);
      return 0;
    }
  } catch (const Error& ex) {
    std::cerr << "unirt: error: " << ex.what() << "\n";
    return 1;
  } catch (const std::exception& ex) {
    std::cerr << "unirt: error: " << ex.what() << "\n";
    return 1;
  }
  return 0;
}
