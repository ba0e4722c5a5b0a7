// Engine file: "UNIRTENG", u32 format version, u64 payload length, payload, u64 FNV-1a checksum of
// the payload. The payload holds a JSON header (build options, pass reports) and the graph in a
// compact binary form (symbolic dims as expression trees, constants as raw bytes).
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "onnx/importer.h"
#include "passes/shape_inference.h"
#include "runtime/engine.h"
#include "ir/file.h"

namespace unirt {

// 2: canonical symbolic dims (sums, products, n-ary max/min) with symbol ranges; shape guards.
// 3: data-dependent sizes (Graph::data_dims).
const uint32_t kEngineFormatVersion = 3;
const char* const kUnirtVersion = "0.1.0";
const char* const kEngineMagic = "UNIRTENG";

namespace {

uint64_t fnv1a(const char* p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<uint8_t>(p[i])) * 1099511628211ull;
  return h;
}

constexpr int64_t kMaxDimConst = int64_t{1} << 40;

class Writer {
 public:
  template <typename T> void pod(T v) { buf_.append(reinterpret_cast<const char*>(&v), sizeof(T)); }
  void str(const std::string& s) {
    pod<uint64_t>(s.size());
    buf_.append(s);
  }
  void bytes(const std::vector<uint8_t>& b) {
    pod<uint64_t>(b.size());
    buf_.append(reinterpret_cast<const char*>(b.data()), b.size());
  }
  void ints(const std::vector<int64_t>& v) {
    pod<uint64_t>(v.size());
    for (auto x : v) pod(x);
  }
  void dim(const Dim& d) {
    pod<uint8_t>(static_cast<uint8_t>(d.op()));
    switch (d.op()) {
      case Dim::Op::Const:
        // The loader refuses larger constants as damage; refuse to write them instead.
        if (d.value() > kMaxDimConst || d.value() < -kMaxDimConst)
          throw Error("cannot save the engine: a dimension constant " + std::to_string(d.value()) + " is beyond +-2^40");
        pod<int64_t>(d.value());
        break;
      case Dim::Op::Sym:
        str(d.symbol_name());
        pod<int64_t>(d.range().lo);
        pod<int64_t>(d.range().hi);
        break;
      case Dim::Op::Sum:
        pod<int64_t>(d.sum_constant());
        pod<uint64_t>(d.sum_terms().size());
        for (const auto& t : d.sum_terms()) {
          pod<int64_t>(t.second);
          dim(t.first);
        }
        break;
      default:
        pod<uint64_t>(d.args().size());
        for (const Dim& a : d.args()) dim(a);
    }
  }
  void dims(const std::vector<Dim>& v) {
    pod<uint64_t>(v.size());
    for (const auto& d : v) dim(d);
  }
  void tensor(const TensorData& t) {
    pod<int32_t>(static_cast<int32_t>(t.dtype));
    ints(t.shape);
    bytes(t.bytes);
  }
  std::string& buf() { return buf_; }

