#include "server.h"

#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <tuple>

#include "classification.h"
#include "cli.h"
#include "detection.h"
#include "image.h"
#include "ir/half.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace unirt {

namespace {

const std::pair<const char*, DType> kTypes[] = {{"FP32", DType::Float32}, {"FP16", DType::Float16}, {"FP64", DType::Float64},
                                                 {"INT64", DType::Int64},  {"INT32", DType::Int32},  {"INT8", DType::Int8},
                                                 {"UINT8", DType::Uint8},  {"BOOL", DType::Bool}};

// Flattens nested JSON arrays into `out` (KServe allows both flat and nested data).
void flatten(const json& j, std::vector<const json*>& out) {
  if (j.is_array())
    for (const auto& e : j) flatten(e, out);
  else
    out.push_back(&j);
}

void put_element(HostTensor& t, size_t i, const json& v, const std::string& what) {
  if (t.dtype == DType::Bool) {
    if (!v.is_boolean()) throw Error(what + " element " + std::to_string(i) + " is not a boolean");
    t.bytes[i] = v.get<bool>();
    return;
  }
  if (!v.is_number()) throw Error(what + " element " + std::to_string(i) + " is not a number");
  const double d = v.get<double>();
  switch (t.dtype) {
    case DType::Float32: reinterpret_cast<float*>(t.bytes.data())[i] = static_cast<float>(d); break;
    case DType::Float16: reinterpret_cast<uint16_t*>(t.bytes.data())[i] = float_to_half(static_cast<float>(d)); break;
    case DType::Float64: reinterpret_cast<double*>(t.bytes.data())[i] = d; break;
    case DType::Int64: reinterpret_cast<int64_t*>(t.bytes.data())[i] = v.get<int64_t>(); break;
    case DType::Int32: reinterpret_cast<int32_t*>(t.bytes.data())[i] = v.get<int32_t>(); break;
    case DType::Int8: reinterpret_cast<int8_t*>(t.bytes.data())[i] = static_cast<int8_t>(v.get<int>()); break;
    case DType::Uint8: t.bytes[i] = static_cast<uint8_t>(v.get<int>()); break;
    default: throw Error(what + ": unsupported type");
  }
}

json element_json(const HostTensor& t, size_t i) {
  switch (t.dtype) {
    case DType::Float32: return reinterpret_cast<const float*>(t.bytes.data())[i];
    case DType::Float16: return half_to_float(reinterpret_cast<const uint16_t*>(t.bytes.data())[i]);
    case DType::Float64: return reinterpret_cast<const double*>(t.bytes.data())[i];
    case DType::Int64: return reinterpret_cast<const int64_t*>(t.bytes.data())[i];
    case DType::Int32: return reinterpret_cast<const int32_t*>(t.bytes.data())[i];
    case DType::Int8: return static_cast<int>(reinterpret_cast<const int8_t*>(t.bytes.data())[i]);
    case DType::Uint8: return static_cast<int>(t.bytes[i]);
    case DType::Bool: return t.bytes[i] != 0;
    default: throw Error(std::string("output '") + t.name + "' has type " + dtype_name(t.dtype) + ", which KServe cannot carry");
  }
}

json tensor_metadata(const Engine& e, int id) {
  const Value& v = e.graph.value(id);
  json shape = json::array();
  for (const Dim& d : v.shape) shape.push_back(d.is_const() ? d.value() : -1);
  return {{"name", v.name}, {"datatype", kserve_datatype(v.dtype)}, {"shape", shape}};
}

void reply_error(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_content(json{{"error", message}}.dump(), "application/json");
}

const char* kIndexHtml = R"HTML(<!doctype html>
<html><head><meta charset="utf-8"><title>unirt serve</title>
<style>body{font-family:sans-serif;margin:2em;max-width:48em}table{border-collapse:collapse}td,th{padding:.2em .8em;border-bottom:1px solid #ddd}
#note{color:#a40}img{max-width:24em;display:block;margin:1em 0}</style></head>
<body><h1>unirt serve</h1>
<p>Models: <select id="model"></select></p>
<p><input type="file" id="file" accept="image/*"> <button id="go">Run</button></p>
<div style="position:relative;display:inline-block"><img id="preview" alt=""><canvas id="boxes" style="position:absolute;left:0;top:0"></canvas></div>
<p id="note"></p><table id="result"></table>
<script>
const sel = document.getElementById('model');
const kinds = {};
fetch('/v2/repository/index', {method: 'POST'}).then(r => r.json()).then(async ms => {
  for (const m of ms) {
    if (m.name in kinds) continue;
    const meta = await (await fetch('/v2/models/' + encodeURIComponent(m.name))).json();
    kinds[m.name] = meta.outputs.some(o => o.name === 'dets') ? 'detect' : 'classify';
    const o = document.createElement('option'); o.value = m.name; o.text = m.name + ' (' + kinds[m.name] + ')'; sel.add(o);
  }
});
document.getElementById('file').onchange = e => {
  document.getElementById('preview').src = URL.createObjectURL(e.target.files[0]);
};
document.getElementById('go').onclick = async () => {
  const f = document.getElementById('file').files[0];
  if (!f) return;
  const kind = kinds[sel.value];
  const r = await fetch('/v1/models/' + encodeURIComponent(sel.value) + '/' + kind, {method: 'POST', body: f});
  const j = await r.json();
  const t = document.getElementById('result');
  const img = document.getElementById('preview'), cv = document.getElementById('boxes');
  cv.width = img.width; cv.height = img.height;
  const g = cv.getContext('2d');
  t.innerHTML = '';
  document.getElementById('note').textContent = j.error || j.note || '';
  if (j.classes) {
    t.insertAdjacentHTML('beforeend', '<tr><th>probability</th><th>class</th><th>label</th></tr>');
    for (const c of j.classes)
      t.insertAdjacentHTML('beforeend', `<tr><td>${(100 * c.probability).toFixed(2)}%</td><td>${c.index}</td><td>${c.label}</td></tr>`);
  }
  if (j.detections) {
    const sx = img.width / j.width, sy = img.height / j.height;
    g.lineWidth = 2; g.font = '12px sans-serif';
    t.insertAdjacentHTML('beforeend', '<tr><th>score</th><th>class</th><th>box</th></tr>');
    for (const d of j.detections) {
      const [x0, y0, x1, y1] = d.box;
      g.strokeStyle = g.fillStyle = '#e33';
      g.strokeRect(x0 * sx, y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy);
      g.fillText(`${d.name || d.label} ${d.score.toFixed(2)}`, x0 * sx + 2, y0 * sy + 12);
      t.insertAdjacentHTML('beforeend', `<tr><td>${d.score.toFixed(3)}</td><td>${d.name || d.label}</td><td>${d.box.map(v => v.toFixed(1)).join(', ')}</td></tr>`);
    }
  }
};
</script></body></html>
)HTML";

}  // namespace

