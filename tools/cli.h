// Shared pieces of the unirt CLI: backend choice, model loading, inputs, statistics, repo files.
// Each subcommand lives in its own cmd_<name>.cpp and registers itself with add_<name>_command.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "classification.h"
#include "runtime/calibration.h"
#include "runtime/session.h"

namespace unirt::cli {

// Options every model-consuming subcommand takes.
struct Common {
  std::string backend = "auto";
  bool fp16 = false;
  std::string layout = "auto";
  int threads = 0;
};
void add_common(CLI::App* c, Common& o);

// What main() runs once the command line parsed: the chosen subcommand's action.
using Action = std::function<int()>;
struct Registry {
  std::map<const CLI::App*, Action> actions;
  const char* argv0 = "unirt";
};

void add_build_command(CLI::App& app, Registry& r);
void add_run_command(CLI::App& app, Registry& r);
void add_bench_command(CLI::App& app, Registry& r);
void add_compare_command(CLI::App& app, Registry& r);
void add_inspect_command(CLI::App& app, Registry& r);
void add_ops_command(CLI::App& app, Registry& r);
void add_classify_command(CLI::App& app, Registry& r);
void add_detect_command(CLI::App& app, Registry& r);
void add_calibrate_command(CLI::App& app, Registry& r);
void add_debug_command(CLI::App& app, Registry& r);
void add_serve_command(CLI::App& app, Registry& r);

// Calibration data and calibrator options, shared by `calibrate` and `build --int8/--fp8`.
struct CalibOpts {
  std::vector<std::string> calib;
  std::string cache, calibrator;  // empty: entropy (minmax for an FP8 build)
  int batches = 0, batch = 8, size = 224;
  // Image folders: "classify" (ImageNet resize + centre crop to `size`) or "detect" (the keep-ratio
  // resize of `unirt detect` to long_edge x short_edge, padded to 32, each batch to its largest).
  std::string preprocess = "classify";
  int long_edge = 1333, short_edge = 800;
  double percentile = 99.99;
  bool verbose = false;  // print every tensor's range
};
void add_calib_options(CLI::App* c, CalibOpts& o);
// Runs the calibration data through `g` (as imported from `model`) in FP32 on opts.backend and
// returns the cache, written to o.cache when one is named.
CalibrationCache calibrate_now(const CalibOpts& o, const std::string& model, const Graph& g, const BuildOptions& opts, int threads);

// --int8 / --fp8, calibration and --layer-precision, shared by `build` and `debug precision`.
struct QuantCli {
  bool int8 = false, fp8 = false;
  CalibOpts calib;
  std::vector<std::string> layer_precision;  // NAME=fp16|fp32|int8|fp8
};
void add_quant_options(CLI::App* c, QuantCli& q);
// Fills b.quantization from the flags: calibrates now (--calib) or reads --calib-cache. The
// calibrator, unless given, is entropy for INT8 and minmax for FP8 (E4M3's range is kept whole, as
// TensorRT and modelopt do for FP8). Returns false when neither --int8 nor --fp8 is given.
bool apply_quant_options(const QuantCli& q, const std::string& model, const Graph& imported, BuildOptions& b, int threads);

// What `unirt build` does before it saves (also the Python package's unirt.build): import, the
// quantization flags (calibrating now or reading the cache), the passes and, on CUDA with opt
// shapes, the tactic timing.
Engine build_model(const std::string& onnx, BuildOptions b, const QuantCli& q, int threads);

// "auto" -> "cuda" when this binary has CUDA and a GPU is usable, else "cpu".
std::string resolve_backend(const std::string& b);
std::unique_ptr<Backend> make_backend(const std::string& b, int threads);
BuildOptions build_options(const Common& c);
// An engine file as saved (its own backend and precision), or an .onnx built now with `c`.
std::shared_ptr<Engine> load(const std::string& path, const Common& c);

// Output file names: characters outside [A-Za-z0-9_.-] become '_'.
std::string sanitize(const std::string& name);
std::string human_bytes(double bytes);
double percentile(std::vector<double> v, double p);

// Shape of each graph input: from `shapes`, else the profile's opt shape, else the static shape.
std::vector<int64_t> input_shape(const Engine& e, const Value& v, const std::map<std::string, std::vector<int64_t>>& shapes);
// Normal(0, 1) float32 inputs (uniform integers 0..9 for integer inputs), reproducible by seed.
std::vector<HostTensor> random_inputs(const Engine& e, const std::map<std::string, std::vector<int64_t>>& shapes, uint32_t seed);
// NAME=FILE.npy specs, an image for the first input, or random inputs of `shapes`.
std::vector<HostTensor> gather_inputs(const Engine& e, const std::vector<std::string>& specs, const std::string& image, int size,
                                      const std::string& shapes, uint32_t seed);

// A file of the source tree (python/..., assets/...): $UNIRT_HOME, then beside the binary and
// its parents (the binary lives in <repo>/build*/), then the current directory.
std::string repo_file(const char* argv0, const std::string& rel);

}  // namespace unirt::cli
