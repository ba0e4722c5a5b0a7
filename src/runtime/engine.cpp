#include "runtime/engine.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <ctime>
#include <fstream>
#include <optional>
#include <sstream>

#include "onnx/importer.h"
#include "passes/shape_inference.h"
#include "runtime/planner.h"
#include "runtime/profile.h"
#include "backend/kernel.h"
#include "ir/file.h"

namespace unirt {

std::string ShapeProfile::describe(const std::string& input) const {
  auto fmt = [](const std::map<std::string, std::vector<int64_t>>& m, const std::string& k) {
    auto it = m.find(k);
    if (it == m.end()) return std::string("-");
    std::string s;
    for (size_t i = 0; i < it->second.size(); ++i) s += (i ? "x" : "") + std::to_string(it->second[i]);
    return s;
  };
  return "profile for '" + input + "': min " + fmt(min, input) + ", opt " + fmt(opt, input) + ", max " + fmt(max, input);
}

// Every node the backend runs has a kernel that declares the element type it gets (the type of
// its first input, or of its output): a gap is a build error naming the node, not a run failure.
void check_kernel_types(const Graph& g, const std::string& backend) {
  const KernelRegistry& reg = KernelRegistry::get(backend);
  for (const Node& n : g.nodes) {
    if (node_is_static(g, n)) continue;
    const KernelInfo* k = reg.info(n.op_type);
    if (!k) throw Error(n.describe() + ": op " + n.op_type + " is not supported by the " + backend + " backend (no kernel)");
    const int v = !n.inputs.empty() && n.inputs[0] >= 0 ? n.inputs[0] : n.outputs.at(0);
    const std::string t = dtype_name(g.value(v).dtype);
    if (k->types != "any" && (" " + k->types + " ").find(" " + t + " ") == std::string::npos)
      throw Error(n.describe() + ": " + n.op_type + " on " + t + " is not supported by the " + backend + " backend (its kernel runs " +
                  k->types + ")");
  }
}

Engine build_engine(Graph graph, const BuildOptions& opts) {
  auto t0 = std::chrono::steady_clock::now();
  for (const auto* m : {&opts.profile.min, &opts.profile.opt, &opts.profile.max})
    for (const auto& kv : *m) {
      int id = graph.find_value(kv.first);
      bool is_input = false;
      for (int i : graph.inputs) is_input |= (i == id);
      if (!is_input) throw Error("shape profile names '" + kv.first + "', which is not a graph input");
      if (graph.value(id).shape.size() != kv.second.size())
        throw Error("shape profile for '" + kv.first + "' has rank " + std::to_string(kv.second.size()) +
                    ", the input has rank " + std::to_string(graph.value(id).shape.size()));
      for (int64_t d : kv.second)
        if (d < 0 || d > resource_limits().max_dim)
          throw Error("shape profile for '" + kv.first + "': dimension " + std::to_string(d) + " is outside 0.." +
                      std::to_string(resource_limits().max_dim));
    }
  for (const auto& kv : opts.profile.min) {
    auto mx = opts.profile.max.find(kv.first);
    if (mx == opts.profile.max.end()) continue;
    for (size_t i = 0; i < kv.second.size(); ++i)
      if (kv.second[i] > mx->second[i]) throw Error(opts.profile.describe(kv.first) + ": min exceeds max");
  }
  if (opts.backend != "cpu" && opts.backend != "cuda")
    throw Error("unknown backend '" + opts.backend + "' (cpu or cuda)");
  if (opts.precision == Precision::INT8 || opts.precision == Precision::FP8)
    throw Error(std::string(precision_name(opts.precision)) + " engines are not supported yet");
  if (opts.backend == "cpu" && opts.precision != Precision::FP32)
    throw Error(std::string("the CPU backend runs fp32 engines only; ") + precision_name(opts.precision) +
                " needs --backend cuda");
  Engine e;
  e.options = opts;
  PipelineOptions po;
  po.precision = opts.precision;
  po.evaluate = cpu_constant_evaluator();
  po.fuse = opts.fuse;
  po.quantization = opts.quantization;
  po.fold_batchnorm = opts.fold_batchnorm;
  if (opts.layout != "auto" && opts.layout != "nchw" && opts.layout != "nhwc")
    throw Error("layout '" + opts.layout + "': expected auto, nchw or nhwc");
  po.nhwc = opts.fuse && (opts.layout == "nhwc" || (opts.layout == "auto" && opts.backend == "cuda"));
  // FP16 CUDA engines run their quantized layers on 8-bit kernels; elsewhere the Q/DQ graph is a
  // float simulation of the quantization.
  po.quantized_kernels = opts.fuse && opts.backend == "cuda" && opts.precision == Precision::FP16;
  po.quantization.kernel_layers_only = po.quantized_kernels && po.quantization.mode != QuantMode::None;
  bind_profile_ranges(graph, opts.profile);
  std::vector<std::string> shape_inputs;
  for (int id : graph.inputs) {
    const Value& v = graph.value(id);
    // Small integer inputs, and float scalars (a Range's bounds), may decide shapes by their values.
    const bool int_like = v.dtype == DType::Int64 || v.dtype == DType::Int32;
    const bool float_scalar = (v.dtype == DType::Float32 || v.dtype == DType::Float64) && shape_is_const(v.shape) &&
                              shape_numel(v.shape).is_const(1);
    if ((int_like || float_scalar) && !v.data && shape_is_const(v.shape) && shape_numel(v.shape).value() <= 64)
      shape_inputs.push_back(v.name);
  }
  auto stamp = [&] {
    e.created = static_cast<int64_t>(std::time(nullptr));
    e.unirt_version = kUnirtVersion;
    e.build_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  const Graph imported = graph;
  try {
    e.passes = run_passes(graph, po);
  } catch (const DataDependentError& err) {
    // Whose data is it? Shapes, constants and small integer inputs can be specialised at run time;
    // anything else is tensor data.
    std::map<int, bool> memo;
    std::function<bool(int)> from_shapes = [&](int v) -> bool {
      if (v < 0) return true;
      auto it = memo.find(v);
      if (it != memo.end()) return it->second;
      memo[v] = false;  // cycles cannot occur; this just bounds the recursion
      const Value& val = graph.value(v);
      bool ok = false;
      if (val.is_const() || val.sym_value) ok = true;
      else if (val.producer < 0) ok = std::find(shape_inputs.begin(), shape_inputs.end(), val.name) != shape_inputs.end();
      else {
        const Node& n = graph.nodes[val.producer];
        ok = n.op_type == "Shape" || n.op_type == "Size";
        if (!ok) {
          ok = true;
          for (int in : n.inputs) ok = ok && from_shapes(in);
        }
      }
      return memo[v] = ok;
    };
    const int culprit = graph.find_value(err.value_name);
    if (culprit < 0 || !from_shapes(culprit)) throw;
    bool uses_inputs = false;
    for (const auto& kv : memo) {
      const Value& val = graph.value(kv.first);
      uses_inputs |= kv.second && val.producer < 0 && !val.is_const();
    }
    // Specialised at run time: per value of the shape inputs, and per input shape when the values
    // follow from shapes through ops the algebra cannot decide.
    e.graph = imported;
    if (uses_inputs) e.shape_inputs = shape_inputs;
    e.specialize_per_shape = !uses_inputs || graph.value(culprit).producer >= 0;
    e.passes.push_back({e.specialize_per_shape ? "specialise_per_input_shape" : "specialise_per_shape_input", 0, 0,
                        {std::string("deferred: ") + err.what()}});
    stamp();
    return e;
  }
  e.graph = std::move(graph);
  check_kernel_types(e.graph, opts.backend);
  check_profile_corners(e);
  stamp();
  return e;
}

Engine specialize_engine(const Engine& e, const std::map<std::string, TensorData>& values,
                         const std::map<std::string, std::vector<int64_t>>& shapes) {
  Graph g = e.graph;
  BuildOptions opts = e.options;
  if (e.specialize_per_shape) {
    for (int id : g.inputs) {
      const std::string& name = g.value(id).name;
      auto it = shapes.find(name);
      if (it == shapes.end()) throw Error("input '" + name + "' was not given");
      opts.profile.min[name] = opts.profile.opt[name] = opts.profile.max[name] = it->second;
    }
  }
  for (const std::string& name : e.shape_inputs) {
    auto it = values.find(name);
    if (it == values.end()) throw Error("shape input '" + name + "' was not given");
    Value& v = g.value(g.find_value(name));
    if (it->second.dtype != v.dtype || it->second.shape != shape_values(v.shape))
      throw Error("shape input '" + name + "' must be " + dtype_name(v.dtype) + " " + dims_text(shape_values(v.shape)) + ", got " +
                  dtype_name(it->second.dtype) + " " + dims_text(it->second.shape));
    v.data = std::make_shared<TensorData>(it->second);
  }
  for (int id : g.inputs) {
    // The specialisation answers for these shapes only; the original profile still bounds them.
    const Value& v = g.value(id);
    auto it = shapes.find(v.name);
    if (it == shapes.end()) continue;
    auto mn = e.options.profile.min.find(v.name), mx = e.options.profile.max.find(v.name);
    for (size_t i = 0; i < it->second.size(); ++i)
      if ((mn != e.options.profile.min.end() && i < mn->second.size() && it->second[i] < mn->second[i]) ||
          (mx != e.options.profile.max.end() && i < mx->second.size() && it->second[i] > mx->second[i]))
        throw Error("input '" + v.name + "' shape " + dims_text(it->second) + " is outside the engine's " +
                    e.options.profile.describe(v.name) + ": rebuild with a wider --min-shapes/--max-shapes");
  }
  Engine s = build_engine(std::move(g), opts);
  if (is_deferred(s)) throw Error("shapes still depend on tensor data with every shape input given: " + s.passes.back().details.at(0));
  s.options = e.options;
  s.source = e.source;
  s.tactics = e.tactics;
  return s;
}

Engine build_engine_from_onnx(const std::string& onnx_path, const BuildOptions& opts) {
  Engine e = build_engine(import_onnx_file(onnx_path), opts);
  e.source = onnx_path;
  return e;
}

Engine load_model(const std::string& path, const BuildOptions& opts) {
  const std::string bytes = read_file(path, "model");
  if (bytes.compare(0, 8, kEngineMagic) == 0) return load_engine_bytes(bytes, path);
  Engine e = build_engine(import_onnx_bytes(bytes, path), opts);
  e.source = path;
  return e;
}

std::map<std::string, std::vector<int64_t>> parse_shapes(const std::string& spec) {
  std::map<std::string, std::vector<int64_t>> out;
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    const auto colon = item.rfind(':');
    if (colon == std::string::npos || colon == 0)
      throw Error("shape '" + item + "' should look like name:1x3x224x224");
    std::vector<int64_t> dims;
    std::stringstream ds(item.substr(colon + 1));
    std::string d;
    while (std::getline(ds, d, 'x')) {
      try {
        size_t used = 0;
        long long v = std::stoll(d, &used);
        if (used != d.size() || v < 0) throw std::invalid_argument(d);
        dims.push_back(v);
      } catch (const std::exception&) {
        throw Error("shape '" + item + "': '" + d + "' is not a non-negative integer");
      }
      if (dims.back() > resource_limits().max_dim)
        throw Error("shape '" + item + "': dimension " + d + " is above the limit of " + std::to_string(resource_limits().max_dim));
    }
    if (out.count(item.substr(0, colon))) throw Error("shape '" + item + "': '" + item.substr(0, colon) + "' is given twice");
    out[item.substr(0, colon)] = dims;
  }
  return out;
}

}  // namespace unirt