const char* kserve_datatype(DType t) {
  for (const auto& kv : kTypes)
    if (kv.second == t) return kv.first;
  throw Error(std::string("type ") + dtype_name(t) + " has no KServe datatype");
}

DType parse_kserve_datatype(const std::string& s, const std::string& what) {
  for (const auto& kv : kTypes)
    if (s == kv.first) return kv.second;
  throw Error(what + " has datatype '" + s + "' (FP32, FP16, FP64, INT64, INT32, INT8, UINT8 or BOOL)");
}

std::vector<std::pair<std::string, std::pair<std::string, std::string>>> scan_model_repository(const std::string& dir) {
  if (!fs::is_directory(dir)) throw Error("model repository '" + dir + "' is not a folder");
  std::vector<std::pair<std::string, std::pair<std::string, std::string>>> found;
  auto engine_in = [](const fs::path& d) {
    std::vector<fs::path> e;
    for (const auto& f : fs::directory_iterator(d))
      if (f.is_regular_file() && f.path().extension() == ".engine") e.push_back(f.path());
    std::sort(e.begin(), e.end());
    return e;
  };
  std::vector<fs::path> models;
  for (const auto& m : fs::directory_iterator(dir))
    if (m.is_directory()) models.push_back(m.path());
  std::sort(models.begin(), models.end());
  for (const auto& m : models) {
    const std::string name = m.filename().string();
    for (const auto& v : fs::directory_iterator(m)) {
      if (!v.is_directory()) continue;
      const std::string ver = v.path().filename().string();
      if (ver.empty() || !std::all_of(ver.begin(), ver.end(), ::isdigit)) continue;
      const auto e = engine_in(v.path());
      if (e.size() > 1) throw Error("model '" + name + "' version " + ver + " holds " + std::to_string(e.size()) + " .engine files; keep one");
      if (e.size() == 1) found.push_back({name, {ver, e[0].string()}});
    }
    const auto top = engine_in(m);
    if (top.size() > 1) throw Error("model folder '" + m.string() + "' holds several .engine files; give each a version folder");
    if (top.size() == 1) found.push_back({name, {"1", top[0].string()}});
  }
  return found;
}

