// unirt debug precision MODEL.onnx --int8|--fp8 (--calib ...|--calib-cache C) [--input ...]: which
// layers' quantization hurts the output most (polygraphy's `debug precision`, by measurement).
// Every layer the placement would quantize is quantized alone, the others kept as the base
// precision, and the outputs compared with the unquantized engine's on the same inputs; then the
// whole quantized engine with the worst k layers kept out, for growing k. Prints the ranking and the
// --layer-precision flags that keep the worst --keep layers in the base precision.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "cli.h"
#include "onnx/importer.h"

namespace unirt::cli {
namespace {

struct Damage {
  double rel_l2 = 0;   // worst output's ||y - y_ref|| / ||y_ref||
  double max_abs = 0;  // over every output
  double top1 = -1;    // agreement of the first [N, classes] output, -1 when there is none
};

Damage damage(const std::vector<HostTensor>& got, const std::vector<HostTensor>& ref) {
  Damage d;
  for (size_t o = 0; o < ref.size(); ++o) {
    if (got.at(o).shape != ref[o].shape) throw Error("output '" + ref[o].name + "' changed shape under quantization");
    const auto a = to_doubles(got[o]), b = to_doubles(ref[o]);
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      const double e = std::isfinite(a[i]) ? a[i] - b[i] : INFINITY;
      num += e * e;
      den += b[i] * b[i];
      d.max_abs = std::max(d.max_abs, std::fabs(e));
    }
    d.rel_l2 = std::max(d.rel_l2, std::sqrt(num / std::max(den, 1e-30)));
    const auto& s = ref[o].shape;
    if (d.top1 < 0 && s.size() == 2 && s[1] > 1) {
      int64_t agree = 0;
      for (int64_t r = 0; r < s[0]; ++r) {
        const auto* pa = &a[static_cast<size_t>(r * s[1])];
        const auto* pb = &b[static_cast<size_t>(r * s[1])];
        agree += std::max_element(pa, pa + s[1]) - pa == std::max_element(pb, pb + s[1]) - pb;
      }
      d.top1 = s[0] ? static_cast<double>(agree) / static_cast<double>(s[0]) : 1.0;
    }
  }
  return d;
}

std::string top1_text(double t) {
  if (t < 0) return "-";
  char b[16];
  std::snprintf(b, sizeof b, "%.2f%%", 100 * t);
  return b;
}

}  // namespace

