#include "runtime/session.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace unirt {


// Steps [begin, end) of a plan, prepared at one set of data-dependent sizes (none for the first
// segment): views, device copies of the shape values it reads, and its captured CUDA graph.
struct Session::Segment {
  std::vector<int64_t> sizes;  // the data sizes read back before it (its key)
  int begin = 0, end = 0;
  std::vector<std::vector<TensorView>> ins, outs;  // per step
  // Exact host values of data-shaped shape values at these sizes (views point into them).
  std::map<int, std::vector<int64_t>> host_values;
  // Device copies of shape values (computed on the host per input shape) that a device kernel
  // reads as data, e.g. a Cast of Shape(x): uploaded once when the segment is prepared.
  std::map<int, Buffer> device_values;
  std::shared_ptr<void> graph;  // captured CUDA graph
  int runs = 0;
  void* arena_base = nullptr;   // arena the views point into
  std::vector<void*> io_ptrs;   // input/output pointers the views were built with
};

struct Session::Prepared {
  std::vector<std::vector<int64_t>> input_shapes;
  Plan plan;
  // Per segment of the plan: its prepared instances, most recent first. The first segment has one.
  std::vector<std::list<std::unique_ptr<Segment>>> segments;
};

namespace {

// The host values of a shape value as the bytes of its element type.
std::vector<uint8_t> host_value_bytes(const Value& v, const std::vector<int64_t>& vals) {
  std::vector<uint8_t> out(std::max<size_t>(1, vals.size() * dtype_size(v.dtype)));
  for (size_t k = 0; k < vals.size(); ++k) {
    switch (v.dtype) {
      case DType::Int64: reinterpret_cast<int64_t*>(out.data())[k] = vals[k]; break;
      case DType::Int32: reinterpret_cast<int32_t*>(out.data())[k] = static_cast<int32_t>(vals[k]); break;
      case DType::Int8: reinterpret_cast<int8_t*>(out.data())[k] = static_cast<int8_t>(vals[k]); break;
      case DType::Uint8:
      case DType::Bool: out[k] = static_cast<uint8_t>(vals[k]); break;
      default: throw Error("shape value '" + v.name + "' has type " + dtype_name(v.dtype) + ", expected an integer type");
    }
  }
  return out;
}

}  // namespace

Session::Session(std::shared_ptr<const Engine> engine, std::unique_ptr<Backend> backend, SessionOptions o)
    : engine_(std::move(engine)), backend_(std::move(backend)), opts_(o) {
  const Graph& g = engine_->graph;
  if (engine_->options.backend != backend_->name())
    throw Error("engine was built for the " + engine_->options.backend + " backend, this session runs on " + backend_->name() +
                ": rebuild with --backend " + backend_->name());
  if (opts_.threads > 0) backend_->context().threads = opts_.threads;
  if (const char* env = std::getenv("UNIRT_POISON_MEMORY")) opts_.poison_memory = opts_.poison_memory || std::string(env) == "1";
  if (is_deferred(*engine_)) return;  // kernels live in the specialised sessions
  if (!g.data_dims.empty()) sizes_ = Buffer(*backend_, g.data_dims.size() * sizeof(int64_t));
  const KernelRegistry& reg = KernelRegistry::get(backend_->name());
  kernels_.resize(g.nodes.size());
  consts_.resize(g.values.size());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (node_is_static(g, n)) continue;
    const KernelFactory* f = reg.find(n.op_type);
    if (!f) throw Error("no " + backend_->name() + " kernel for op " + n.op_type + " at node '" + n.name + "'");
    kernels_[i] = (*f)(KernelCreateArgs{g, n, engine_->options.precision});
    auto t = engine_->tactics.find(n.name);
    if (t != engine_->tactics.end()) kernels_[i]->use_tactic(t->second);
    for (int in : n.inputs) {
      if (in < 0 || consts_[in]) continue;
      const Value& v = g.value(in);
      if (!v.data) continue;
      const size_t bytes = v.data->bytes.size();
      consts_[in] = Buffer(*backend_, bytes);
      backend_->copy_from_host(consts_[in].get(), v.data->bytes.data(), bytes);
      weight_bytes_ += bytes;
    }
  }
}

