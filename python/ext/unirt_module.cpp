// unirt._unirt: the Python package's native half (nanobind). Engines and sessions of the C++ API,
// host runs with numpy, device runs on caller-owned CUDA memory (DLPack: torch, CuPy) on a caller's
// stream, and the CLI's classify/detect host side. python/unirt/__init__.py builds the public API
// on top (dict feeds, torch/CuPy output allocation, compare against ONNX Runtime).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <cstring>
#include <memory>
#include <mutex>

#include "classification.h"
#include "cli.h"
#include "detection.h"
#include "image.h"
#include "ir/file.h"
#include "runtime/engine.h"
#include "runtime/session.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace unirt::py {
namespace {

using Shapes = std::map<std::string, std::vector<int64_t>>;

nb::dlpack::dtype dl_dtype(DType t) {
  using C = nb::dlpack::dtype_code;
  switch (t) {
    case DType::Float32: return {uint8_t(C::Float), 32, 1};
    case DType::Float16: return {uint8_t(C::Float), 16, 1};
    case DType::Float64: return {uint8_t(C::Float), 64, 1};
    case DType::Int64: return {uint8_t(C::Int), 64, 1};
    case DType::Int32: return {uint8_t(C::Int), 32, 1};
    case DType::Int8: return {uint8_t(C::Int), 8, 1};
    case DType::Uint8: return {uint8_t(C::UInt), 8, 1};
    case DType::Bool: return {uint8_t(C::Bool), 8, 1};
    default: throw Error(std::string("type ") + dtype_name(t) + " has no array equivalent");
  }
}

DType from_dl(nb::dlpack::dtype d, const std::string& what) {
  for (DType t : {DType::Float32, DType::Float16, DType::Float64, DType::Int64, DType::Int32, DType::Int8, DType::Uint8, DType::Bool}) {
    const nb::dlpack::dtype e = dl_dtype(t);
    if (e.code == d.code && e.bits == d.bits && d.lanes == 1) return t;
  }
  throw Error(what + " has an element type unirt does not take (DLPack code " + std::to_string(d.code) + ", " +
              std::to_string(d.bits) + " bits)");
}

using InArray = nb::ndarray<nb::ro>;  // inputs may be read-only (a numpy view, a torch inference tensor)

template <typename A>
std::vector<int64_t> shape_of(const A& a) {
  std::vector<int64_t> s(a.ndim());
  for (size_t i = 0; i < a.ndim(); ++i) s[i] = a.shape(i);
  return s;
}

template <typename A>
void require_c_contiguous(const A& a, const std::string& what) {
  int64_t expect = 1;
  for (size_t i = a.ndim(); i-- > 0;) {
    if (a.shape(i) != 1 && a.stride(i) != expect)
      throw Error(what + " is not C-contiguous (make it contiguous first: numpy.ascontiguousarray, tensor.contiguous())");
    expect *= a.shape(i);
  }
}

// The Python-visible shape of one dimension: an int when fixed, else its symbolic expression.
nb::object dim_object(const Dim& d) {
  if (d.is_const()) return nb::int_(d.value());
  return nb::str(d.str().c_str());
}

nb::object profile_shape(const Shapes& m, const std::string& name) {
  auto it = m.find(name);
  if (it == m.end()) return nb::none();
  return nb::cast(it->second);
}

struct PyEngine {
  std::shared_ptr<Engine> e;
};

nb::list tensor_infos(const Engine& e, const std::vector<int>& ids) {
  nb::list out;
  for (int id : ids) {
    const Value& v = e.graph.value(id);
    nb::list shape;
    for (const Dim& d : v.shape) shape.append(dim_object(d));
    nb::dict d;
    d["name"] = v.name;
    d["dtype"] = dtype_name(v.dtype);
    d["shape"] = nb::tuple(shape);
    d["min"] = profile_shape(e.options.profile.min, v.name);
    d["opt"] = profile_shape(e.options.profile.opt, v.name);
    d["max"] = profile_shape(e.options.profile.max, v.name);
    out.append(d);
  }
  return out;
}

// One session and the lock that makes it safe to share between Python threads (the GIL is
// released while it runs).
struct PySession {
  std::shared_ptr<Engine> engine;
  std::unique_ptr<Session> session;
  std::mutex mu;
};

// A host tensor handed to numpy without a copy: the capsule owns the bytes.
nb::object to_numpy(HostTensor&& t) {
  auto* bytes = new std::vector<uint8_t>(std::move(t.bytes));
  nb::capsule owner(bytes, [](void* p) noexcept { delete static_cast<std::vector<uint8_t>*>(p); });
  std::vector<size_t> shape(t.shape.begin(), t.shape.end());
  nb::ndarray<nb::numpy> a(bytes->data(), shape.size(), shape.data(), owner, nullptr, dl_dtype(t.dtype));
  return nb::cast(a, nb::rv_policy::reference);
}

HostTensor from_array(const std::string& name, const InArray& a) {
  const std::string what = "input '" + name + "'";
  if (a.device_type() != nb::device::cpu::value) throw Error(what + " is not in host memory (numpy expected here)");
  require_c_contiguous(a, what);
  HostTensor t(name, from_dl(a.dtype(), what), shape_of(a));
  t.bytes.resize(a.nbytes());
  if (a.nbytes()) std::memcpy(t.bytes.data(), a.data(), a.nbytes());
  return t;
}

nb::dict run_host(PySession& s, const nb::dict& feed) {
  std::vector<HostTensor> inputs;
  for (auto [k, v] : feed) {
    const std::string name = nb::cast<std::string>(k);
    InArray a;
    if (!nb::try_cast(v, a)) throw Error("input '" + name + "' is a " + nb::type_name(v.type()).c_str() + ", not an array");
    inputs.push_back(from_array(name, a));
  }
  std::vector<HostTensor> outs;
  {
    nb::gil_scoped_release unlocked;
    std::lock_guard<std::mutex> lock(s.mu);
    outs = s.session->run(inputs);
  }
  nb::dict result;
  for (auto& t : outs) {
    const std::string name = t.name;
    result[name.c_str()] = to_numpy(std::move(t));
  }
  return result;
}

#if UNIRT_HAVE_CUDA
template <typename A>
TensorView device_view(const A& a, const std::string& what) {
  if (a.device_type() != nb::device::cuda::value) throw Error(what + " is not in CUDA device memory");
  const int dev = cuda_current_device();
  if (a.device_id() != dev)
    throw Error(what + " is on CUDA device " + std::to_string(a.device_id()) + ", the session runs on device " + std::to_string(dev));
  require_c_contiguous(a, what);
  TensorView v;
  v.data = const_cast<void*>(static_cast<const void*>(a.data()));
  v.dtype = from_dl(a.dtype(), what);
  v.shape = shape_of(a);
  return v;
}
#endif

// Inputs and outputs in graph order, caller-owned device memory; the work is ordered after what
// `stream` holds so far and `stream` waits for it: no host synchronisation unless the graph has
// data-dependent sizes. Returns the outputs' actual shapes.
std::vector<std::vector<int64_t>> run_device(PySession& s, const std::vector<InArray>& inputs,
                                             const std::vector<nb::ndarray<>>& outputs, uintptr_t stream) {
#if UNIRT_HAVE_CUDA
  const Engine& e = *s.engine;
  if (e.options.backend != "cuda") throw Error("device arrays need a CUDA engine; this one runs on " + e.options.backend);
  if (is_deferred(e))
    throw Error("this engine builds a specialised engine per shape-input value: run it with host (numpy) arrays");
  const Graph& g = e.graph;
  if (inputs.size() != g.inputs.size() || outputs.size() != g.outputs.size())
    throw Error("expected " + std::to_string(g.inputs.size()) + " inputs and " + std::to_string(g.outputs.size()) + " outputs, got " +
                std::to_string(inputs.size()) + " and " + std::to_string(outputs.size()));
  std::vector<TensorView> in, out;
  for (size_t i = 0; i < inputs.size(); ++i) in.push_back(device_view(inputs[i], "input '" + g.value(g.inputs[i]).name + "'"));
  for (size_t i = 0; i < outputs.size(); ++i) out.push_back(device_view(outputs[i], "output '" + g.value(g.outputs[i]).name + "'"));
  nb::gil_scoped_release unlocked;
  std::lock_guard<std::mutex> lock(s.mu);
  void* ours = s.session->backend().context().stream;
  void* theirs = reinterpret_cast<void*>(stream);
  cuda_stream_wait(ours, theirs);
  auto shapes = s.session->execute(in, out);
  cuda_stream_wait(theirs, ours);
  return shapes;
#else
  (void)s, (void)inputs, (void)outputs, (void)stream;
  throw Error("this unirt was built without CUDA: device arrays cannot be run");
#endif
}

std::unique_ptr<PySession> make_session(const PyEngine& pe, const std::string& backend, int threads, bool cuda_graphs) {
  const std::string b = backend.empty() ? pe.e->options.backend : backend;
  if (b != pe.e->options.backend)
    throw Error("this engine was built for the " + pe.e->options.backend + " backend, not " + b + " (build it again for " + b + ")");
  SessionOptions o;
  o.threads = threads;
  o.cuda_graphs = cuda_graphs;
  auto s = std::make_unique<PySession>();
  s->engine = pe.e;
  s->session = std::make_unique<Session>(pe.e, cli::make_backend(b, threads), o);
  return s;
}

Shapes shapes_arg(const nb::object& o, const char* what) {
  if (o.is_none()) return {};
  if (nb::isinstance<nb::str>(o)) return parse_shapes(nb::cast<std::string>(o));
  Shapes m;
  for (auto [k, v] : nb::cast<nb::dict>(o)) {
    std::vector<int64_t> dims;
    if (!nb::try_cast(v, dims)) throw Error(std::string(what) + " for '" + nb::cast<std::string>(k) + "': expected a sequence of ints");
    m[nb::cast<std::string>(k)] = dims;
  }
  return m;
}

PyEngine build(const std::string& onnx, const std::string& precision, const std::string& backend, const nb::object& min_shapes,
               const nb::object& opt_shapes, const nb::object& max_shapes, bool fuse, const std::string& layout,
               const std::vector<std::string>& calib, const std::string& calib_cache, const std::string& calibrator, int calib_batches,
               int calib_batch, const std::map<std::string, std::string>& layer_precision, int threads) {
  cli::Common c;
  c.backend = backend;
  c.layout = layout;
  c.threads = threads;
  if (precision != "fp32" && precision != "fp16" && precision != "int8" && precision != "fp8")
    throw Error("precision '" + precision + "': expected fp32, fp16, int8 or fp8");
  BuildOptions b = cli::build_options(c);
  // INT8/FP8 engines run their other layers in FP16 on CUDA (as TensorRT with --int8 --fp16), in
  // FP32 on the CPU, which simulates the 8-bit layers.
  b.precision = precision == "fp32" || (precision != "fp16" && b.backend == "cpu") ? Precision::FP32 : Precision::FP16;
  b.fuse = fuse;
  b.profile.min = shapes_arg(min_shapes, "min_shapes");
  b.profile.opt = shapes_arg(opt_shapes, "opt_shapes");
  b.profile.max = shapes_arg(max_shapes, "max_shapes");
  cli::QuantCli q;
  q.int8 = precision == "int8";
  q.fp8 = precision == "fp8";
  q.calib.calib = calib;
  q.calib.cache = calib_cache;
  q.calib.calibrator = calibrator;
  q.calib.batches = calib_batches;
  q.calib.batch = calib_batch;
  if (!q.int8 && !q.fp8 && !calib_cache.empty()) throw Error("calib_cache applies to int8 or fp8 builds");
  for (const auto& kv : layer_precision) q.layer_precision.push_back(kv.first + "=" + kv.second);
  nb::gil_scoped_release unlocked;
  return PyEngine{std::make_shared<Engine>(cli::build_model(onnx, b, q, threads))};
}

RgbImage image_arg(const nb::object& o) {
  if (nb::isinstance<nb::bytes>(o)) {
    nb::bytes b = nb::cast<nb::bytes>(o);
    return decode_rgb(std::string(b.c_str(), b.size()), "<bytes>");
  }
  const std::string path = nb::cast<std::string>(nb::str(o));
  return decode_rgb(read_file(path, "image"), path);
}

std::string image_bytes(const nb::object& o, std::string* name) {
  if (nb::isinstance<nb::bytes>(o)) {
    nb::bytes b = nb::cast<nb::bytes>(o);
    *name = "<bytes>";
    return std::string(b.c_str(), b.size());
  }
  *name = nb::cast<std::string>(nb::str(o));
  return read_file(*name, "image");
}

nb::list classify(PySession& s, const nb::object& image, int top, int size, const std::vector<std::string>& labels) {
  const Engine& e = *s.engine;
  if (e.graph.inputs.size() != 1) throw Error("classify needs an engine with one input, this one has " + std::to_string(e.graph.inputs.size()));
  std::string name;
  const std::string bytes = image_bytes(image, &name);
  HostTensor x = decode_image(bytes, name, e.graph.value(e.graph.inputs[0]).name, size);
  std::vector<ClassScore> scores;
  {
    nb::gil_scoped_release unlocked;
    std::lock_guard<std::mutex> lock(s.mu);
    const auto out = s.session->run({x});
    scores = top_classes(out.at(0), static_cast<size_t>(std::max(top, 0)), labels);
  }
  nb::list l;
  for (const auto& c : scores) l.append(nb::make_tuple(c.index, c.probability, c.label));
  return l;
}

nb::list detect(PySession& s, const std::vector<nb::object>& images, float score_thr, float mask_thr, int long_edge, int short_edge,
                int size_divisor) {
  const Engine& e = *s.engine;
  if (e.graph.inputs.size() != 1) throw Error("detect needs an engine with one input (the image batch), this one has " + std::to_string(e.graph.inputs.size()));
  std::vector<RgbImage> decoded;
  for (const auto& o : images) decoded.push_back(image_arg(o));
  DetPreprocessOptions po;
  po.long_edge = long_edge;
  po.short_edge = short_edge;
  po.size_divisor = size_divisor;
  std::vector<std::string> out_names;
  for (int v : e.graph.outputs) out_names.push_back(e.graph.value(v).name);
  std::vector<std::vector<Detection>> dets;
  std::vector<DetImageMeta> metas;
  int64_t nan_boxes = 0;
  {
    nb::gil_scoped_release unlocked;
    HostTensor x = preprocess_detection(decoded, e.graph.value(e.graph.inputs[0]).name, po, &metas);
    std::lock_guard<std::mutex> lock(s.mu);
    const auto out = s.session->run({x});
    dets = decode_detections(out, out_names, metas, score_thr, mask_thr, &nan_boxes);
  }
  nb::list per_image;
  for (size_t i = 0; i < dets.size(); ++i) {
    nb::list l;
    for (const Detection& d : dets[i]) {
      nb::dict j;
      j["box"] = nb::make_tuple(d.x0, d.y0, d.x1, d.y1);
      j["score"] = d.score;
      j["label"] = d.label;
      if (!d.mask.empty()) {
        nb::dict rle;
        rle["size"] = nb::make_tuple(metas[i].ori_h, metas[i].ori_w);
        rle["counts"] = coco_rle(d.mask);
        j["mask"] = rle;
        j["mask_area"] = d.mask.area();
      } else {
        j["mask"] = nb::none();
      }
      l.append(j);
    }
    per_image.append(l);
  }
  if (nan_boxes) {
    nb::module_ warnings = nb::module_::import_("warnings");
    warnings.attr("warn")(std::to_string(nan_boxes) + " detection(s) with NaN box coordinates left out (the engine's dets output holds NaN)");
  }
  return per_image;
}

}  // namespace
}  // namespace unirt::py

