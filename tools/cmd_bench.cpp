// unirt bench MODEL --shapes input:1x3x224x224 [--iterations N] [--warmup N] [--json] [--profile]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <tuple>
#include <nlohmann/json.hpp>

#include "cli.h"

namespace unirt::cli {
namespace {

struct Opts {
  Common common;
  std::string model, shapes;
  int iterations = 100, warmup = 10;
  bool json = false, profile = false;
};

// Host-to-host on the CPU (that is where the data lives); on CUDA, device-resident inputs and
// outputs as an application feeding the engine from the GPU would: enqueue + stream synchronize,
// a CUDA graph replay after the second run of the shape.
std::vector<double> time_runs(Session& sess, const Engine& e, const std::vector<HostTensor>& in, const Opts& o, std::string& how) {
  std::vector<double> ms;
  using clock = std::chrono::steady_clock;
  if (e.options.backend == "cpu") {
    for (int i = 0; i < o.warmup; ++i) sess.run(in);
    for (int i = 0; i < o.iterations; ++i) {
      const auto t0 = clock::now();
      sess.run(in);
      ms.push_back(std::chrono::duration<double, std::milli>(clock::now() - t0).count());
    }
    how = "host to host";
    return ms;
  }
  Backend& be = sess.backend();
  std::vector<TensorView> dins, douts;
  std::vector<std::vector<int64_t>> in_shapes;
  for (const auto& t : in) {
    TensorView v;
    v.dtype = t.dtype;
    v.shape = t.shape;
    v.data = be.alloc(std::max<size_t>(1, t.bytes.size()));
    be.copy_from_host(v.data, t.bytes.data(), t.bytes.size());
    dins.push_back(v);
    in_shapes.push_back(t.shape);
  }
  const auto oshapes = sess.output_shapes(in_shapes);
  for (size_t i = 0; i < oshapes.size(); ++i) {
    TensorView v;
    v.dtype = e.graph.value(e.graph.outputs[i]).dtype;
    v.shape = oshapes[i];
    v.data = be.alloc(std::max<size_t>(1, v.bytes()));
    douts.push_back(v);
  }
  try {
    for (int i = 0; i < std::max(2, o.warmup); ++i) sess.execute(dins, douts);
    sess.synchronize();
    for (int i = 0; i < o.iterations; ++i) {
      const auto t0 = clock::now();
      sess.execute(dins, douts);
      sess.synchronize();
      ms.push_back(std::chrono::duration<double, std::milli>(clock::now() - t0).count());
    }
  } catch (...) {
    for (auto& v : dins) be.free(v.data);
    for (auto& v : douts) be.free(v.data);
    throw;
  }
  for (auto& v : dins) be.free(v.data);
  for (auto& v : douts) be.free(v.data);
  how = "device-resident inputs/outputs: enqueue + stream synchronize";
  return ms;
}

void print_profile(std::vector<LayerTiming> layers, int iterations) {
  // Sorted by the in-sequence time where the backend measures it: that is what a run costs.
  const bool seq = !layers.empty() && layers[0].in_sequence_ms >= 0;
  auto cost = [seq](const LayerTiming& l) { return seq ? l.in_sequence_ms : l.ms; };
  double total = 0, total_alone = 0;
  for (const auto& l : layers) total += cost(l), total_alone += l.ms;
  if (total <= 0) total = 1e-12;
  std::stable_sort(layers.begin(), layers.end(), [&](const LayerTiming& a, const LayerTiming& b) { return cost(a) > cost(b); });
  std::map<std::string, std::tuple<double, double, int>> by_op;
  for (const auto& l : layers) {
    auto& o = by_op[l.op];
    std::get<0>(o) += cost(l), std::get<1>(o) += l.ms, ++std::get<2>(o);
  }
  if (seq)
    std::printf("\nper-layer time, averaged over %d runs: in sequence (one captured run of the network, an event between "
                "layers: sum %.3f ms) and alone (each layer launched %d times in a row: sum %.3f ms), %zu layers\n",
                iterations, total, iterations, total_alone, layers.size());
  else
    std::printf("\nper-layer time, averaged over %d runs (sum %.3f ms over %zu layers)\n", iterations, total, layers.size());
  std::printf("%-60s %-22s %10s%s %7s %7s\n", "layer", "op", seq ? "seq ms" : "ms", seq ? "   alone ms" : "", "%", "cum %");
  double cum = 0;
  for (const auto& l : layers) {
    cum += cost(l);
    char alone[24] = "";
    if (seq) std::snprintf(alone, sizeof alone, " %10.4f", l.ms);
    std::printf("%-60s %-22s %10.4f%s %6.2f%% %6.2f%%\n", l.node.substr(0, 60).c_str(), l.op.c_str(), cost(l), alone,
                100 * cost(l) / total, 100 * cum / total);
  }
  std::vector<std::pair<std::string, std::tuple<double, double, int>>> ops(by_op.begin(), by_op.end());
  std::sort(ops.begin(), ops.end(), [](const auto& a, const auto& b) { return std::get<0>(a.second) > std::get<0>(b.second); });
  std::printf("\nby op\n%-22s %6s %10s%s %7s\n", "op", "count", seq ? "seq ms" : "ms", seq ? "   alone ms" : "", "%");
  for (const auto& kv : ops) {
    char alone[24] = "";
    if (seq) std::snprintf(alone, sizeof alone, " %10.4f", std::get<1>(kv.second));
    std::printf("%-22s %6d %10.4f%s %6.2f%%\n", kv.first.c_str(), std::get<2>(kv.second), std::get<0>(kv.second), alone,
                100 * std::get<0>(kv.second) / total);
  }
}

}  // namespace

void add_bench_command(CLI::App& app, Registry& r) {
  auto o = std::make_shared<Opts>();
  auto* c = app.add_subcommand("bench", "latency percentiles and throughput (trtexec style)");
  c->add_option("model", o->model, "engine or ONNX file")->required();
  c->add_option("--shapes", o->shapes, "input shapes, e.g. input:1x3x224x224 (default: the profile's opt shapes)");
  c->add_option("--iterations", o->iterations, "timed runs")->check(CLI::Range(1, 1000000));
  c->add_option("--warmup", o->warmup, "untimed runs first")->check(CLI::NonNegativeNumber);
  c->add_flag("--json", o->json, "print the results as JSON");
  c->add_flag("--profile", o->profile, "per-layer time sorted by cost (like trtexec --dumpProfile)");
  add_common(c, o->common);
  r.actions[c] = [o] {
    auto e = load(o->model, o->common);
    const std::string backend = e->options.backend;
    Session sess(e, make_backend(backend, o->common.threads), SessionOptions{o->common.threads});
    const auto in = random_inputs(*e, parse_shapes(o->shapes), 0);
    std::string how;
    const std::vector<double> ms = time_runs(sess, *e, in, *o, how);
    const int64_t batch = in.empty() || in[0].shape.empty() ? 1 : in[0].shape[0];
    double mean = 0;
    for (double x : ms) mean += x;
    mean /= ms.size();
    const double median = percentile(ms, 50);
    nlohmann::json shapes = nlohmann::json::object();
    for (const auto& t : in) shapes[t.name] = dims_text(t.shape);
    nlohmann::json j = {{"model", o->model},
                        {"backend", backend},
                        {"precision", precision_name(e->options.precision)},
                        {"shapes", shapes},
                        {"batch", batch},
                        {"iterations", o->iterations},
                        {"warmup", o->warmup},
                        {"median_ms", median},
                        {"mean_ms", mean},
                        {"min_ms", *std::min_element(ms.begin(), ms.end())},
                        {"max_ms", *std::max_element(ms.begin(), ms.end())},
                        {"p90_ms", percentile(ms, 90)},
                        {"p95_ms", percentile(ms, 95)},
                        {"p99_ms", percentile(ms, 99)},
                        {"throughput_per_s", batch * 1000.0 / median},
                        {"peak_activation_bytes", sess.peak_activation_bytes()},
                        {"naive_activation_bytes", sess.naive_activation_bytes()},
                        {"weight_bytes", sess.weight_bytes()},
                        {"workspace_bytes", sess.workspace_bytes()},
                        {"timing", how}};
    const int profile_runs = std::max(1, std::min(o->iterations, 20));
    std::vector<LayerTiming> layers;
    if (o->profile) layers = sess.profile_layers(in, profile_runs);
    if (o->json) {
      if (o->profile) {
        j["layers"] = nlohmann::json::array();
        for (const auto& l : layers) {
          nlohmann::json lj = {{"node", l.node}, {"op", l.op}, {"ms", l.ms}};
          if (l.in_sequence_ms >= 0) lj["in_sequence_ms"] = l.in_sequence_ms;
          if (!l.tactic.empty()) lj["tactic"] = l.tactic;
          j["layers"].push_back(lj);
        }
      }
      std::cout << j.dump(1) << "\n";
    } else {
      std::printf("%s on %s (%s), inputs", o->model.c_str(), backend.c_str(), precision_name(e->options.precision));
      for (const auto& t : in) std::printf(" %s:%s", t.name.c_str(), dims_text(t.shape).c_str());
      std::printf(", %d iterations after %d warm-up (%s)\n", o->iterations, o->warmup, how.c_str());
      std::printf("latency ms: median %.3f  mean %.3f  min %.3f  p90 %.3f  p95 %.3f  p99 %.3f  max %.3f\n", median, mean,
                  j["min_ms"].get<double>(), percentile(ms, 90), percentile(ms, 95), percentile(ms, 99), j["max_ms"].get<double>());
      std::printf("throughput: %.1f img/s (batch %lld / median latency)\n", batch * 1000.0 / median, static_cast<long long>(batch));
      std::printf("memory: weights %s, activations %s (without reuse %s), workspace %s\n",
                  human_bytes(static_cast<double>(sess.weight_bytes())).c_str(),
                  human_bytes(static_cast<double>(sess.peak_activation_bytes())).c_str(),
                  human_bytes(static_cast<double>(sess.naive_activation_bytes())).c_str(),
                  human_bytes(static_cast<double>(sess.workspace_bytes())).c_str());
    }
    if (o->profile && !o->json) print_profile(layers, profile_runs);
    return 0;
  };
}

}  // namespace unirt::cli