std::map<std::string, std::string> Session::tactics() const {
  std::map<std::string, std::string> t;
  const Graph& g = engine_->graph;
  for (size_t i = 0; i < kernels_.size(); ++i)
    if (kernels_[i]) {
      std::string s = kernels_[i]->tactic();
      if (!s.empty()) t[g.nodes[i].name] = std::move(s);
    }
  return t;
}

void select_tactics(Engine& e, std::unique_ptr<Backend> backend) {
  if (is_deferred(e)) return;  // its specialisations choose when they are built, per value or shape
  const auto& opt = e.options.profile.opt;
  std::vector<std::vector<int64_t>> shapes;
  for (int id : e.graph.inputs) {
    auto it = opt.find(e.graph.value(id).name);
    if (it == opt.end()) return;  // no opt shape: kernels choose when they first see a shape
    shapes.push_back(it->second);
  }
  auto copy = std::make_shared<Engine>(e);
  copy->tactics.clear();
  Session s(copy, std::move(backend));
  s.prepare_for(shapes);
  e.tactics = s.tactics();
}

Session::~Session() = default;

void Session::check_input(const Value& v, const TensorView& t, size_t i) const {
  if (t.dtype != v.dtype)
    throw Error("input '" + v.name + "' has type " + dtype_name(t.dtype) + ", the engine expects " + dtype_name(v.dtype));
}

Session& Session::specialised(const std::map<std::string, TensorData>& values,
                              const std::vector<std::vector<int64_t>>& input_shapes) {
  std::vector<std::vector<int64_t>> key;
  for (const auto& name : engine_->shape_inputs) {
    auto it = values.find(name);
    if (it == values.end()) throw Error("shape input '" + name + "' was not given");
    const TensorData& t = it->second;
    if (t.dtype == DType::Float32 || t.dtype == DType::Float64) {  // the key holds the bits, not a truncation
      std::vector<int64_t> bits(t.bytes.size() / 4 + 1, 0);
      std::memcpy(bits.data(), t.bytes.data(), t.bytes.size());
      key.push_back(bits);
    } else {
      key.push_back(t.to_int64());
    }
  }
  std::map<std::string, std::vector<int64_t>> named;
  if (engine_->specialize_per_shape) {
    const Graph& g = engine_->graph;
    if (input_shapes.size() != g.inputs.size())
      throw Error("expected " + std::to_string(g.inputs.size()) + " inputs, got " + std::to_string(input_shapes.size()));
    for (size_t i = 0; i < input_shapes.size(); ++i) {
      key.push_back(input_shapes[i]);
      named[g.value(g.inputs[i]).name] = input_shapes[i];
    }
  }
  for (auto it = specialised_.begin(); it != specialised_.end(); ++it)
    if (it->first == key) {
      specialised_.splice(specialised_.begin(), specialised_, it);
      return *specialised_.front().second;
    }
  auto e = std::make_shared<Engine>(specialize_engine(*engine_, values, named));
  specialised_.emplace_front(key, std::make_unique<Session>(e, backend_->clone(), opts_));
  if (specialised_.size() > opts_.max_cached_plans) specialised_.pop_back();
  return *specialised_.front().second;
}

bool Session::is_shape_input(const std::string& name) const {
  return std::find(engine_->shape_inputs.begin(), engine_->shape_inputs.end(), name) != engine_->shape_inputs.end();
}