 private:
  std::string buf_;
};

class Reader {
 public:
  Reader(const std::string& b, size_t pos, size_t end, const std::string& what) : b_(b), pos_(pos), end_(end), what_(what) {}
  template <typename T> T pod() {
    need(sizeof(T), "value");
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  uint64_t count(uint64_t elem_size) {
    uint64_t n = pod<uint64_t>();
    if (elem_size && n > (end_ - pos_) / elem_size) fail("a length field (" + std::to_string(n) + ") runs past the end");
    return n;
  }
  std::string str() {
    uint64_t n = count(1);
    std::string s = b_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  std::vector<uint8_t> bytes() {
    uint64_t n = count(1);
    std::vector<uint8_t> v(b_.begin() + pos_, b_.begin() + pos_ + n);
    pos_ += n;
    return v;
  }
  std::vector<int64_t> ints() {
    uint64_t n = count(8);
    std::vector<int64_t> v(n);
    for (auto& x : v) x = pod<int64_t>();
    return v;
  }
  Dim dim(int depth = 0) {
    if (depth > 256) fail("symbolic dimension nested too deeply");
    const auto op = static_cast<Dim::Op>(pod<uint8_t>());
    if (op == Dim::Op::Const) {
      // Sizes and the offsets shape arithmetic adds to them stay far below this; a larger value
      // is damage, and would let the folding below overflow.
      const int64_t v = pod<int64_t>();
      if (v > kMaxDimConst || v < -kMaxDimConst) fail("dimension constant " + std::to_string(v) + " out of range");
      return Dim(v);
    }
    if (op == Dim::Op::Sym) {
      std::string name = str();
      const int64_t lo = pod<int64_t>(), hi = pod<int64_t>();
      if (name.empty() || lo > hi) fail("symbol '" + name + "' with range " + std::to_string(lo) + ".." + std::to_string(hi));
      return Dim::symbol(name, lo, hi);
    }
    if (op > Dim::Op::Min) fail("bad symbolic dimension tag " + std::to_string(static_cast<int>(op)));
    if (op == Dim::Op::Sum) {
      const int64_t c = pod<int64_t>();
      if (c > kMaxDimConst || c < -kMaxDimConst) fail("dimension constant " + std::to_string(c) + " out of range");
      const uint64_t n = count(9);
      if (n == 0) fail("empty symbolic sum");
      Dim s(c);
      for (uint64_t i = 0; i < n; ++i) {
        const int64_t k = pod<int64_t>();
        if (k > kMaxDimConst || k < -kMaxDimConst) fail("dimension coefficient " + std::to_string(k) + " out of range");
        s = s + Dim(k) * dim(depth + 1);
      }
      return s;
    }
    const uint64_t n = count(1);
    const bool binary = op == Dim::Op::FloorDiv || op == Dim::Op::Mod;
    if (binary ? n != 2 : n < 2) fail("symbolic dimension with " + std::to_string(n) + " operands");
    std::vector<Dim> a;
    for (uint64_t i = 0; i < n; ++i) a.push_back(dim(depth + 1));
    if (binary && a[1].is_const() && a[1].value() <= 0) fail("symbolic dimension divides by " + std::to_string(a[1].value()));
    Dim r = a[0];
    for (size_t i = 1; i < a.size(); ++i) {
      switch (op) {
        case Dim::Op::Prod: r = r * a[i]; break;
        case Dim::Op::FloorDiv: r = floordiv(r, a[i]); break;
        case Dim::Op::Mod: r = mod(r, a[i]); break;
        case Dim::Op::Max: r = dmax(r, a[i]); break;
        default: r = dmin(r, a[i]);
      }
    }
    return r;
  }
  std::vector<Dim> dims() {
    uint64_t n = count(1);
    std::vector<Dim> v;
    for (uint64_t i = 0; i < n; ++i) v.push_back(dim());
    return v;
  }
  TensorData tensor() {
    TensorData t;
    int32_t code = pod<int32_t>();
    if (!dtype_supported(code)) fail("bad tensor type " + std::to_string(code));
    t.dtype = static_cast<DType>(code);
    t.shape = ints();
    t.bytes = bytes();
    // A shape that does not match the stored bytes is damage; a real tensor above the limit is not.
    int64_t n = 1;
    bool ok = t.shape.size() <= 64;
    for (int64_t d : t.shape) ok = ok && d >= 0 && !__builtin_mul_overflow(n, d, &n);
    const int64_t es = static_cast<int64_t>(dtype_size(t.dtype));
    if (!ok || n > std::numeric_limits<int64_t>::max() / es || t.bytes.size() != static_cast<size_t>(n * es))
      fail("tensor size does not match its shape");
    checked_bytes(t.shape, t.dtype, what_ + ": a constant");
    return t;
  }
  [[noreturn]] void fail(const std::string& m) const {
    throw Error(what_ + ": corrupted engine file (" + m + " in the " + section_ + " section at byte " + std::to_string(pos_) + ")");
  }
  void section(const std::string& s) { section_ = s; }
  size_t pos() const { return pos_; }

 private:
  void need(size_t n, const char* what) const {
    if (pos_ + n > end_) fail(std::string("truncated while reading a ") + what);
  }
  const std::string& b_;
  size_t pos_, end_;
  std::string what_;
  std::string section_ = "header";
};

enum AttrTag : uint8_t { kInt, kFloat, kString, kInts, kFloats, kStrings, kTensor };

void write_attr(Writer& w, const AttrValue& a) {
  std::visit([&](const auto& v) {
    using T = std::decay_t<decltype(v)>;
    if constexpr (std::is_same_v<T, int64_t>) { w.pod<uint8_t>(kInt); w.pod(v); }
    else if constexpr (std::is_same_v<T, float>) { w.pod<uint8_t>(kFloat); w.pod(v); }
    else if constexpr (std::is_same_v<T, std::string>) { w.pod<uint8_t>(kString); w.str(v); }
    else if constexpr (std::is_same_v<T, std::vector<int64_t>>) { w.pod<uint8_t>(kInts); w.ints(v); }
    else if constexpr (std::is_same_v<T, std::vector<float>>) {
      w.pod<uint8_t>(kFloats);
      w.pod<uint64_t>(v.size());
      for (float f : v) w.pod(f);
    } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      w.pod<uint8_t>(kStrings);
      w.pod<uint64_t>(v.size());
      for (const auto& s : v) w.str(s);
    } else { w.pod<uint8_t>(kTensor); w.tensor(v); }
  }, a);
}

AttrValue read_attr(Reader& r) {
  switch (r.pod<uint8_t>()) {
    case kInt: return r.pod<int64_t>();
    case kFloat: return r.pod<float>();
    case kString: return r.str();
    case kInts: return r.ints();
    case kFloats: {
      uint64_t n = r.count(4);
      std::vector<float> v(n);
      for (auto& f : v) f = r.pod<float>();
      return v;
    }
    case kStrings: {
      uint64_t n = r.count(8);
      std::vector<std::string> v;
      for (uint64_t i = 0; i < n; ++i) v.push_back(r.str());
      return v;
    }
    case kTensor: return r.tensor();
  }
  r.fail("bad attribute tag");
}

nlohmann::json header_of(const Engine& e) {
  nlohmann::json h;
  h["unirt_version"] = e.unirt_version.empty() ? kUnirtVersion : e.unirt_version;
  h["precision"] = precision_name(e.options.precision);
  h["backend"] = e.options.backend;
  h["fuse"] = e.options.fuse;
  h["layout"] = e.options.layout;
  if (e.options.quantization.mode != QuantMode::None)
    // The ranges too: an engine specialised at run time (is_deferred) runs its passes again.
    h["quantization"] = {{"mode", quant_mode_name(e.options.quantization.mode)},
                         {"layer_precision", e.options.quantization.layer_precision},
                         {"amax", e.options.quantization.amax}};
  h["profile"] = {{"min", e.options.profile.min}, {"opt", e.options.profile.opt}, {"max", e.options.profile.max}};
  h["source"] = e.source;
  h["tactics"] = e.tactics;
  h["shape_inputs"] = e.shape_inputs;
  h["specialize_per_shape"] = e.specialize_per_shape;
  h["build_ms"] = e.build_ms;
  h["created"] = e.created ? e.created : static_cast<int64_t>(std::time(nullptr));
  nlohmann::json passes = nlohmann::json::array();
  for (const auto& p : e.passes) passes.push_back({{"pass", p.pass}, {"changes", p.changes}, {"ms", p.ms}, {"details", p.details}});
  h["passes"] = passes;
  if (!e.graph.metadata.empty()) h["metadata"] = e.graph.metadata;
  return h;
}

Precision precision_from(const std::string& s) {
  if (s == "fp32") return Precision::FP32;
  if (s == "fp16") return Precision::FP16;
  if (s == "int8") return Precision::INT8;
  if (s == "fp8") return Precision::FP8;
  throw Error("engine header: unknown precision '" + s + "'");
}

}  // namespace

void save_engine(const Engine& e, const std::string& path) {
  Writer w;
  w.str(header_of(e).dump());
  const Graph& g = e.graph;
  w.str(g.name);
  w.pod<int64_t>(g.opset);
  w.str(g.producer);
  w.pod<uint64_t>(g.values.size());
  for (const auto& v : g.values) {
    w.str(v.name);
    w.pod<int32_t>(static_cast<int32_t>(v.dtype));
    w.pod<uint8_t>(v.has_shape);
    w.dims(v.shape);
    w.pod<uint8_t>(v.sym_value.has_value());
    if (v.sym_value) w.dims(*v.sym_value);
    w.pod<uint8_t>(v.data != nullptr);
    if (v.data) w.tensor(*v.data);
  }
  w.pod<uint64_t>(g.nodes.size());
  for (const auto& n : g.nodes) {
    w.str(n.name);
    w.str(n.op_type);
    w.str(n.domain);
    w.ints(std::vector<int64_t>(n.inputs.begin(), n.inputs.end()));
    w.ints(std::vector<int64_t>(n.outputs.begin(), n.outputs.end()));
    w.pod<uint64_t>(n.attrs.size());
    for (const auto& kv : n.attrs) {
      w.str(kv.first);
      write_attr(w, kv.second);
    }
    w.pod<uint64_t>(n.notes.size());
    for (const auto& s : n.notes) w.str(s);
  }
  w.ints(std::vector<int64_t>(g.inputs.begin(), g.inputs.end()));
  w.ints(std::vector<int64_t>(g.outputs.begin(), g.outputs.end()));
  w.pod<uint64_t>(g.guards.size());
  for (const auto& gd : g.guards) {
    w.str(gd.node);
    w.str(gd.check);
    w.dim(gd.lhs);
    w.dim(gd.rhs);
  }
  w.pod<uint64_t>(g.data_dims.size());
  for (const auto& d : g.data_dims) {
    w.str(d.symbol);
    w.str(d.node);
    w.dim(d.bound);
  }

  const std::string bytes = frame_engine_payload(w.buf());
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw Error("cannot write engine file '" + path + "'");
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw Error("failed writing engine file '" + path + "'");
}

std::string frame_engine_payload(const std::string& payload) {
  std::string b = kEngineMagic;
  b.append(reinterpret_cast<const char*>(&kEngineFormatVersion), 4);
  const uint64_t len = payload.size(), sum = fnv1a(payload.data(), payload.size());
  b.append(reinterpret_cast<const char*>(&len), 8);
  b += payload;
  b.append(reinterpret_cast<const char*>(&sum), 8);
  return b;
}

std::string engine_payload(const std::string& b) {
  uint64_t len = 0;
  if (b.size() >= 20) std::memcpy(&len, b.data() + 12, 8);
  if (b.size() < 28 || b.compare(0, 8, kEngineMagic) != 0 || len != b.size() - 28) throw Error("not a framed engine file");
  return b.substr(20, len);
}

static Engine parse_payload(const std::string& b, uint64_t len, const std::string& what, bool validate);
static void validate_loaded_graph(Engine& e, const std::string& what);

Engine load_engine_bytes(const std::string& b, const std::string& what, bool validate) {
  if (b.size() < 8 || b.compare(0, 8, kEngineMagic) != 0) throw Error(what + ": not a unirt engine file (bad magic)");
  if (b.size() < 20) throw Error(what + ": engine file is truncated (" + std::to_string(b.size()) + " bytes, header incomplete)");
  uint32_t version;
  std::memcpy(&version, b.data() + 8, 4);
  if (version != kEngineFormatVersion)
    throw Error(what + ": engine format version " + std::to_string(version) + ", this unirt reads version " +
                std::to_string(kEngineFormatVersion) + ": rebuild the engine with 'unirt build'");
  uint64_t len;
  std::memcpy(&len, b.data() + 12, 8);
  if (len > b.size() - 20)
    throw Error(what + ": engine file is truncated at byte " + std::to_string(b.size()) + ", inside the payload (header + graph, " +
                std::to_string(len) + " bytes from byte 20)");
  if (b.size() - 20 - len < 8)
    throw Error(what + ": engine file is truncated at byte " + std::to_string(b.size()) + ", inside the checksum (8 bytes from byte " +
                std::to_string(20 + len) + ")");
  if (b.size() != 20 + len + 8) throw Error(what + ": engine file has " + std::to_string(b.size() - 28 - len) + " trailing bytes");
  uint64_t sum;
  std::memcpy(&sum, b.data() + 20 + len, 8);
  const uint64_t actual = fnv1a(b.data() + 20, len);
  if (actual != sum) {
    char msg[96];
    std::snprintf(msg, sizeof msg, "checksum mismatch: stored %016llx, contents give %016llx", static_cast<unsigned long long>(sum),
                  static_cast<unsigned long long>(actual));
    throw Error(what + ": engine file is corrupted (" + msg + ")");
  }

  try {
    return parse_payload(b, len, what, validate);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& ex) {  // e.g. symbolic arithmetic rejecting damaged dims
    throw Error(what + ": corrupted engine file (" + ex.what() + ")");
  }
}

static Engine parse_payload(const std::string& b, uint64_t len, const std::string& what, bool validate) {
  Reader r(b, 20, 20 + len, what);
  Engine e;
  nlohmann::json h;
  // Integers are read strictly: nlohmann turns a float into an integer with a plain cast, undefined
  // outside the target's range (a header saying 3e27), so an integer field must hold a JSON integer
  // within its range.
  auto integer = [&](const nlohmann::json& v, const std::string& field, int64_t lo, int64_t hi) -> int64_t {
    if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)))
      throw Error(what + ": corrupted engine header (" + field + " is " + v.dump() + ", expected an integer)");
    const int64_t x = v.get<int64_t>();
    if (x < lo || x > hi)
      throw Error(what + ": corrupted engine header (" + field + " is " + std::to_string(x) + ", outside " + std::to_string(lo) + ".." +
                  std::to_string(hi) + ")");
    return x;
  };
  auto shapes = [&](const nlohmann::json& v, const std::string& field) {
    std::map<std::string, std::vector<int64_t>> out;
    for (const auto& kv : v.items()) {
      std::vector<int64_t>& dims = out[kv.key()];
      for (const auto& d : kv.value()) dims.push_back(integer(d, field + " '" + kv.key() + "'", 0, resource_limits().max_dim));
    }
    return out;
  };
  try {
    h = nlohmann::json::parse(r.str());
    e.options.precision = precision_from(h.at("precision"));
    e.options.backend = h.at("backend");
    e.options.fuse = h.at("fuse");
    e.options.layout = h.value("layout", std::string("auto"));
    if (h.contains("quantization")) {  // what built it; the quantized layers are in the graph itself
      const std::string mode = h.at("quantization").at("mode");
      if (mode != "int8" && mode != "fp8") throw Error("quantization mode '" + mode + "' (expected int8 or fp8)");
      e.options.quantization.mode = mode == "int8" ? QuantMode::Int8 : QuantMode::Fp8;
      e.options.quantization.layer_precision = h.at("quantization").at("layer_precision").get<std::map<std::string, std::string>>();
      e.options.quantization.amax = h.at("quantization").value("amax", std::map<std::string, float>{});
    }
    e.options.profile.min = shapes(h.at("profile").at("min"), "min shape");
    e.options.profile.opt = shapes(h.at("profile").at("opt"), "opt shape");
    e.options.profile.max = shapes(h.at("profile").at("max"), "max shape");
    e.source = h.at("source");
    e.tactics = h.at("tactics").get<std::map<std::string, std::string>>();
    e.shape_inputs = h.value("shape_inputs", std::vector<std::string>{});
    e.specialize_per_shape = h.value("specialize_per_shape", false);
    e.build_ms = h.at("build_ms");
    e.created = integer(h.at("created"), "created", INT64_MIN, INT64_MAX);
    e.unirt_version = h.at("unirt_version");
    e.graph.metadata = h.value("metadata", std::map<std::string, std::string>{});
    for (const auto& p : h.at("passes"))
      e.passes.push_back({p.at("pass"), static_cast<int>(integer(p.at("changes"), "pass changes", 0, INT32_MAX)), p.at("ms"),
                          p.at("details").get<std::vector<std::string>>()});
  } catch (const nlohmann::json::exception& ex) {
    throw Error(what + ": corrupted engine header (" + ex.what() + ")");
  }
  Graph& g = e.graph;
  r.section("graph");
  g.name = r.str();
  g.opset = r.pod<int64_t>();
  g.producer = r.str();
  r.section("values");
  const uint64_t nv = r.count(8);
  for (uint64_t i = 0; i < nv; ++i) {
    std::string name = r.str();
    int32_t dt = r.pod<int32_t>();
    if (dt != 0 && !dtype_supported(dt)) r.fail("value '" + name + "' has unknown type " + std::to_string(dt));
    if (g.find_value(name) >= 0) r.fail("value '" + name + "' appears twice");
    int id = g.add_value(name, static_cast<DType>(dt));
    Value& v = g.value(id);
    v.has_shape = r.pod<uint8_t>();
    v.shape = r.dims();
    if (r.pod<uint8_t>()) v.sym_value = r.dims();
    if (r.pod<uint8_t>()) v.data = std::make_shared<TensorData>(r.tensor());
  }
  auto ids = [&](const std::vector<int64_t>& v) {
    std::vector<int> out;
    for (auto x : v) {
      if (x < -1 || x >= static_cast<int64_t>(nv)) r.fail("value index out of range");
      out.push_back(static_cast<int>(x));
    }
    return out;
  };
  r.section("nodes");
  const uint64_t nn = r.count(8);
  for (uint64_t i = 0; i < nn; ++i) {
    Node n;
    n.name = r.str();
    n.op_type = r.str();
    n.domain = r.str();
    n.inputs = ids(r.ints());
    n.outputs = ids(r.ints());
    const uint64_t na = r.count(2);
    for (uint64_t k = 0; k < na; ++k) {
      std::string key = r.str();
      n.attrs[key] = read_attr(r);
    }
    const uint64_t nnotes = r.count(8);
    for (uint64_t k = 0; k < nnotes; ++k) n.notes.push_back(r.str());
    g.add_node(std::move(n));
  }
  r.section("graph inputs/outputs");
  g.inputs = ids(r.ints());
  g.outputs = ids(r.ints());
  for (int id : g.inputs)
    if (id < 0) r.fail("missing graph input");
  for (int id : g.outputs)
    if (id < 0) r.fail("missing graph output");
  r.section("shape guards");
  const uint64_t ng = r.count(2);
  for (uint64_t i = 0; i < ng; ++i) {
    ShapeGuard gd;
    gd.node = r.str();
    gd.check = r.str();
    gd.lhs = r.dim();
    gd.rhs = r.dim();
    g.guards.push_back(std::move(gd));
  }
  r.section("data-dependent sizes");
  const uint64_t nd = r.count(2);
  for (uint64_t i = 0; i < nd; ++i) {
    DataDim d;
    d.symbol = r.str();
    d.node = r.str();
    d.bound = r.dim();
    bool found = false;
    for (const auto& n : g.nodes) found |= n.name == d.node;
    if (!found) r.fail("data-dependent size '" + d.symbol + "' names no node ('" + d.node + "')");
    g.data_dims.push_back(std::move(d));
  }
  if (r.pos() != 20 + len) r.fail(std::to_string(20 + len - r.pos()) + " unread bytes after the graph");
  if (validate) validate_loaded_graph(e, what);
  return e;
}