void add_debug_command(CLI::App& app, Registry& r) {
  struct Opts {
    Common common;
    QuantCli quant;
    std::string onnx, shapes, json;
    std::vector<std::string> inputs;
    int keep = 4;
    uint32_t seed = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* debug = app.add_subcommand("debug", "find what makes an engine's output differ");
  debug->require_subcommand(1);
  auto* c = debug->add_subcommand("precision", "rank the layers whose INT8/FP8 quantization hurts the output most");
  c->add_option("model", o->onnx, "ONNX model")->required();
  c->add_option("--input", o->inputs, "NAME=FILE.npy (repeatable); default: random inputs of --shapes");
  c->add_option("--shapes", o->shapes, "shapes of random inputs, e.g. input:4x3x224x224");
  c->add_option("--seed", o->seed, "seed of random inputs");
  c->add_option("--keep", o->keep, "how many of the worst layers the suggested flags keep out")->check(CLI::Range(0, 1 << 20));
  c->add_option("--json", o->json, "write the ranking as JSON to this file");
  add_quant_options(c, o->quant);
  add_common(c, o->common);
  r.actions[c] = [o] {
    BuildOptions base = build_options(o->common);
    const Graph imported = import_onnx_file(o->onnx);
    BuildOptions q = base;
    if (!apply_quant_options(o->quant, o->onnx, imported, q, o->common.threads)) throw Error("debug precision needs --int8 or --fp8");
    const std::string mode = quant_mode_name(q.quantization.mode);
    const auto t0 = std::chrono::steady_clock::now();

    auto run = [&](const BuildOptions& b, const std::vector<HostTensor>* in, std::vector<HostTensor>* inputs_out) {
      auto e = std::make_shared<Engine>(build_engine(imported, b));
      Session s(e, make_backend(b.backend, o->common.threads), SessionOptions{o->common.threads});
      if (inputs_out) *inputs_out = gather_inputs(*e, o->inputs, "", 224, o->shapes, o->seed);
      return s.run(in ? *in : *inputs_out);
    };
    std::vector<HostTensor> inputs;
    const std::vector<HostTensor> ref = run(base, nullptr, &inputs);

    // The layers the placement takes: the unfused graph after the pass, whose quantized layers carry a "<mode>:" note.
    BuildOptions probe = q;
    probe.fuse = false;
    probe.fold_batchnorm = true;
    const Engine placed = build_engine(imported, probe);
    std::vector<std::pair<std::string, std::string>> layers;  // name, op
    for (const Node& n : placed.graph.nodes)
      for (const std::string& note : n.notes)
        if (note.rfind(mode + ":", 0) == 0) layers.emplace_back(n.name, n.op_type);
    if (layers.empty()) throw Error("no layer of " + o->onnx + " is quantized with these ranges and flags");
    std::printf("%s: %zu layers quantized in %s; each alone against the unquantized %s engine on %s\n", o->onnx.c_str(), layers.size(),
                mode.c_str(), precision_name(base.precision), base.backend.c_str());

    auto only = [&](const std::vector<std::string>& kept_out, const std::string* alone) {
      BuildOptions b = q;
      for (const auto& [name, op] : layers)
        if ((alone && name != *alone) || std::find(kept_out.begin(), kept_out.end(), name) != kept_out.end())
          b.quantization.layer_precision[name] = "fp32";
      return damage(run(b, &inputs, nullptr), ref);
    };
    struct Row {
      std::string name, op;
      Damage d;
    };
    std::vector<Row> rows;
    for (size_t i = 0; i < layers.size(); ++i) {
      rows.push_back({layers[i].first, layers[i].second, only({}, &layers[i].first)});
      // Rewritten in place on a terminal, else a line at every tenth of the layers.
      const bool tty = isatty(2), last = i + 1 == layers.size();
      if (tty || last || (i + 1) % std::max<size_t>(1, layers.size() / 10) == 0)
        std::fprintf(stderr, "%sdebug precision: %zu/%zu layers, %.1f s%s", tty ? "\r" : "", i + 1, layers.size(),
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), tty && !last ? "" : "\n");
    }
    std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.d.rel_l2 > b.d.rel_l2; });
    std::printf("\n%-4s %-60s %-16s %12s %12s %8s\n", "rank", "layer (quantized alone)", "op", "rel L2 err", "max abs err", "top-1");
    for (size_t i = 0; i < rows.size(); ++i)
      std::printf("%-4zu %-60s %-16s %12.4e %12.4e %8s\n", i + 1, rows[i].name.c_str(), rows[i].op.c_str(), rows[i].d.rel_l2,
                  rows[i].d.max_abs, top1_text(rows[i].d.top1).c_str());

    // Every layer quantized, the worst k kept out.
    std::vector<size_t> ks = {0};
    for (size_t k = 1; k < rows.size(); k *= 2) ks.push_back(k);
    if (o->keep > 0 && std::find(ks.begin(), ks.end(), static_cast<size_t>(o->keep)) == ks.end() && static_cast<size_t>(o->keep) < rows.size())
      ks.push_back(static_cast<size_t>(o->keep));
    std::sort(ks.begin(), ks.end());
    std::printf("\n%-28s %12s %12s %8s\n", "all quantized but the worst", "rel L2 err", "max abs err", "top-1");
    nlohmann::json kept = nlohmann::json::array();
    for (size_t k : ks) {
      std::vector<std::string> out;
      for (size_t i = 0; i < k; ++i) out.push_back(rows[i].name);
      const Damage d = only(out, nullptr);
      std::printf("%-28zu %12.4e %12.4e %8s\n", k, d.rel_l2, d.max_abs, top1_text(d.top1).c_str());
      kept.push_back({{"kept_out", k}, {"rel_l2", d.rel_l2}, {"max_abs", d.max_abs}, {"top1", d.top1}});
    }
    const size_t keep = std::min(rows.size(), static_cast<size_t>(o->keep));
    const char* higher = base.precision == Precision::FP16 ? "fp16" : "fp32";
    std::printf("\nto keep the worst %zu in %s:", keep, higher);
    nlohmann::json suggested = nlohmann::json::array();
    for (size_t i = 0; i < keep; ++i) {
      std::printf(" --layer-precision %s=%s", rows[i].name.c_str(), higher);
      suggested.push_back(rows[i].name + "=" + higher);
    }
    std::printf("\n%.1f s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (!o->json.empty()) {
      nlohmann::json j;
      j["model"] = o->onnx;
      j["mode"] = mode;
      j["backend"] = base.backend;
      j["precision"] = precision_name(base.precision);
      for (const Row& row : rows)
        j["layers"].push_back({{"name", row.name}, {"op", row.op}, {"rel_l2", row.d.rel_l2}, {"max_abs", row.d.max_abs}, {"top1", row.d.top1}});
      j["kept_out"] = kept;
      j["suggested"] = suggested;
      std::ofstream f(o->json);
      if (!(f << j.dump(1) << "\n")) throw Error("cannot write " + o->json);
    }
    return 0;
  };
}

}  // namespace unirt::cli