std::map<std::string, TensorData> Session::shape_input_values(const std::vector<TensorView>& inputs) {
  const Graph& g = engine_->graph;
  std::map<std::string, TensorData> values;
  for (size_t i = 0; i < g.inputs.size() && i < inputs.size(); ++i) {
    const Value& v = g.value(g.inputs[i]);
    if (!is_shape_input(v.name)) continue;
    TensorData t;
    t.dtype = inputs[i].dtype;
    t.shape = inputs[i].shape;
    t.bytes.resize(inputs[i].bytes());
    if (!t.bytes.empty()) backend_->copy_to_host(t.bytes.data(), inputs[i].data, t.bytes.size());
    values[v.name] = std::move(t);
  }
  return values;
}

Session::Prepared& Session::prepare_for(const std::vector<std::vector<int64_t>>& input_shapes) {
  if (is_deferred(*engine_))
    throw Error("this engine is specialised per shape-input value or input shape: plans are made by run() and execute()");
  for (auto it = cache_.begin(); it != cache_.end(); ++it) {
    if ((*it)->input_shapes == input_shapes) {
      if (it != cache_.begin()) cache_.splice(cache_.begin(), cache_, it);
      last_ = cache_.front().get();
      return *last_;
    }
  }
  const Graph& g = engine_->graph;
  std::map<std::string, std::vector<int64_t>> named;
  for (size_t i = 0; i < g.inputs.size(); ++i) named[g.value(g.inputs[i]).name] = input_shapes[i];
  auto pp = std::make_unique<Prepared>();
  pp->input_shapes = input_shapes;
  pp->plan = make_plan(*engine_, named);
  pp->segments.resize(pp->plan.segment_ends.size());
  if (pp->plan.arena_bytes > arena_.bytes() || !arena_) {
    arena_.reset();  // before the new one: the peak is one arena, not two
    arena_ = Buffer(*backend_, pp->plan.arena_bytes);
    poison(arena_.get(), pp->plan.arena_bytes);
    for (auto& c : cache_)  // their pointers moved
      for (auto& set : c->segments)
        for (auto& seg : set) seg->graph.reset(), seg->arena_base = nullptr;
  }
  // The first segment is prepared before the plan is cached: a kernel refusing the shape must not
  // leave a cached plan without it.
  segment_for(*pp, 0, pp->plan.bindings, {});
  cache_.push_front(std::move(pp));
  if (cache_.size() > opts_.max_cached_plans) cache_.pop_back();
  last_ = cache_.front().get();
  return *last_;
}

void Session::poison(void* p, size_t bytes) {
  if (!opts_.poison_memory || !bytes) return;
  const std::vector<uint8_t> ff(bytes, 0xFF);
  backend_->copy_from_host(p, ff.data(), bytes);
}

void Session::grow_workspace(size_t bytes) {
  if (bytes <= workspace_.bytes()) return;
  workspace_.reset();
  workspace_ = Buffer(*backend_, bytes);
  poison(workspace_.get(), bytes);
  for (auto& c : cache_)
    for (auto& set : c->segments)
      for (auto& seg : set) seg->graph.reset();
}