// An engine's graph is checked as strictly as an import: every node a known op with the arity its
// kernels rely on, reading values that exist when it runs (nodes run in file order), writing values
// nothing else writes; constants that match their declared shapes. Then shape inference runs again
// over the whole graph and recomputes every shape, shape value, guard and data-dependent size, so
// a damaged shape or attribute is an error naming the node rather than something a kernel trusts.
static void validate_loaded_graph(Engine& e, const std::string& what) {
  Graph& g = e.graph;
  auto bad = [&](const std::string& m) { throw Error(what + ": invalid engine graph: " + m); };
  if (static_cast<int64_t>(g.nodes.size()) > resource_limits().max_nodes)
    bad(std::to_string(g.nodes.size()) + " nodes, above the limit of " + std::to_string(resource_limits().max_nodes));
  const size_t nv = g.values.size();
  std::vector<char> available(nv, 0), is_input(nv, 0);
  for (size_t v = 0; v < nv; ++v) {
    const Value& val = g.value(static_cast<int>(v));
    if (!val.data) continue;
    if (val.data->dtype != val.dtype)
      bad("constant '" + val.name + "' holds " + dtype_name(val.data->dtype) + " data but is declared " + dtype_name(val.dtype));
    if (!val.has_shape || !shape_is_const(val.shape) || shape_values(val.shape) != val.data->shape)
      bad("constant '" + val.name + "' is declared " + shape_str(val.shape) + " but holds " + dims_text(val.data->shape));
    available[v] = 1;
  }
  for (int id : g.inputs) {
    const Value& val = g.value(id);
    if (val.data || is_input[id]) bad("graph input '" + val.name + "' is a constant or listed twice");
    if (!val.has_shape) bad("graph input '" + val.name + "' has no shape");
    is_input[id] = available[id] = 1;
  }
  for (const Node& n : g.nodes) {
    try {
      check_node_supported(n, g.opset, true);
    } catch (const Error& err) {
      bad(err.what());
    }
    for (int v : n.inputs)
      if (v >= 0 && !available[v])
        bad(n.describe() + " reads '" + g.value(v).name + "' before any node writes it (nodes out of order, or a cycle)");
    for (int v : n.outputs) {
      if (v < 0) continue;
      if (available[v])
        bad(n.describe() + " writes '" + g.value(v).name + "', which is " +
            (g.value(v).data ? "a constant" : is_input[v] ? "a graph input" : "written by an earlier node"));
      available[v] = 1;
    }
  }
  for (int id : g.outputs)
    if (!available[id]) bad("graph output '" + g.value(id).name + "' is written by no node");
  if (is_deferred(e)) return;  // the imported graph: shapes are inferred when it is specialised
  for (auto& v : g.values)
    if (!v.data && v.producer >= 0) v.has_shape = false, v.sym_value.reset();
  try {
    infer_shapes(g);
  } catch (const Error& err) {
    bad(err.what());
  }
}

Engine load_engine(const std::string& path) {
  return load_engine_bytes(read_file(path, "engine file"), path);
}

}  // namespace unirt
