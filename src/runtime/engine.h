// An engine: the graph after passes plus how it was built; and how to build, save and load one.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "passes/pipeline.h"
#include "backend/backend.h"

namespace unirt {

// Per graph input name: min/opt/max concrete shapes (a missing input is unconstrained).
struct ShapeProfile {
  std::map<std::string, std::vector<int64_t>> min, opt, max;
  bool empty() const { return min.empty() && opt.empty() && max.empty(); }
  std::string describe(const std::string& input) const;
};

struct BuildOptions {
  Precision precision = Precision::FP32;
  std::string backend = "cpu";
  ShapeProfile profile;
  bool fuse = true;
  // "auto" (channels-last on CUDA, NCHW on CPU), "nchw" or "nhwc": layout of convolution regions.
  std::string layout = "auto";
  // INT8 / FP8 layers from a calibration cache (passes/quantize_layers.h); none by default.
  QuantizationOptions quantization;
  // BatchNorms folded even with fuse off (calibration runs the graph a quantized build sees).
  bool fold_batchnorm = false;
};

struct Engine {
  Graph graph;
  BuildOptions options;
  std::vector<PassReport> passes;
  std::string source;
  std::map<std::string, std::string> tactics;  // node name -> chosen implementation
  double build_ms = 0;
  // Small integer graph inputs whose values are shapes (a Reshape target given as an input): the
  // graph is kept as imported and each distinct value set gets its own specialised engine at run
  // time (Session), so those values are part of the plan key. Empty for ordinary engines.
  std::vector<std::string> shape_inputs;
  // Shapes that follow from the input shapes, but not symbolically (a Reshape target chosen by
  // Equal(h, 224)): specialised per input shape as well, every dimension pinned.
  bool specialize_per_shape = false;
  int64_t created = 0;         // unix time of the build
  std::string unirt_version;   // of the unirt that built it
};

Engine build_engine(Graph graph, const BuildOptions& opts);
// fold_constants' evaluator: the node's CPU kernel (runtime/constant_evaluator.cpp).
ConstantEvaluator cpu_constant_evaluator();
// The engine for one value of each shape input (shape_inputs), built with the stored options.
Engine specialize_engine(const Engine& e, const std::map<std::string, TensorData>& values,
                         const std::map<std::string, std::vector<int64_t>>& shapes = {});
// True when the engine keeps its graph and builds per value/shape at run time.
inline bool is_deferred(const Engine& e) { return !e.shape_inputs.empty() || e.specialize_per_shape; }
Engine build_engine_from_onnx(const std::string& onnx_path, const BuildOptions& opts);
void save_engine(const Engine& e, const std::string& path);
Engine load_engine(const std::string& path);
// `validate` false skips the graph checks after parsing (the file format's own tests only; an
// engine loaded that way must not be run).
Engine load_engine_bytes(const std::string& bytes, const std::string& what, bool validate = true);
// The framing of an engine file around its payload ("UNIRTENG", format version, length, payload,
// FNV-1a checksum): tools, tests and fuzzers that edit a payload re-frame it with a valid checksum.
std::string frame_engine_payload(const std::string& payload);
std::string engine_payload(const std::string& file_bytes);  // throws Error unless framed
// An .onnx (built now with opts) or an engine file, told apart by the file's first bytes.
Engine load_model(const std::string& path, const BuildOptions& opts);
// Parses "input:1x3x224x224,other:2x5" into name -> dims; throws Error on bad syntax.
std::map<std::string, std::vector<int64_t>> parse_shapes(const std::string& spec);

extern const uint32_t kEngineFormatVersion;
extern const char* const kUnirtVersion;
extern const char* const kEngineMagic;  // the first 8 bytes of an engine file

}  // namespace unirt