Session::Segment& Session::segment_for(Prepared& pp, size_t k, const std::map<std::string, int64_t>& known,
                                       const std::vector<int64_t>& sizes) {
  auto& set = pp.segments.at(k);
  for (auto it = set.begin(); it != set.end(); ++it)
    if ((*it)->sizes == sizes) {
      if (it != set.begin()) set.splice(set.begin(), set, it);
      return *set.front();
    }
  const Graph& g = engine_->graph;
  const Plan& plan = pp.plan;
  auto seg = std::make_unique<Segment>();
  seg->sizes = sizes;
  seg->begin = k == 0 ? 0 : plan.segment_ends[k - 1];
  seg->end = plan.segment_ends[k];
  // Shapes and host values of the values these steps touch, exact where their data sizes are known.
  std::map<int, std::vector<int64_t>> shapes;
  auto shape_of = [&](int v) -> const std::vector<int64_t>& {
    if (!plan.values[v].data_shaped) return plan.values[v].shape;
    auto it = shapes.find(v);
    if (it == shapes.end()) {
      std::vector<int64_t> hv;
      it = shapes.emplace(v, std::vector<int64_t>()).first;
      data_shaped_value(g, plan, v, known, it->second, hv);
      if (plan.values[v].has_host_values) seg->host_values[v] = std::move(hv);
    }
    return it->second;
  };
  auto host_values_of = [&](int v) -> const std::vector<int64_t>& {
    shape_of(v);
    auto it = seg->host_values.find(v);
    return it != seg->host_values.end() ? it->second : plan.values[v].host_values;
  };
  size_t workspace = 0;
  for (int s = seg->begin; s < seg->end; ++s) {
    const int idx = plan.steps[s];
    const Node& n = g.nodes[idx];
    std::vector<TensorView> ins, outs;
    for (int v : n.inputs) {
      TensorView t;
      if (v >= 0) {
        t.dtype = g.value(v).dtype;
        t.shape = shape_of(v);
        if (plan.values[v].has_host_values) t.host_values = host_values_of(v).data();
      }
      ins.push_back(t);
    }
    for (int v : n.outputs) {
      TensorView t;
      if (v >= 0) {
        t.dtype = g.value(v).dtype;
        t.shape = shape_of(v);
      }
      outs.push_back(t);
    }
    // A node that writes data-dependent sizes gets one more output: where its kernel writes them.
    int64_t written_sizes = 0;
    for (const auto& ds : plan.data_sizes) written_sizes += ds.step == s;
    if (written_sizes) {
      TensorView t;
      t.dtype = DType::Int64;
      t.shape = {written_sizes};
      outs.push_back(t);
    }
    const size_t ws = kernels_[idx]->prepare(ins, outs);
    // Scratch is sized by the shapes a request brings: bounded like any tensor.
    if (ws > static_cast<size_t>(resource_limits().max_tensor_bytes))
      throw Error(n.describe() + ": needs " + std::to_string(ws) + " bytes of scratch for these shapes, above the limit of " +
                  std::to_string(resource_limits().max_tensor_bytes) + " (--max-tensor-bytes)");
    workspace = std::max(workspace, ws);
    seg->ins.push_back(std::move(ins));
    seg->outs.push_back(std::move(outs));
  }
  if (!backend_->host_visible()) {
    std::vector<char> is_input(g.values.size(), 0);
    for (int id : g.inputs) is_input[id] = 1;
    for (int s = seg->begin; s < seg->end; ++s)
      for (int v : g.nodes[plan.steps[s]].inputs) {
        if (v < 0 || !plan.values[v].has_host_values || consts_[v] || is_input[v] || seg->device_values.count(v)) continue;
        if (plan.values[v].offset != Plan::kNoBuffer) continue;
        const std::vector<uint8_t> bytes = host_value_bytes(g.value(v), host_values_of(v));
        Buffer& d = seg->device_values[v] = Buffer(*backend_, bytes.size());
        backend_->copy_from_host(d.get(), bytes.data(), bytes.size());
      }
  }
  grow_workspace(workspace);
  set.push_front(std::move(seg));
  if (set.size() > std::max<size_t>(1, opts_.max_cached_segments)) set.pop_back();
  return *set.front();
}

