// unirt calibrate MODEL.onnx --calib DIR|FILE.npy... --calib-cache OUT: the activation ranges of a
// post-training quantization (entropy, percentile or minmax over the calibration batches), written
// as a calibration cache that an INT8/FP8 build reads.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <unistd.h>

#include "cli.h"
#include "detection.h"
#include "image.h"
#include "ir/file.h"
#include "npy.h"
#include "onnx/importer.h"
#include "runtime/calibration.h"

namespace unirt::cli {
namespace {

bool is_image(const std::filesystem::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp";
}

// Stacks [1, ...] tensors into one [n, ...] batch.
HostTensor stack(const std::vector<HostTensor>& items) {
  HostTensor b = items.at(0);
  b.shape[0] = static_cast<int64_t>(items.size());
  b.bytes.clear();
  for (const auto& t : items) b.bytes.insert(b.bytes.end(), t.bytes.begin(), t.bytes.end());
  return b;
}

// Batches done, elapsed time and the estimate of what is left, on one line: rewritten in place on
// a terminal, else printed at every tenth of the batches.
void show_progress(const CalibrationProgress& p) {
  const bool tty = isatty(2);
  const double eta = p.batch > 0 && p.batches > 0 ? p.elapsed_s / p.batch * (p.batches - p.batch) : 0;
  const int step = std::max(1, p.batches / 10);
  if (!tty && p.batch != p.batches && p.batch % step) return;
  constexpr int kWidth = 30;
  const int filled = p.batches > 0 ? kWidth * p.batch / p.batches : 0;
  std::fprintf(stderr, "%scalibrating [%s%s] %d/%d batches, %.1f s, ETA %.1f s%s", tty ? "\r" : "", std::string(filled, '#').c_str(),
               std::string(kWidth - filled, '.').c_str(), p.batch, p.batches, p.elapsed_s, eta, tty && p.batch != p.batches ? "" : "\n");
  std::fflush(stderr);
}

}  // namespace

void add_calib_options(CLI::App* c, CalibOpts& o) {
  c->add_option("--calib", o.calib, "calibration data: a folder of images (preprocessed as --calib-preprocess says) or .npy batches of the first input");
  c->add_option("--calib-cache", o.cache, "calibration cache: written after calibrating (read instead by build when --calib is absent)");
  c->add_option("--calib-batches", o.batches, "use at most this many batches (0: all)")->check(CLI::Range(0, 1 << 30));
  c->add_option("--calib-batch-size", o.batch, "images per batch (image folders)")->check(CLI::Range(1, 4096));
  c->add_option("--calib-preprocess", o.preprocess, "image folders: classify (ImageNet resize and centre crop, --calib-size) or detect "
                "(unirt detect's keep-ratio resize, --calib-long-edge x --calib-short-edge, padded to 32)")
      ->check(CLI::IsMember({"classify", "detect"}));
  c->add_option("--calib-size", o.size, "image crop size (classify)")->check(CLI::Range(1, 8192));
  c->add_option("--calib-long-edge", o.long_edge, "detect: the long edge at most this")->check(CLI::Range(1, 8192));
  c->add_option("--calib-short-edge", o.short_edge, "detect: the short edge at most this")->check(CLI::Range(1, 8192));
  c->add_option("--calibrator", o.calibrator, "entropy (default; minmax for --fp8), percentile or minmax")->check(CLI::IsMember({"entropy", "percentile", "minmax"}));
  c->add_option("--percentile", o.percentile, "the percentile calibrator's percentile of |x|")->check(CLI::Range(1e-9, 100.0));
}

CalibrationCache calibrate_now(const CalibOpts& o, const std::string& model, const Graph& g, const BuildOptions& opts, int threads) {
  const Calibrator calibrator = parse_calibrator(o.calibrator.empty() ? "entropy" : o.calibrator);
  if (g.inputs.empty()) throw Error(model + " has no inputs to feed calibration data to");
  const std::string input = g.value(g.inputs[0]).name;
  // The batches: images of a folder, B at a time, or one .npy file per batch.
  std::vector<std::string> images, npys;
  for (const std::string& p : o.calib) {
    if (std::filesystem::is_directory(p)) {
      std::vector<std::string> found;
      for (const auto& e : std::filesystem::directory_iterator(p))
        if (e.is_regular_file() && is_image(e.path())) found.push_back(e.path().string());
      if (found.empty()) throw Error("--calib folder '" + p + "' holds no image (.jpg, .jpeg, .png, .bmp)");
      std::sort(found.begin(), found.end());
      images.insert(images.end(), found.begin(), found.end());
    } else if (std::filesystem::path(p).extension() == ".npy") {
      if (!std::filesystem::is_regular_file(p)) throw Error("--calib file '" + p + "' does not exist");
      npys.push_back(p);
    } else {
      throw Error("--calib '" + p + "': expected a folder of images or a .npy file");
    }
  }
  const int available = static_cast<int>(npys.size()) + static_cast<int>((images.size() + o.batch - 1) / o.batch);
  const int batches = o.batches > 0 ? std::min(o.batches, available) : available;
  auto next = [&](int i, std::vector<HostTensor>& in) {
    if (i >= batches) return false;
    if (i < static_cast<int>(npys.size())) {
      in.push_back(read_npy(npys[i], input));
      return true;
    }
    const size_t first = static_cast<size_t>(i - static_cast<int>(npys.size())) * o.batch;
    const size_t last = std::min(images.size(), first + o.batch);
    if (o.preprocess == "detect") {
      std::vector<RgbImage> decoded;
      for (size_t k = first; k < last; ++k) decoded.push_back(decode_rgb(read_file(images[k], "image"), images[k]));
      DetPreprocessOptions po;
      po.long_edge = o.long_edge;
      po.short_edge = o.short_edge;
      in.push_back(preprocess_detection(decoded, input, po, nullptr));
      return true;
    }
    std::vector<HostTensor> items;
    for (size_t k = first; k < last; ++k) items.push_back(load_image(images[k], input, o.size));
    in.push_back(stack(items));
    return true;
  };
  const auto hist = collect_histograms(g, opts, make_backend(opts.backend, threads), next, batches, show_progress, threads);
  const CalibrationCache cache = make_calibration_cache(hist, calibrator, o.percentile);
  if (!o.cache.empty()) cache.save(o.cache);
  std::printf("calibrated %zu tensors of %s over %d batches on %s: %s", hist.size(), model.c_str(), batches, opts.backend.c_str(),
              calibrator_name(calibrator));
  if (calibrator == Calibrator::Percentile) std::printf(" %.6g", o.percentile);
  std::printf("\n");
  if (!o.cache.empty()) std::printf("cache: %s\n", o.cache.c_str());
  if (o.verbose) {
    std::printf("%-60s %12s %12s %s\n", "tensor", "max |x|", "amax", "values");
    for (const auto& [name, h] : hist) {
      std::printf("%-60s %12.6g %12.6g %.0f", name.c_str(), h.amax(), cache.amax.at(name), h.total());
      if (h.non_finite()) std::printf(" (and %lld inf/NaN, not counted)", static_cast<long long>(h.non_finite()));
      std::printf("\n");
    }
  }
  return cache;
}

void add_quant_options(CLI::App* c, QuantCli& q) {
  c->add_flag("--int8", q.int8, "INT8 layers (MatMul, Gemm, Conv) from calibrated ranges; the rest as --fp16 says");
  c->add_flag("--fp8", q.fp8, "FP8 (E4M3) layers from calibrated ranges; the rest as --fp16 says");
  c->add_option("--layer-precision", q.layer_precision, "NAME=fp16|fp32 keeps a layer out of INT8/FP8, NAME=int8|fp8 takes one in (repeatable)");
  add_calib_options(c, q.calib);
}

bool apply_quant_options(const QuantCli& q, const std::string& model, const Graph& imported, BuildOptions& b, int threads) {
  if (q.int8 && q.fp8) throw Error("give --int8 or --fp8, not both");
  if (!q.int8 && !q.fp8) {
    if (!q.calib.calib.empty() || !q.layer_precision.empty()) throw Error("--calib and --layer-precision apply to --int8 or --fp8 builds");
    return false;
  }
  b.quantization.mode = q.int8 ? QuantMode::Int8 : QuantMode::Fp8;
  CalibrationCache cache;
  if (!q.calib.calib.empty()) {
    CalibOpts o = q.calib;
    if (o.calibrator.empty()) o.calibrator = q.fp8 ? "minmax" : "entropy";
    cache = calibrate_now(o, model, imported, b, threads);
  } else if (!q.calib.cache.empty() && std::filesystem::exists(q.calib.cache)) {
    cache = CalibrationCache::load(q.calib.cache);  // TensorRT's rule: a cache, when there is one, instead of calibrating
    std::printf("calibration cache %s: %zu tensors (%s), reused\n", q.calib.cache.c_str(), cache.amax.size(), calibrator_name(cache.calibrator));
  } else {
    throw Error(std::string(q.int8 ? "--int8" : "--fp8") + " needs --calib (calibration data) or an existing --calib-cache" +
                (q.calib.cache.empty() ? "" : " ('" + q.calib.cache + "' does not exist)"));
  }
  b.quantization.amax = cache.amax;
  for (const std::string& spec : q.layer_precision) {
    const auto eq = spec.rfind('=');
    if (eq == std::string::npos || eq == 0) throw Error("--layer-precision '" + spec + "': expected NAME=fp16|fp32|int8|fp8");
    b.quantization.layer_precision[spec.substr(0, eq)] = spec.substr(eq + 1);
  }
  return true;
}

void add_calibrate_command(CLI::App& app, Registry& r) {
  struct Opts {
    Common common;
    CalibOpts calib;
    std::string model;
  };
  auto o = std::make_shared<Opts>();
  o->calib.verbose = true;
  auto* c = app.add_subcommand("calibrate", "activation ranges for INT8/FP8 from calibration data -> a calibration cache");
  c->add_option("model", o->model, "ONNX file")->required();
  add_calib_options(c, o->calib);
  add_common(c, o->common);
  r.actions[c] = [o] {
    if (o->common.fp16) throw Error("calibrate runs the model in FP32: --fp16 does not apply");
    if (o->calib.calib.empty()) throw Error("calibrate needs --calib (a folder of images or .npy batches)");
    if (o->calib.cache.empty()) throw Error("calibrate needs --calib-cache (where to write the ranges)");
    calibrate_now(o->calib, o->model, import_onnx_file(o->model), build_options(o->common), o->common.threads);
    return 0;
  };
}

}  // namespace unirt::cli
