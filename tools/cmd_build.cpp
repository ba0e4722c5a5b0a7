// unirt build MODEL.onnx -o MODEL.engine [--fp16] [--int8|--fp8 --calib ...|--calib-cache ...]
//   [--backend cpu|cuda] [--min/opt/max-shapes ...]
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "cli.h"
#include "onnx/importer.h"

namespace unirt::cli {

void add_build_command(CLI::App& app, Registry& r) {
  struct Opts {
    Common common;
    std::string onnx, out, min_s, opt_s, max_s;
    bool no_fuse = false, int8 = false, fp8 = false;
    CalibOpts calib;
    std::vector<std::string> layer_precision;
  };
  auto o = std::make_shared<Opts>();
  auto* c = app.add_subcommand("build", "ONNX -> engine file (passes run once; the engine serves every shape in its profile)");
  c->add_option("model", o->onnx, "ONNX model")->required();
  c->add_option("-o,--output", o->out, "engine file to write")->required();
  c->add_option("--min-shapes", o->min_s, "smallest input shapes, e.g. input:1x3x224x224 (comma-separated per input)");
  c->add_option("--opt-shapes", o->opt_s, "typical input shapes (default for bench/compare), e.g. input:8x3x224x224");
  c->add_option("--max-shapes", o->max_s, "largest input shapes, e.g. input:64x3x448x448");
  c->add_flag("--no-fuse", o->no_fuse, "skip fusion passes");
  c->add_flag("--int8", o->int8, "INT8 layers (MatMul, Gemm, Conv) from calibrated ranges; the rest as --fp16 says");
  c->add_flag("--fp8", o->fp8, "FP8 (E4M3) layers from calibrated ranges; the rest as --fp16 says");
  c->add_option("--layer-precision", o->layer_precision, "NAME=fp16|fp32 keeps a layer out of INT8/FP8, NAME=int8|fp8 takes one in (repeatable)");
  add_calib_options(c, o->calib);
  add_common(c, o->common);
  r.actions[c] = [o] {
    BuildOptions b = build_options(o->common);
    b.fuse = !o->no_fuse;
    b.profile.min = parse_shapes(o->min_s);
    b.profile.opt = parse_shapes(o->opt_s);
    b.profile.max = parse_shapes(o->max_s);
    Graph imported = import_onnx_file(o->onnx);
    if (o->int8 && o->fp8) throw Error("give --int8 or --fp8, not both");
    if (o->int8 || o->fp8) {
      b.quantization.mode = o->int8 ? QuantMode::Int8 : QuantMode::Fp8;
      CalibrationCache cache;
      if (!o->calib.calib.empty()) {
        cache = calibrate_now(o->calib, o->onnx, imported, b, o->common.threads);
      } else if (!o->calib.cache.empty() && std::filesystem::exists(o->calib.cache)) {
        cache = CalibrationCache::load(o->calib.cache);  // TensorRT's rule: a cache, when there is one, instead of calibrating
        std::printf("calibration cache %s: %zu tensors (%s), reused\n", o->calib.cache.c_str(), cache.amax.size(), calibrator_name(cache.calibrator));
      } else {
        throw Error(std::string(o->int8 ? "--int8" : "--fp8") + " needs --calib (calibration data) or an existing --calib-cache" +
                    (o->calib.cache.empty() ? "" : " ('" + o->calib.cache + "' does not exist)"));
      }
      b.quantization.amax = cache.amax;
      for (const std::string& spec : o->layer_precision) {
        const auto eq = spec.rfind('=');
        if (eq == std::string::npos || eq == 0) throw Error("--layer-precision '" + spec + "': expected NAME=fp16|fp32|int8|fp8");
        b.quantization.layer_precision[spec.substr(0, eq)] = spec.substr(eq + 1);
      }
    } else if (!o->calib.calib.empty() || !o->layer_precision.empty()) {
      throw Error("--calib and --layer-precision apply to --int8 or --fp8 builds");
    }
    Engine e = build_engine(std::move(imported), b);
    e.source = o->onnx;
    if (b.backend == "cuda" && !b.profile.opt.empty()) {
      const auto t0 = std::chrono::steady_clock::now();
      select_tactics(e, make_backend("cuda", 0));
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      e.build_ms += ms;
      std::printf("tactics: %zu layers timed at the opt shape in %.0f ms\n", e.tactics.size(), ms);
    }
    save_engine(e, o->out);
    size_t weights = 0;
    for (const auto& v : e.graph.values)
      if (v.data) weights += v.data->bytes.size();
    int fired = 0;
    for (const auto& p : e.passes) fired += p.changes;
    int quantized = 0;
    for (const auto& p : e.passes) quantized += p.pass == "quantize_layers" ? p.changes : 0;
    std::printf("built %s: %zu nodes, %s weights, %s, backend %s, %d pass changes, %.1f ms\n", o->out.c_str(), e.graph.nodes.size(),
                human_bytes(static_cast<double>(weights)).c_str(), precision_name(b.precision), b.backend.c_str(), fired, e.build_ms);
    if (b.quantization.mode != QuantMode::None)
      std::printf("  %s: %d layers quantized (simulated: Q/DQ pairs and quantized weights run in float until the int8/fp8 kernels land)\n",
                  quant_mode_name(b.quantization.mode), quantized);
    for (int id : e.graph.inputs) std::printf("  input %s: %s\n", e.graph.value(id).name.c_str(), b.profile.describe(e.graph.value(id).name).c_str());
    return 0;
  };
}

}  // namespace unirt::cli