// Points every view of a segment at its buffer: arena offset, uploaded constant, the host shape
// values, or the slots where data-dependent sizes are written.
void Session::bind_views(const Plan& plan, Segment& seg, const std::map<int, void*>& io) {
  const Graph& g = engine_->graph;
  const bool host_backend = backend_->host_visible();
  char* arena = static_cast<char*>(arena_.get());
  int64_t* sizes = static_cast<int64_t*>(sizes_.get());
  auto ptr = [&](int v) -> void* {
    auto it = io.find(v);
    if (it != io.end()) return it->second;
    auto dv = seg.device_values.find(v);
    if (dv != seg.device_values.end()) return dv->second.get();
    if (consts_[v]) return consts_[v].get();
    if (plan.values[v].offset != Plan::kNoBuffer) return arena + plan.values[v].offset;
    if (plan.values[v].has_host_values && host_backend) {
      auto hv = seg.host_values.find(v);
      return const_cast<int64_t*>(hv != seg.host_values.end() ? hv->second.data() : plan.values[v].host_values.data());
    }
    return nullptr;
  };
  for (int s = seg.begin; s < seg.end; ++s) {
    const Node& n = g.nodes[plan.steps[s]];
    auto& ins = seg.ins[s - seg.begin];
    auto& outs = seg.outs[s - seg.begin];
    for (size_t k = 0; k < n.inputs.size(); ++k)
      if (n.inputs[k] >= 0) ins[k].data = ptr(n.inputs[k]);
    for (size_t k = 0; k < n.outputs.size(); ++k)
      if (n.outputs[k] >= 0) outs[k].data = ptr(n.outputs[k]);
    if (outs.size() > n.outputs.size()) {
      size_t first = 0;
      while (plan.data_sizes[first].step != s) ++first;
      outs.back().data = sizes + plan.data_sizes[first].slot;
    }
  }
}

void Session::launch(const Plan& plan, Segment& seg) {
  RunContext ctx = backend_->context();
  ctx.workspace = workspace_.get();
  ctx.workspace_bytes = workspace_.bytes();
  auto body = [&] {
    for (int s = seg.begin; s < seg.end; ++s) kernels_[plan.steps[s]]->run(seg.ins[s - seg.begin], seg.outs[s - seg.begin], ctx);
  };
  // Capture on the second run of a segment (the first one may still be warming up libraries that
  // allocate), then replay. A backend whose capture() returns null simply runs the kernels.
  if (opts_.cuda_graphs && capture_supported_ && seg.end > seg.begin) {
    ++seg.runs;
    if (!seg.graph && seg.runs >= 2) {
      seg.graph = backend_->capture(body);
      if (!seg.graph) capture_supported_ = false;
    }
    if (seg.graph) {
      backend_->replay(seg.graph);
      return;
    }
  }
  body();
}

