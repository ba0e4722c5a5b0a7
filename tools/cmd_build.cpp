// unirt build MODEL.onnx -o MODEL.engine [--fp16] [--int8|--fp8 --calib ...|--calib-cache ...]
//   [--backend cpu|cuda] [--min/opt/max-shapes ...]
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "cli.h"
#include "onnx/importer.h"

namespace unirt::cli {

Engine build_model(const std::string& onnx, BuildOptions b, const QuantCli& q, int threads) {
  Graph imported = import_onnx_file(onnx);
  apply_quant_options(q, onnx, imported, b, threads);
  Engine e = build_engine(std::move(imported), b);
  e.source = onnx;
  if (b.backend == "cuda" && !b.profile.opt.empty()) {
    const auto t0 = std::chrono::steady_clock::now();
    select_tactics(e, make_backend("cuda", 0));
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    e.build_ms += ms;
    std::printf("tactics: %zu layers timed at the opt shape in %.0f ms\n", e.tactics.size(), ms);
  }
  return e;
}

void add_build_command(CLI::App& app, Registry& r) {
  struct Opts {
    Common common;
    std::string onnx, out, min_s, opt_s, max_s;
    bool no_fuse = false;
    QuantCli quant;
  };
  auto o = std::make_shared<Opts>();
  auto* c = app.add_subcommand("build", "ONNX -> engine file (passes run once; the engine serves every shape in its profile)");
  c->add_option("model", o->onnx, "ONNX model")->required();
  c->add_option("-o,--output", o->out, "engine file to write")->required();
  c->add_option("--min-shapes", o->min_s, "smallest input shapes, e.g. input:1x3x224x224 (comma-separated per input)");
  c->add_option("--opt-shapes", o->opt_s, "typical input shapes (default for bench/compare), e.g. input:8x3x224x224");
  c->add_option("--max-shapes", o->max_s, "largest input shapes, e.g. input:64x3x448x448");
  c->add_flag("--no-fuse", o->no_fuse, "skip fusion passes");
  add_quant_options(c, o->quant);
  add_common(c, o->common);
  r.actions[c] = [o] {
    BuildOptions b = build_options(o->common);
    b.fuse = !o->no_fuse;
    b.profile.min = parse_shapes(o->min_s);
    b.profile.opt = parse_shapes(o->opt_s);
    b.profile.max = parse_shapes(o->max_s);
    Engine e = build_model(o->onnx, b, o->quant, o->common.threads);
    save_engine(e, o->out);
    const BuildOptions& built = e.options;  // with what build_model added (quantization)
    size_t weights = 0;
    for (const auto& v : e.graph.values)
      if (v.data) weights += v.data->bytes.size();
    int fired = 0;
    for (const auto& p : e.passes) fired += p.changes;
    int quantized = 0, kernels = 0, standalone_q = 0;
    for (const auto& p : e.passes) quantized += p.pass == "quantize_layers" ? p.changes : 0;
    for (const auto& n : e.graph.nodes) {
      kernels += n.op_type == "unirt.QuantizedLinear" ? 1 : n.op_type == "unirt.QuantizedMlp" ? 2 : 0;
      standalone_q += n.op_type == "QuantizeLinear";
    }
    std::printf("built %s: %zu nodes, %s weights, %s, backend %s, %d pass changes, %.1f ms\n", o->out.c_str(), e.graph.nodes.size(),
                human_bytes(static_cast<double>(weights)).c_str(), precision_name(built.precision), built.backend.c_str(), fired, e.build_ms);
    if (built.quantization.mode != QuantMode::None)
      std::printf("  %s: %d layers quantized, %d of them on 8-bit GEMM kernels%s\n", quant_mode_name(built.quantization.mode), quantized, kernels,
                  kernels < quantized ? " (the rest simulated: Q/DQ pairs and quantized weights run in float)" : "");
    else if (built.backend == "cpu" && standalone_q)  // an explicitly quantized (QDQ) graph
      std::printf("  QDQ graph: the Q/DQ pairs run as written in float32 (the CPU backend has no 8-bit kernels)\n");
    else if (kernels || standalone_q)
      std::printf("  QDQ graph: %d GEMMs on 8-bit kernels\n", kernels);
    if (standalone_q && built.backend != "cpu" && (kernels || built.quantization.mode != QuantMode::None))
      std::printf("  %d QuantizeLinear left as passes of their own (their producers write float: no fused 8-bit output)\n", standalone_q);
    for (int id : e.graph.inputs) std::printf("  input %s: %s\n", e.graph.value(id).name.c_str(), built.profile.describe(e.graph.value(id).name).c_str());
    return 0;
  };
}

}  // namespace unirt::cli