NB_MODULE(_unirt, m) {
  using namespace unirt;
  using namespace unirt::py;
  m.doc() = "unirt's native core: engines, sessions, classify/detect host side (use the unirt package)";
  nb::exception<Error>(m, "Error", PyExc_RuntimeError);
  m.attr("__version__") = kUnirtVersion;
  m.def("cuda_available", [] {
    std::string why;
    const bool ok = cuda_backend_available(&why);
    return nb::make_tuple(ok, why);
  }, "(usable, why not): whether this build has CUDA and a GPU is usable");

  nb::class_<PyEngine>(m, "Engine")
      .def_static("load", [](const std::string& path) { return PyEngine{std::make_shared<Engine>(load_engine(path))}; }, "path"_a,
                  "an engine file written by Engine.save or `unirt build`")
      .def("save", [](const PyEngine& pe, const std::string& path) { save_engine(*pe.e, path); }, "path"_a)
      .def_prop_ro("inputs", [](const PyEngine& pe) { return tensor_infos(*pe.e, pe.e->graph.inputs); })
      .def_prop_ro("outputs", [](const PyEngine& pe) { return tensor_infos(*pe.e, pe.e->graph.outputs); })
      .def_prop_ro("backend", [](const PyEngine& pe) { return pe.e->options.backend; })
      .def_prop_ro("precision", [](const PyEngine& pe) { return std::string(precision_name(pe.e->options.precision)); })
      .def_prop_ro("quantization", [](const PyEngine& pe) { return std::string(quant_mode_name(pe.e->options.quantization.mode)); })
      .def_prop_ro("source", [](const PyEngine& pe) { return pe.e->source; })
      .def_prop_ro("metadata", [](const PyEngine& pe) { return pe.e->graph.metadata; })
      .def_prop_ro("version", [](const PyEngine& pe) { return pe.e->unirt_version; })
      .def_prop_ro("tactics", [](const PyEngine& pe) { return pe.e->tactics; })
      .def("random_weights_note", [](const PyEngine& pe, const std::string& what) { return random_weights_note(*pe.e, what.c_str()); },
           "what"_a)
      .def("random_inputs", [](const PyEngine& pe, const nb::object& shapes, uint32_t seed) {
             nb::dict d;
             for (auto& t : cli::random_inputs(*pe.e, shapes_arg(shapes, "shapes"), seed)) {
               const std::string name = t.name;
               d[name.c_str()] = to_numpy(std::move(t));
             }
             return d;
           }, "shapes"_a.none() = nb::none(), "seed"_a = 0,
           "normal(0, 1) inputs as `unirt run --shapes ... --seed` makes them (profile opt shapes by default)");

  nb::class_<PySession>(m, "Session")
      .def("__init__", [](PySession* self, const PyEngine& e, const std::string& backend, int threads, bool cuda_graphs) {
             auto s = make_session(e, backend, threads, cuda_graphs);
             new (self) PySession();
             self->engine = std::move(s->engine);
             self->session = std::move(s->session);
           }, "engine"_a, "backend"_a = "", "threads"_a = 0, "cuda_graphs"_a = true)
      .def("run_host", &run_host, "feed"_a, "numpy arrays by input name -> numpy arrays by output name")
      .def("run_device", &run_device, "inputs"_a, "outputs"_a, "stream"_a,
           "device arrays in graph order, outputs preallocated; returns the outputs' actual shapes")
      .def("output_shapes", [](PySession& s, const std::vector<std::vector<int64_t>>& shapes) {
             std::lock_guard<std::mutex> lock(s.mu);
             return s.session->output_shapes(shapes);
           }, "input_shapes"_a, "output buffer shapes for these input shapes, graph order (upper bounds for data-dependent sizes)")
      .def("classify", &classify, "image"_a, "top"_a, "size"_a, "labels"_a)
      .def("detect", &detect, "images"_a, "score_thr"_a, "mask_thr"_a, "long_edge"_a, "short_edge"_a, "size_divisor"_a)
      .def_prop_ro("backend", [](PySession& s) { return s.session->backend().name(); })
      .def_prop_ro("device_stream", [](PySession& s) { return reinterpret_cast<uintptr_t>(s.session->backend().context().stream); });

  m.def("build", &build, "onnx"_a, "precision"_a, "backend"_a, "min_shapes"_a.none(), "opt_shapes"_a.none(), "max_shapes"_a.none(), "fuse"_a, "layout"_a,
        "calib"_a, "calib_cache"_a, "calibrator"_a, "calib_batches"_a, "calib_batch"_a, "layer_precision"_a, "threads"_a);
}