std::vector<std::vector<int64_t>> Session::execute(const std::vector<TensorView>& inputs, const std::vector<TensorView>& outputs) {
  if (is_deferred(*engine_)) {
    backend_->synchronize();  // the shape inputs are read back before anything is planned
    std::vector<std::vector<int64_t>> shapes;
    for (const auto& t : inputs) shapes.push_back(t.shape);
    return specialised(shape_input_values(inputs), shapes).execute(inputs, outputs);
  }
  const Graph& g = engine_->graph;
  if (inputs.size() != g.inputs.size())
    throw Error("expected " + std::to_string(g.inputs.size()) + " inputs, got " + std::to_string(inputs.size()));
  if (outputs.size() != g.outputs.size())
    throw Error("expected " + std::to_string(g.outputs.size()) + " outputs, got " + std::to_string(outputs.size()));
  std::vector<std::vector<int64_t>> shapes;
  for (size_t i = 0; i < inputs.size(); ++i) {
    check_input(g.value(g.inputs[i]), inputs[i], i);
    shapes.push_back(inputs[i].shape);
  }
  Prepared& pp = prepare_for(shapes);
  const Plan& plan = pp.plan;
  std::map<int, void*> io;
  std::vector<void*> ptrs;
  for (size_t i = 0; i < inputs.size(); ++i) io[g.inputs[i]] = inputs[i].data;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const int v = g.outputs[i];
    const Value& val = g.value(v);
    if (outputs[i].shape != plan.values[v].shape || outputs[i].dtype != val.dtype)
      throw Error("output '" + val.name + "' buffer is " + dtype_name(outputs[i].dtype) + " " + dims_text(outputs[i].shape) +
                  ", this input shape gives " + dtype_name(val.dtype) + " " + dims_text(plan.values[v].shape) +
                  (plan.values[v].data_shaped ? " (the upper bound of its data-dependent size)" : ""));
    if (plan.values[v].written && !io.count(v)) io[v] = outputs[i].data;
  }
  for (auto& kv : io) ptrs.push_back(kv.second);
  std::map<std::string, int64_t> known = plan.bindings;
  std::vector<int64_t> sizes;
  last_segments_.clear();
  for (size_t k = 0; k < plan.segment_ends.size(); ++k) {
    Segment& seg = k == 0 ? *pp.segments[0].front() : segment_for(pp, k, known, sizes);
    last_segments_.push_back(&seg);
    if (seg.arena_base != arena_.get() || seg.io_ptrs != ptrs) {
      bind_views(plan, seg, io);
      seg.arena_base = arena_.get();
      seg.io_ptrs = ptrs;
      seg.graph.reset();
    }
    launch(plan, seg);
    // Read back the sizes this segment's last node wrote: one synchronisation per such node.
    std::vector<std::string> fresh;
    for (const auto& ds : plan.data_sizes) {
      if (ds.step != seg.end - 1) continue;
      int64_t value = 0;
      backend_->copy_to_host(&value, static_cast<int64_t*>(sizes_.get()) + ds.slot, sizeof(int64_t));
      if (value < 0 || value > ds.bound)
        throw Error("node '" + ds.node + "' produced a data-dependent size of " + std::to_string(value) + ", outside 0.." +
                    std::to_string(ds.bound) + " for " + bindings_text(plan.bindings) + " (a TopK k larger than its axis?)");
      known[ds.symbol] = value;
      sizes.push_back(value);
      fresh.push_back(ds.symbol);
    }
    if (!fresh.empty()) check_data_guards(g, known, fresh);
  }
  std::vector<std::vector<int64_t>> actual;
  for (int v : g.outputs) {
    if (!plan.values[v].data_shaped) {
      actual.push_back(plan.values[v].shape);
      continue;
    }
    std::vector<int64_t> shape, hv;
    data_shaped_value(g, plan, v, known, shape, hv);
    actual.push_back(shape);
  }
  // Outputs no kernel writes (constants, shape values, graph inputs passed straight through) and
  // an output listed twice get copied; these never occur in exported classifiers.
  for (size_t i = 0; i < outputs.size(); ++i) {
    const int v = g.outputs[i];
    if (plan.values[v].written && io[v] == outputs[i].data) continue;
    const Value& val = g.value(v);
    const size_t bytes = outputs[i].bytes();
    std::vector<uint8_t> tmp(bytes);
    if (plan.values[v].written) {
      backend_->copy_to_host(tmp.data(), io[v], bytes);
    } else if (val.data) {
      if (const size_t n = std::min(bytes, val.data->bytes.size())) std::memcpy(tmp.data(), val.data->bytes.data(), n);
    } else if (plan.values[v].has_host_values) {
      std::vector<int64_t> shape, hv;
      if (plan.values[v].data_shaped) data_shaped_value(g, plan, v, known, shape, hv);
      else hv = plan.values[v].host_values;
      for (size_t k = 0; k < hv.size() && k < static_cast<size_t>(outputs[i].numel()); ++k) {
        if (val.dtype == DType::Int64) reinterpret_cast<int64_t*>(tmp.data())[k] = hv[k];
        else if (val.dtype == DType::Int32) reinterpret_cast<int32_t*>(tmp.data())[k] = static_cast<int32_t>(hv[k]);
        else throw Error("output '" + val.name + "' is a shape value of type " + dtype_name(val.dtype) + ", expected int64 or int32");
      }
    } else {
      bool found = false;
      for (size_t k = 0; k < g.inputs.size() && !found; ++k)
        if (g.inputs[k] == v) backend_->copy_to_host(tmp.data(), inputs[k].data, bytes), found = true;
      if (!found) throw Error("output '" + val.name + "' is produced by no node of this engine");
    }
    backend_->copy_from_host(outputs[i].data, tmp.data(), bytes);
  }
  return actual;
}