InferenceServer::InferenceServer(ServerOptions o) : opts_(std::move(o)), http_(std::make_unique<httplib::Server>()) { routes(); }

InferenceServer::~InferenceServer() = default;

void InferenceServer::add_model(const std::string& name, const std::string& version, const std::string& engine_path) {
  if (name.empty() || name.find('/') != std::string::npos) throw Error("model name '" + name + "' must be non-empty and without '/'");
  if (models_[name].count(version)) throw Error("model '" + name + "' version " + version + " is given twice");
  auto m = std::make_unique<ServedModel>();
  m->name = name;
  m->version = version;
  m->path = engine_path;
  m->engine = std::make_shared<Engine>(load_engine(engine_path));
  std::vector<std::shared_ptr<ModelInstance>> inst;
  const std::string backend = m->engine->options.backend;
  SessionOptions so;
  so.threads = opts_.threads;
  // One plan (and CUDA graph) per batch size the batcher forms: keep them all.
  so.max_cached_plans = 512;
  inst.push_back(std::make_shared<ModelInstance>(m->engine, cli::make_backend(backend, opts_.threads), backend + ":0", so));
  m->batcher = std::make_unique<DynamicBatcher>(m->engine, std::move(inst), opts_.batching);
  if (opts_.warmup) {
    const auto t0 = std::chrono::steady_clock::now();
    const int shapes = m->batcher->warm_up();
    std::printf("model %s version %s: %d input shapes prepared in %.1f s\n", name.c_str(), version.c_str(), shapes,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  models_[name][version] = std::move(m);
}

bool InferenceServer::ready() const { return !stopping_ && !models_.empty(); }

ServedModel* InferenceServer::find(const std::string& name, const std::string& version, std::string* why) {
  auto it = models_.find(name);
  if (it == models_.end()) {
    std::string names;
    for (const auto& kv : models_) names += (names.empty() ? "" : ", ") + kv.first;
    *why = "unknown model '" + name + "' (serving: " + (names.empty() ? "none" : names) + ")";
    return nullptr;
  }
  if (version.empty()) {
    // The highest version number.
    ServedModel* best = nullptr;
    for (auto& kv : it->second)
      if (!best || std::stoll(kv.first) > std::stoll(best->version)) best = kv.second.get();
    return best;
  }
  auto v = it->second.find(version);
  if (v == it->second.end()) {
    *why = "model '" + name + "' has no version " + version;
    return nullptr;
  }
  return v->second.get();
}

std::vector<HostTensor> InferenceServer::parse_infer_request(const std::string& body, size_t header_length, const Engine& e,
                                                             json* request) {
  if (header_length > body.size())
    throw Error("Inference-Header-Content-Length is " + std::to_string(header_length) + " but the body holds " + std::to_string(body.size()) + " bytes");
  const size_t json_len = header_length ? header_length : body.size();
  json req;
  try {
    req = json::parse(body.begin(), body.begin() + static_cast<std::ptrdiff_t>(json_len));
  } catch (const json::exception& ex) {
    throw Error(std::string("the request is not valid JSON: ") + ex.what());
  }
  if (!req.is_object() || !req.contains("inputs") || !req["inputs"].is_array())
    throw Error("the request needs an \"inputs\" array (KServe v2 inference request)");
  size_t offset = json_len;
  std::vector<HostTensor> inputs;
  for (const auto& in : req["inputs"]) {
    if (!in.is_object() || !in.contains("name") || !in["name"].is_string()) throw Error("every input needs a \"name\"");
    const std::string name = in["name"];
    const std::string what = "input '" + name + "'";
    if (!in.contains("shape") || !in["shape"].is_array()) throw Error(what + " needs a \"shape\" array");
    if (!in.contains("datatype") || !in["datatype"].is_string()) throw Error(what + " needs a \"datatype\"");
    HostTensor t;
    t.name = name;
    t.dtype = parse_kserve_datatype(in["datatype"], what);
    for (const auto& d : in["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0) throw Error(what + " has a shape that is not a list of non-negative integers");
      t.shape.push_back(d.get<int64_t>());
    }
    // Refuse absurd shapes before allocating: the body must be able to hold them.
    const size_t bytes = checked_bytes(t.shape, t.dtype, what);
    const json* params = in.contains("parameters") && in["parameters"].is_object() ? &in["parameters"] : nullptr;
    if (params && params->contains("binary_data_size")) {
      const auto& bs = (*params)["binary_data_size"];
      if (!bs.is_number_integer() || bs.get<int64_t>() < 0) throw Error(what + ": binary_data_size is not a non-negative integer");
      const size_t n = bs.get<size_t>();
      if (n != bytes)
        throw Error(what + ": binary_data_size is " + std::to_string(n) + " bytes, its shape " + dims_text(t.shape) + " and datatype " +
                    kserve_datatype(t.dtype) + " need " + std::to_string(bytes));
      if (offset + n > body.size())
        throw Error(what + ": binary_data_size " + std::to_string(n) + " runs past the end of the body (" +
                    std::to_string(body.size() - offset) + " bytes left)");
      t.bytes.assign(body.begin() + static_cast<std::ptrdiff_t>(offset), body.begin() + static_cast<std::ptrdiff_t>(offset + n));
      offset += n;
    } else {
      if (!in.contains("data")) throw Error(what + " has neither \"data\" nor parameters.binary_data_size");
      std::vector<const json*> flat;
      flatten(in["data"], flat);
      const size_t count = static_cast<size_t>(t.numel());
      if (flat.size() != count)
        throw Error(what + " has " + std::to_string(flat.size()) + " data elements, its shape " + dims_text(t.shape) + " needs " + std::to_string(count));
      t.bytes.resize(bytes);
      for (size_t i = 0; i < count; ++i) put_element(t, i, *flat[i], what);
    }
    inputs.push_back(std::move(t));
  }
  if (offset != body.size())
    throw Error("the body holds " + std::to_string(body.size() - offset) + " bytes after the inputs' binary data that no input claims");
  if (req.contains("outputs")) {
    if (!req["outputs"].is_array()) throw Error("\"outputs\" must be an array");
    for (const auto& o : req["outputs"]) {
      if (!o.is_object() || !o.contains("name") || !o["name"].is_string()) throw Error("every requested output needs a \"name\"");
      bool known = false;
      for (int id : e.graph.outputs) known |= e.graph.value(id).name == o["name"].get<std::string>();
      if (!known) throw Error("requested output '" + o["name"].get<std::string>() + "' is not an output of this model");
    }
  }
  *request = std::move(req);
  return inputs;
}

std::string InferenceServer::make_infer_response(const json& request, const std::vector<HostTensor>& outputs, const std::string& model,
                                                 const std::string& version, size_t* header_length) {
  bool binary_default = false;
  if (request.contains("parameters") && request["parameters"].is_object() && request["parameters"].contains("binary_data_output"))
    binary_default = request["parameters"]["binary_data_output"].is_boolean() && request["parameters"]["binary_data_output"].get<bool>();
  // Which outputs, and which of them binary: those requested (all when none are named).
  std::vector<std::pair<const HostTensor*, bool>> chosen;
  if (request.contains("outputs") && !request["outputs"].empty()) {
    for (const auto& o : request["outputs"]) {
      bool bin = binary_default;
      if (o.contains("parameters") && o["parameters"].is_object() && o["parameters"].contains("binary_data") &&
          o["parameters"]["binary_data"].is_boolean())
        bin = o["parameters"]["binary_data"].get<bool>();
      for (const auto& t : outputs)
        if (t.name == o["name"].get<std::string>()) chosen.push_back({&t, bin});
    }
  } else {
    for (const auto& t : outputs) chosen.push_back({&t, binary_default});
  }
  json resp{{"model_name", model}, {"model_version", version}, {"outputs", json::array()}};
  if (request.contains("id")) resp["id"] = request["id"];
  std::string blobs;
  for (const auto& [t, bin] : chosen) {
    json o{{"name", t->name}, {"datatype", kserve_datatype(t->dtype)}, {"shape", t->shape}};
    if (bin) {
      o["parameters"] = {{"binary_data_size", t->bytes.size()}};
      blobs.append(reinterpret_cast<const char*>(t->bytes.data()), t->bytes.size());
    } else {
      json data = json::array();
      const size_t n = static_cast<size_t>(t->numel());
      for (size_t i = 0; i < n; ++i) data.push_back(element_json(*t, i));
      o["data"] = std::move(data);
    }
    resp["outputs"].push_back(std::move(o));
  }
  std::string head = resp.dump();
  *header_length = blobs.empty() ? 0 : head.size();
  return head + blobs;
}

std::string InferenceServer::metrics_text() const {
  std::ostringstream m;
  auto labels = [](const ServedModel& s) { return "model=\"" + s.name + "\",version=\"" + s.version + "\""; };
  auto counter = [&](const char* name, const char* help, auto get) {
    m << "# HELP " << name << " " << help << "\n# TYPE " << name << " counter\n";
    for (const auto& [n, vs] : models_)
      for (const auto& [v, s] : vs) m << name << "{" << labels(*s) << "} " << get(s->batcher->stats()) << "\n";
  };
  counter("unirt_requests_total", "inference requests received", [](const DynamicBatcher::Stats& s) { return s.requests; });
  counter("unirt_requests_succeeded_total", "requests answered with outputs", [](const DynamicBatcher::Stats& s) { return s.succeeded; });
  counter("unirt_request_failures_total", "requests answered with an error (bad input, model failure)", [](const DynamicBatcher::Stats& s) { return s.failed; });
  counter("unirt_requests_rejected_total", "requests refused with 503 (queue full, shutting down)", [](const DynamicBatcher::Stats& s) { return s.rejected; });
  counter("unirt_requests_timed_out_total", "requests answered 504 (past their timeout)", [](const DynamicBatcher::Stats& s) { return s.timed_out; });
  counter("unirt_batches_total", "model executions (each a batch of one or more requests)", [](const DynamicBatcher::Stats& s) { return s.batches; });
  m << "# HELP unirt_queue_depth requests waiting for a batch\n# TYPE unirt_queue_depth gauge\n";
  for (const auto& [n, vs] : models_)
    for (const auto& [v, s] : vs) m << "unirt_queue_depth{" << labels(*s) << "} " << s->batcher->queue_depth() << "\n";
  auto histogram = [&](const char* name, const char* help, auto get) {
    m << "# HELP " << name << " " << help << "\n# TYPE " << name << " histogram\n";
    for (const auto& [n, vs] : models_)
      for (const auto& [v, s] : vs) {
        const DynamicBatcher::Stats st = s->batcher->stats();
        const Histogram& h = get(st);
        uint64_t cum = 0;
        for (size_t i = 0; i < h.bounds.size(); ++i) {
          cum += h.counts[i];
          m << name << "_bucket{" << labels(*s) << ",le=\"" << h.bounds[i] << "\"} " << cum << "\n";
        }
        cum += h.counts.back();
        m << name << "_bucket{" << labels(*s) << ",le=\"+Inf\"} " << cum << "\n";
        m << name << "_sum{" << labels(*s) << "} " << h.sum << "\n" << name << "_count{" << labels(*s) << "} " << h.count << "\n";
      }
  };
  histogram("unirt_batch_size", "rows per model execution", [](const DynamicBatcher::Stats& s) -> const Histogram& { return s.batch_size; });
  histogram("unirt_request_latency_ms", "queue + compute time of answered requests, milliseconds",
            [](const DynamicBatcher::Stats& s) -> const Histogram& { return s.latency_ms; });
  histogram("unirt_queue_time_ms", "time from arrival to the start of its batch, milliseconds",
            [](const DynamicBatcher::Stats& s) -> const Histogram& { return s.queue_ms; });
  m << "# HELP unirt_instance_batches_total executions per model instance\n# TYPE unirt_instance_batches_total counter\n";
  for (const auto& [n, vs] : models_)
    for (const auto& [v, s] : vs)
      for (const auto& inst : s->batcher->instances())
        m << "unirt_instance_batches_total{" << labels(*s) << ",instance=\"" << inst->label() << "\"} " << inst->batches.load() << "\n";
  return m.str();
}

void InferenceServer::routes() {
  httplib::Server& s = *http_;
  s.set_payload_max_length(opts_.max_request_bytes);
  // Without it Nagle's algorithm holds a response's last segment until the client's delayed ACK:
  // 40 ms on every request.
  s.set_tcp_nodelay(true);
  const size_t nthreads = static_cast<size_t>(std::max(1, opts_.http_threads));
  s.new_task_queue = [nthreads] { return new httplib::ThreadPool(nthreads); };
  s.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 413 && req.get_header_value("Content-Type").rfind("application/x-www-form-urlencoded", 0) == 0)
      reply_error(res, 413, "a form-urlencoded body is limited to 8192 bytes: send images and tensors as application/octet-stream, "
                            "image/* or application/json");
    else if (res.status == 413)
      reply_error(res, 413, "the request body is over --max-request-bytes (" + std::to_string(opts_.max_request_bytes) + " bytes)");
    else if (res.status == 404)
      reply_error(res, 404, "no such endpoint: " + req.method + " " + req.path);
    else
      reply_error(res, res.status, "HTTP " + std::to_string(res.status));
  });
  s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    reply_error(res, 500, what);
  });

  s.Get("/v2/health/live", [](const httplib::Request&, httplib::Response& res) { res.status = 200; });
  s.Get("/v2/health/ready", [this](const httplib::Request&, httplib::Response& res) { res.status = ready() ? 200 : 503; });
  s.Get("/v2", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(json{{"name", "unirt"}, {"version", kUnirtVersion}, {"extensions", {"binary_tensor_data", "model_repository"}}}.dump(),
                    "application/json");
  });
  s.Post("/v2/repository/index", [this](const httplib::Request&, httplib::Response& res) {
    json l = json::array();
    for (const auto& [n, vs] : models_)
      for (const auto& [v, m] : vs) l.push_back({{"name", n}, {"version", v}, {"state", stopping_ ? "UNAVAILABLE" : "READY"}});
    res.set_content(l.dump(), "application/json");
  });
  const std::string model_re = R"(/v2/models/([^/]+)(?:/versions/([^/]+))?)";
  s.Get(model_re, [this](const httplib::Request& req, httplib::Response& res) {
    std::string why;
    ServedModel* m = find(req.matches[1], req.matches[2], &why);
    if (!m) return reply_error(res, 404, why);
    json versions = json::array();
    for (const auto& kv : models_[m->name]) versions.push_back(kv.first);
    json j{{"name", m->name}, {"versions", versions}, {"platform", "unirt_" + m->engine->options.backend}, {"inputs", json::array()},
           {"outputs", json::array()}};
    for (int id : m->engine->graph.inputs) j["inputs"].push_back(tensor_metadata(*m->engine, id));
    for (int id : m->engine->graph.outputs) j["outputs"].push_back(tensor_metadata(*m->engine, id));
    res.set_content(j.dump(), "application/json");
  });
  s.Get(model_re + "/ready", [this](const httplib::Request& req, httplib::Response& res) {
    std::string why;
    ServedModel* m = find(req.matches[1], req.matches[2], &why);
    if (!m) return reply_error(res, 404, why);
    res.status = ready() ? 200 : 503;
  });
  s.Post(model_re + "/infer", [this](const httplib::Request& req, httplib::Response& res) {
    std::string why;
    ServedModel* m = find(req.matches[1], req.matches[2], &why);
    if (!m) return reply_error(res, 404, why);
    size_t header_length = 0;
    if (req.has_header("Inference-Header-Content-Length")) {
      const std::string h = req.get_header_value("Inference-Header-Content-Length");
      try {
        size_t pos = 0;
        header_length = std::stoull(h, &pos);
        if (pos != h.size()) throw std::invalid_argument(h);
      } catch (const std::exception&) {
        return reply_error(res, 400, "Inference-Header-Content-Length '" + h + "' is not a byte count");
      }
    }
    json request;
    std::vector<HostTensor> inputs;
    try {
      inputs = parse_infer_request(req.body, header_length, *m->engine, &request);
    } catch (const Error& e) {
      return reply_error(res, 400, e.what());
    }
    InferResult r = m->batcher->infer(std::move(inputs));
    if (r.status != 200) return reply_error(res, r.status, r.error);
    size_t out_header = 0;
    std::string body = make_infer_response(request, r.outputs, m->name, m->version, &out_header);
    if (out_header) {
      res.set_header("Inference-Header-Content-Length", std::to_string(out_header));
      res.set_content(std::move(body), "application/octet-stream");
    } else {
      res.set_content(std::move(body), "application/json");
    }
  });
  s.Post(R"(/v1/models/([^/]+)/classify)", [this](const httplib::Request& req, httplib::Response& res) {
    std::string why;
    ServedModel* m = find(req.matches[1], "", &why);
    if (!m) return reply_error(res, 404, why);
    const Engine& e = *m->engine;
    if (e.graph.inputs.size() != 1) return reply_error(res, 400, "classify needs a model with one input, '" + m->name + "' has " + std::to_string(e.graph.inputs.size()));
    std::string image = req.body;
    if (req.has_file("image")) image = req.get_file_value("image").content;  // a multipart form
    if (image.empty()) return reply_error(res, 400, "the request body holds no image (send the file's bytes, or a form field 'image')");
    const Value& in = e.graph.value(e.graph.inputs[0]);
    int size = 224;
    if (in.shape.size() == 4 && in.shape[2].is_const()) size = static_cast<int>(in.shape[2].value());
    HostTensor x;
    try {
      x = decode_image(image, "the uploaded image", in.name, size);
    } catch (const Error& ex) {
      return reply_error(res, 400, ex.what());
    }
    InferResult r = m->batcher->infer({x});
    if (r.status != 200) return reply_error(res, r.status, r.error);
    static const std::vector<std::string> labels = read_labels(cli::repo_file("unirt", "assets/imagenet_labels.txt"), false);
    std::vector<ClassScore> top;
    try {
      top = top_classes(r.outputs.at(0), 5, labels);
    } catch (const Error& ex) {
      return reply_error(res, 400, ex.what());
    }
    json classes = json::array();
    for (const auto& c : top) classes.push_back({{"index", c.index}, {"probability", c.probability}, {"label", c.label}});
    json j{{"model_name", m->name}, {"model_version", m->version}, {"classes", classes}};
    const std::string note = random_weights_note(e, "classes");
    if (!note.empty()) j["note"] = note.substr(0, note.size() - 1);
    res.set_content(j.dump(), "application/json");
  });
  s.Post(R"(/v1/models/([^/]+)/detect)", [this](const httplib::Request& req, httplib::Response& res) {
    std::string why;
    ServedModel* m = find(req.matches[1], "", &why);
    if (!m) return reply_error(res, 404, why);
    const Engine& e = *m->engine;
    std::vector<std::string> out_names;
    for (int v : e.graph.outputs) out_names.push_back(e.graph.value(v).name);
    if (e.graph.inputs.size() != 1 || std::find(out_names.begin(), out_names.end(), "dets") == out_names.end())
      return reply_error(res, 400, "detect needs a detector (one input; outputs dets, labels[, masks], num_dets); '" + m->name + "' is not one");
    std::string image = req.has_file("image") ? req.get_file_value("image").content : req.body;
    if (image.empty()) return reply_error(res, 400, "the request body holds no image (send the file's bytes, or a form field 'image')");
    // Query parameters as `unirt detect`'s flags: score_thr, long_edge, short_edge.
    double score_thr = 0.3, long_edge = 1333, short_edge = 800;
    for (auto [key, value, lo, hi] : {std::tuple<const char*, double*, double, double>{"score_thr", &score_thr, 0, 1},
                                      {"long_edge", &long_edge, 1, 8192}, {"short_edge", &short_edge, 1, 8192}}) {
      if (!req.has_param(key)) continue;
      const std::string v = req.get_param_value(key);
      try {
        size_t pos = 0;
        *value = std::stod(v, &pos);
        if (pos != v.size() || !(*value >= lo && *value <= hi)) throw std::invalid_argument(v);
      } catch (const std::exception&) {
        return reply_error(res, 400, std::string(key) + " '" + v + "' is not a number in " + std::to_string(static_cast<int>(lo)) + ".." +
                                         std::to_string(static_cast<int>(hi)));
      }
    }
    DetPreprocessOptions po;
    po.long_edge = static_cast<int>(long_edge);
    po.short_edge = static_cast<int>(short_edge);
    std::vector<DetImageMeta> metas;
    HostTensor x;
    try {
      x = preprocess_detection({decode_rgb(image, "the uploaded image")}, e.graph.value(e.graph.inputs[0]).name, po, &metas);
    } catch (const Error& ex) {
      return reply_error(res, 400, ex.what());
    }
    InferResult r = m->batcher->infer({x});
    if (r.status != 200) return reply_error(res, r.status, r.error);
    static const std::vector<std::string> names = read_labels(cli::repo_file("unirt", "assets/coco_labels.txt"), false);
    std::vector<std::vector<Detection>> dets;
    try {
      dets = decode_detections(r.outputs, out_names, metas, static_cast<float>(score_thr), 0.5f);
    } catch (const Error& ex) {
      return reply_error(res, 500, ex.what());
    }
    json list = json::array();
    for (const Detection& d : dets.at(0)) {
      json j{{"box", {d.x0, d.y0, d.x1, d.y1}}, {"score", d.score}, {"label", d.label},
             {"name", d.label >= 0 && d.label < static_cast<int>(names.size()) ? names[d.label] : ""}};
      if (!d.mask.empty()) j["mask"] = {{"size", {metas[0].ori_h, metas[0].ori_w}}, {"counts", coco_rle(d.mask)}};
      list.push_back(std::move(j));
    }
    json j{{"model_name", m->name}, {"model_version", m->version}, {"width", metas[0].ori_w}, {"height", metas[0].ori_h}, {"detections", list}};
    const std::string note = random_weights_note(e, "detections");
    if (!note.empty()) j["note"] = note.substr(0, note.size() - 1);
    res.set_content(j.dump(), "application/json");
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_text(), "text/plain; version=0.0.4");
  });
  s.Get("/", [](const httplib::Request&, httplib::Response& res) { res.set_content(kIndexHtml, "text/html; charset=utf-8"); });
}

int InferenceServer::bind() {
  const int port = opts_.port == 0 ? http_->bind_to_any_port(opts_.host) : (http_->bind_to_port(opts_.host, opts_.port) ? opts_.port : -1);
  if (port < 0) throw Error("cannot listen on " + opts_.host + ":" + std::to_string(opts_.port));
  // Debian's cpp-httplib is a compiled library listening with a backlog of 5: a burst of
  // connections would overflow it and be reset. Listening again on the same socket raises the
  // backlog; the socket is found as the one listening on our port.
  for (int fd = 0; fd < 4096; ++fd) {
    int listening = 0;
    socklen_t len = sizeof(listening);
    sockaddr_storage addr{};
    socklen_t alen = sizeof(addr);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) continue;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &alen) != 0) continue;
    const int p = addr.ss_family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port)
                  : addr.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port) : -1;
    if (p == port) ::listen(fd, SOMAXCONN);
  }
  return port;
}

void InferenceServer::serve() { http_->listen_after_bind(); }

void InferenceServer::stop() {
  stopping_ = true;
  http_->stop();
  for (auto& [n, vs] : models_)
    for (auto& [v, m] : vs) m->batcher->shutdown();
}

}  // namespace unirt