// Device buffers for run()'s inputs and outputs, one per graph input/output slot, grown only: the
// pointers stay put from run to run, so a captured CUDA graph of the shape stays valid.
void* Session::staging(size_t slot, size_t bytes) {
  if (slot >= staging_.size()) staging_.resize(slot + 1);
  Buffer& s = staging_[slot];
  if (!s || s.bytes() < bytes) {
    s.reset();
    s = Buffer(*backend_, bytes);
  }
  return s.get();
}

std::vector<HostTensor> Session::run(const std::vector<HostTensor>& inputs) {
  const Graph& g = engine_->graph;
  if (is_deferred(*engine_)) {
    std::map<std::string, TensorData> values;
    std::vector<std::vector<int64_t>> shapes(g.inputs.size());
    for (const auto& t : inputs)
      for (size_t i = 0; i < g.inputs.size(); ++i)
        if (g.value(g.inputs[i]).name == t.name) shapes[i] = t.shape;
    for (const auto& t : inputs)
      if (is_shape_input(t.name)) {
        if (t.bytes.size() != static_cast<size_t>(t.numel()) * dtype_size(t.dtype))
          throw Error("input '" + t.name + "' holds " + std::to_string(t.bytes.size()) + " bytes, its shape needs " +
                      std::to_string(t.numel() * dtype_size(t.dtype)));
        TensorData d;
        d.dtype = t.dtype;
        d.shape = t.shape;
        d.bytes = t.bytes;
        values[t.name] = std::move(d);
      }
    return specialised(values, shapes).run(inputs);
  }
  std::vector<const HostTensor*> ordered(g.inputs.size(), nullptr);
  for (const auto& t : inputs) {
    bool found = false;
    for (size_t i = 0; i < g.inputs.size(); ++i)
      if (g.value(g.inputs[i]).name == t.name) ordered[i] = &t, found = true;
    if (!found) {
      std::string names;
      for (int id : g.inputs) names += (names.empty() ? "'" : ", '") + g.value(id).name + "'";
      throw Error("'" + t.name + "' is not an input of this engine (inputs: " + names + ")");
    }
  }
  std::vector<std::vector<int64_t>> shapes;
  for (size_t i = 0; i < ordered.size(); ++i) {
    if (!ordered[i]) throw Error("input '" + g.value(g.inputs[i]).name + "' was not given");
    if (ordered[i]->bytes.size() != static_cast<size_t>(ordered[i]->numel()) * dtype_size(ordered[i]->dtype))
      throw Error("input '" + ordered[i]->name + "' holds " + std::to_string(ordered[i]->bytes.size()) + " bytes, its shape needs " +
                  std::to_string(ordered[i]->numel() * dtype_size(ordered[i]->dtype)));
    if (ordered[i]->dtype != g.value(g.inputs[i]).dtype)
      throw Error("input '" + ordered[i]->name + "' has type " + dtype_name(ordered[i]->dtype) + ", the engine expects " +
                  dtype_name(g.value(g.inputs[i]).dtype));
    shapes.push_back(ordered[i]->shape);
  }
  Prepared& pp = prepare_for(shapes);
  const bool host = backend_->host_visible();
  std::vector<TensorView> in_views, out_views;
  for (size_t i = 0; i < ordered.size(); ++i) {
    TensorView t;
    t.dtype = ordered[i]->dtype;
    t.shape = ordered[i]->shape;
    if (host) t.data = const_cast<uint8_t*>(ordered[i]->bytes.data());
    else {
      t.data = staging(i, ordered[i]->bytes.size());
      backend_->copy_from_host(t.data, ordered[i]->bytes.data(), ordered[i]->bytes.size());
    }
    in_views.push_back(t);
  }
  std::vector<HostTensor> results;
  for (int v : g.outputs) {
    HostTensor h;
    h.name = g.value(v).name;
    h.dtype = g.value(v).dtype;
    h.shape = pp.plan.values[v].shape;
    h.bytes.resize(static_cast<size_t>(h.numel()) * dtype_size(h.dtype));
    results.push_back(std::move(h));
  }
  for (auto& h : results) {
    TensorView t;
    t.dtype = h.dtype;
    t.shape = h.shape;
    if (host) t.data = h.bytes.data();
    else {
      t.data = staging(ordered.size() + out_views.size(), h.bytes.size());
    }
    out_views.push_back(t);
  }
  const auto actual = execute(in_views, out_views);
  for (size_t i = 0; i < results.size(); ++i) {
    // A data-dependent output fills the start of its buffer at its actual shape.
    results[i].shape = actual[i];
    results[i].bytes.resize(static_cast<size_t>(results[i].numel()) * dtype_size(results[i].dtype));
    if (!host) backend_->copy_to_host(results[i].bytes.data(), out_views[i].data, results[i].bytes.size());
  }
  if (!host) backend_->synchronize();
  return results;
}

size_t Session::peak_activation_bytes() const { return last_ ? last_->plan.arena_bytes : 0; }
size_t Session::naive_activation_bytes() const { return last_ ? last_->plan.naive_bytes : 0; }

std::vector<std::vector<int64_t>> Session::output_shapes(const std::vector<std::vector<int64_t>>& input_shapes) {
  Prepared& pp = prepare_for(input_shapes);
  std::vector<std::vector<int64_t>> out;
  for (int v : engine_->graph.outputs) out.push_back(pp.plan.values[v].shape);
  return out;
}

std::vector<LayerTiming> Session::profile_layers(const std::vector<HostTensor>& inputs, int iterations) {
  // Bind the views to buffers that stay alive while the kernels are timed one by one.
  const Graph& g = engine_->graph;
  std::vector<TensorView> ins, outs;
  std::vector<Buffer> held;
  std::vector<std::vector<int64_t>> shapes;
  for (int id : g.inputs)
    for (const auto& t : inputs)
      if (t.name == g.value(id).name) {
        TensorView v;
        v.dtype = t.dtype;
        v.shape = t.shape;
        held.emplace_back(*backend_, t.bytes.size());
        v.data = held.back().get();
        backend_->copy_from_host(v.data, t.bytes.data(), t.bytes.size());
        ins.push_back(v);
        shapes.push_back(t.shape);
      }
  if (ins.size() != g.inputs.size()) throw Error("profile: every graph input must be given");
  auto oshapes = output_shapes(shapes);
  for (size_t i = 0; i < oshapes.size(); ++i) {
    TensorView v;
    v.dtype = g.value(g.outputs[i]).dtype;
    v.shape = oshapes[i];
    held.emplace_back(*backend_, v.bytes());
    v.data = held.back().get();
    outs.push_back(v);
  }
  execute(ins, outs);
  const Plan& plan = last_->plan;
  RunContext ctx = backend_->context();
  ctx.workspace = workspace_.get();
  ctx.workspace_bytes = workspace_.bytes();
  std::vector<LayerTiming> t;
  std::vector<std::function<void()>> steps;
  for (Segment* seg : last_segments_)
    for (int s = seg->begin; s < seg->end; ++s) {
      const int idx = plan.steps[s];
      const Node& n = g.nodes[idx];
      auto step = [this, idx, seg, s, &ctx] { kernels_[idx]->run(seg->ins[s - seg->begin], seg->outs[s - seg->begin], ctx); };
      double ms = backend_->elapsed_ms([&] {
        for (int it = 0; it < iterations; ++it) step();
      });
      t.push_back({n.name, n.op_type, ms / std::max(1, iterations), -1, kernels_[idx]->tactic()});
      steps.push_back(step);
    }
  // A layer alone finds its weights in the L2 cache and its launches overlapping; in the network
  // it does not, which is where a kernel that wins alone can lose.
  const std::vector<double> seq = capture_supported_ ? backend_->sequence_ms(steps, iterations) : std::vector<double>{};
  for (size_t i = 0; i < seq.size() && i < t.size(); ++i) t[i].in_sequence_ms = seq[i];
  backend_->synchronize();
  return t;
}

}  // namespace unirt
