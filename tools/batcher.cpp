#include "batcher.h"

#include <algorithm>
#include <cstring>
#include <future>

namespace unirt {

using Clock = std::chrono::steady_clock;

void Histogram::add(double v) {
  size_t i = 0;
  while (i < bounds.size() && v > bounds[i]) ++i;
  ++counts[i];
  sum += v;
  ++count;
}

ModelInstance::ModelInstance(std::shared_ptr<const Engine> engine, std::unique_ptr<Backend> backend, const std::string& label, SessionOptions o)
    : session_(std::make_unique<Session>(std::move(engine), std::move(backend), o)), label_(label) {}

std::vector<HostTensor> ModelInstance::run(const std::vector<HostTensor>& inputs) {
  std::lock_guard<std::mutex> lock(mu_);
  return session_->run(inputs);
}

struct DynamicBatcher::Pending {
  std::vector<HostTensor> inputs;  // in graph order
  int64_t rows = 1;
  std::string key;  // requests with equal keys can share a batch
  Clock::time_point enqueued, deadline;
  std::promise<InferResult> answer;
};

namespace {

bool same_dim(const Dim& a, const Dim& b) { return a.str() == b.str(); }

std::string shape_key(const std::vector<HostTensor>& in, bool skip_first) {
  std::string k;
  for (const auto& t : in) {
    k += t.name + ":" + dtype_name(t.dtype);
    for (size_t d = skip_first ? 1 : 0; d < t.shape.size(); ++d) k += "x" + std::to_string(t.shape[d]);
    k += ";";
  }
  return k;
}

double ms_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); }

}  // namespace

DynamicBatcher::DynamicBatcher(std::shared_ptr<const Engine> engine, std::vector<std::shared_ptr<ModelInstance>> instances, BatcherOptions o)
    : engine_(std::move(engine)), instances_(std::move(instances)), opts_(o) {
  if (instances_.empty()) throw Error("a model needs at least one instance");
  const Graph& g = engine_->graph;
  // Merging requests is sound when every input and output carries the batch as its first,
  // symbolic dimension and no size depends on the data (a detector's kept boxes would then depend
  // on its batch-mates).
  batchable_ = !g.inputs.empty() && g.data_dims.empty();
  const Value& first = g.value(g.inputs.empty() ? 0 : g.inputs[0]);
  if (batchable_ && (first.shape.empty() || first.shape[0].is_const())) batchable_ = false;
  for (const auto& ids : {g.inputs, g.outputs})
    for (int id : ids) {
      const Value& v = g.value(id);
      if (!batchable_ || v.shape.empty() || !same_dim(v.shape[0], first.shape[0])) batchable_ = false;
    }
  int64_t profile_max = 0;
  if (batchable_) {
    auto it = engine_->options.profile.max.find(first.name);
    if (it != engine_->options.profile.max.end() && !it->second.empty()) profile_max = it->second[0];
  }
  if (!batchable_ || !opts_.dynamic_batching) {
    max_batch_ = batchable_ ? (opts_.max_batch > 0 ? opts_.max_batch : std::max<int64_t>(profile_max, 1)) : 1;
  } else if (opts_.max_batch > 0) {
    if (profile_max > 0 && opts_.max_batch > profile_max)
      throw Error("max batch " + std::to_string(opts_.max_batch) + " exceeds the engine profile's largest batch " + std::to_string(profile_max) +
                  " (input '" + first.name + "': " + engine_->options.profile.describe(first.name) + ")");
    max_batch_ = opts_.max_batch;
  } else {
    max_batch_ = profile_max > 0 ? profile_max : 1;
  }
  for (size_t i = 0; i < instances_.size(); ++i) workers_.emplace_back([this, i] { worker(i); });
}

DynamicBatcher::~DynamicBatcher() { shutdown(); }

size_t DynamicBatcher::queue_depth() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

DynamicBatcher::Stats DynamicBatcher::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

std::string DynamicBatcher::check_inputs(const std::vector<HostTensor>& inputs, std::vector<HostTensor>& ordered, int64_t* rows) const {
  const Graph& g = engine_->graph;
  const ShapeProfile& prof = engine_->options.profile;
  ordered.assign(g.inputs.size(), HostTensor());
  std::vector<bool> given(g.inputs.size(), false);
  for (const auto& t : inputs) {
    size_t i = 0;
    while (i < g.inputs.size() && g.value(g.inputs[i]).name != t.name) ++i;
    if (i == g.inputs.size()) {
      std::string names;
      for (int id : g.inputs) names += (names.empty() ? "'" : ", '") + g.value(id).name + "'";
      return "'" + t.name + "' is not an input of this model (inputs: " + names + ")";
    }
    if (given[i]) return "input '" + t.name + "' is given twice";
    given[i] = true;
    ordered[i] = t;
  }
  *rows = 1;
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    const Value& v = g.value(g.inputs[i]);
    if (!given[i]) return "input '" + v.name + "' was not given";
    const HostTensor& t = ordered[i];
    if (t.dtype != v.dtype) return "input '" + v.name + "' is " + dtype_name(t.dtype) + ", the model expects " + dtype_name(v.dtype);
    if (t.shape.size() != v.shape.size())
      return "input '" + v.name + "' has " + std::to_string(t.shape.size()) + " dimensions " + dims_text(t.shape) + ", the model expects " +
             std::to_string(v.shape.size());
    auto lo = prof.min.find(v.name), hi = prof.max.find(v.name);
    for (size_t d = 0; d < t.shape.size(); ++d) {
      if (t.shape[d] < 0) return "input '" + v.name + "' has a negative dimension";
      if (v.shape[d].is_const() && v.shape[d].value() != t.shape[d])
        return "input '" + v.name + "' dimension " + std::to_string(d) + " is " + std::to_string(t.shape[d]) + ", the model expects " +
               std::to_string(v.shape[d].value());
      const bool below = lo != prof.min.end() && d < lo->second.size() && t.shape[d] < lo->second[d];
      const bool above = hi != prof.max.end() && d < hi->second.size() && t.shape[d] > hi->second[d];
      if (below || above)
        return "input '" + v.name + "' is " + dims_text(t.shape) + ", outside the engine's profile (" + prof.describe(v.name) + ")";
    }
    const size_t want = static_cast<size_t>(t.numel()) * dtype_size(t.dtype);
    if (t.bytes.size() != want)
      return "input '" + v.name + "' holds " + std::to_string(t.bytes.size()) + " bytes, its shape " + dims_text(t.shape) + " needs " +
             std::to_string(want);
  }
  if (batchable_) {
    *rows = ordered[0].shape[0];
    for (const auto& t : ordered)
      if (t.shape[0] != *rows) return "inputs disagree on the batch: '" + ordered[0].name + "' has " + std::to_string(*rows) + " rows, '" + t.name + "' " + std::to_string(t.shape[0]);
    if (*rows < 1) return "input '" + ordered[0].name + "' has no rows";
    if (*rows > max_batch_) return "a batch of " + std::to_string(*rows) + " rows exceeds the model's max batch " + std::to_string(max_batch_);
  }
  return "";
}

InferResult DynamicBatcher::infer(std::vector<HostTensor> inputs) {
  auto p = std::make_shared<Pending>();
  InferResult bad;
  const std::string why = check_inputs(inputs, p->inputs, &p->rows);
  std::unique_lock<std::mutex> lock(mu_);
  ++stats_.requests;
  if (!why.empty()) {
    ++stats_.failed;
    bad.status = 400;
    bad.error = why;
    return bad;
  }
  if (stopping_ || queue_.size() >= opts_.max_queue) {
    ++stats_.rejected;
    bad.status = 503;
    bad.error = stopping_ ? "the server is shutting down" :
        "the queue is full (" + std::to_string(queue_.size()) + " requests waiting, --max-queue " + std::to_string(opts_.max_queue) + "): retry later";
    return bad;
  }
  p->key = shape_key(p->inputs, batchable_);
  p->enqueued = Clock::now();
  p->deadline = p->enqueued + opts_.timeout;
  std::future<InferResult> answer = p->answer.get_future();
  queue_.push_back(p);
  ++accepted_unanswered_;
  lock.unlock();
  cv_.notify_all();
  // The worker answers every accepted request, late ones included (with 504); waiting a little
  // longer than the timeout covers a batch that started just before it.
  if (answer.wait_until(p->deadline + std::chrono::seconds(5)) != std::future_status::ready) {
    bad.status = 504;
    bad.error = "no answer within the request timeout (" + std::to_string(opts_.timeout.count()) + " ms): the model is still busy";
    return bad;
  }
  return answer.get();
}

void DynamicBatcher::finish(Pending& p, InferResult r) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (r.status == 200) {
      ++stats_.succeeded;
      stats_.latency_ms.add(ms_between(p.enqueued, Clock::now()));
      stats_.queue_ms.add(r.queue_ms);
    } else if (r.status == 504) {
      ++stats_.timed_out;
    } else {
      ++stats_.failed;
    }
    --accepted_unanswered_;
  }
  p.answer.set_value(std::move(r));
  drained_.notify_all();
}

void DynamicBatcher::worker(size_t index) {
  ModelInstance& inst = *instances_[index];
  for (;;) {
    std::vector<std::shared_ptr<Pending>> group;
    int64_t rows = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      group.push_back(queue_.front());
      queue_.pop_front();
      rows = group[0]->rows;
      const std::string key = group[0]->key;
      if (batchable_ && opts_.dynamic_batching) {
        const Clock::time_point until = group[0]->enqueued + opts_.max_queue_delay;
        for (;;) {
          for (auto it = queue_.begin(); it != queue_.end() && rows < max_batch_;) {
            if ((*it)->key == key && rows + (*it)->rows <= max_batch_) {
              rows += (*it)->rows;
              group.push_back(*it);
              it = queue_.erase(it);
            } else {
              ++it;
            }
          }
          if (rows >= max_batch_ || stopping_ || Clock::now() >= until) break;
          cv_.wait_until(lock, until);
        }
      }
    }
    const Clock::time_point start = Clock::now();
    std::vector<std::shared_ptr<Pending>> live;
    rows = 0;
    for (auto& p : group) {
      if (start > p->deadline) {
        InferResult r;
        r.status = 504;
        r.error = "timed out in the queue after " + std::to_string(static_cast<long long>(ms_between(p->enqueued, start))) + " ms";
        finish(*p, std::move(r));
      } else {
        live.push_back(p);
        rows += p->rows;
      }
    }
    if (live.empty()) continue;
    // One batch: the requests' rows concatenated input by input.
    std::vector<HostTensor> batch;
    if (live.size() == 1) {
      batch = live[0]->inputs;
    } else {
      for (size_t i = 0; i < live[0]->inputs.size(); ++i) {
        HostTensor t = live[0]->inputs[i];
        t.shape[0] = rows;
        t.bytes.clear();
        t.bytes.reserve(static_cast<size_t>(t.numel()) * dtype_size(t.dtype));
        for (auto& p : live) t.bytes.insert(t.bytes.end(), p->inputs[i].bytes.begin(), p->inputs[i].bytes.end());
        batch.push_back(std::move(t));
      }
    }
    std::vector<HostTensor> outs;
    std::string failure;
    ++inst.in_flight;
    try {
      outs = inst.run(batch);
    } catch (const std::exception& e) {
      failure = e.what();
    }
    --inst.in_flight;
    ++inst.batches;
    const double compute_ms = ms_between(start, Clock::now());
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.batches;
      stats_.batch_size.add(static_cast<double>(rows));
    }
    if (!failure.empty()) {
      ++inst.failures;
      for (auto& p : live) {
        InferResult r;
        r.status = 500;
        r.error = "the model failed on instance " + inst.label() + ": " + failure;
        finish(*p, std::move(r));
      }
      continue;
    }
    int64_t row0 = 0;
    for (auto& p : live) {
      InferResult r;
      r.batch = rows;
      r.queue_ms = ms_between(p->enqueued, start);
      r.compute_ms = compute_ms;
      for (const HostTensor& o : outs) {
        if (live.size() == 1) {
          r.outputs.push_back(o);
          continue;
        }
        HostTensor part = o;
        const size_t row_bytes = o.bytes.size() / static_cast<size_t>(rows);
        part.shape[0] = p->rows;
        part.bytes.assign(o.bytes.begin() + row0 * row_bytes, o.bytes.begin() + (row0 + p->rows) * row_bytes);
        r.outputs.push_back(std::move(part));
      }
      row0 += p->rows;
      finish(*p, std::move(r));
    }
  }
}

int DynamicBatcher::warm_up() {
  const Graph& g = engine_->graph;
  const ShapeProfile& prof = engine_->options.profile;
  std::vector<HostTensor> base;
  for (int id : g.inputs) {
    const Value& v = g.value(id);
    HostTensor t;
    t.name = v.name;
    t.dtype = v.dtype;
    auto opt = prof.opt.find(v.name), lo = prof.min.find(v.name);
    for (size_t d = 0; d < v.shape.size(); ++d) {
      if (v.shape[d].is_const()) t.shape.push_back(v.shape[d].value());
      else if (opt != prof.opt.end() && d < opt->second.size()) t.shape.push_back(opt->second[d]);
      else if (lo != prof.min.end() && d < lo->second.size()) t.shape.push_back(lo->second[d]);
      else return 0;  // a free dimension with no profile: nothing sensible to prepare
    }
    base.push_back(std::move(t));
  }
  int shapes = 0;
  const int64_t top = batchable_ ? max_batch_ : 0;
  for (int64_t b = batchable_ ? 1 : 0; b <= top; ++b) {
    std::vector<HostTensor> in = base;
    for (auto& t : in) {
      if (batchable_) t.shape[0] = b;
      t.bytes.assign(static_cast<size_t>(t.numel()) * dtype_size(t.dtype), 0);
    }
    for (auto& inst : instances_) {
      inst->run(in);
      inst->run(in);  // the second run of a shape captures its CUDA graph
    }
    ++shapes;
  }
  return shapes;
}

void DynamicBatcher::shutdown() {
  {
    std::unique_lock<std::mutex> lock(mu_);
    stopping_ = true;
    cv_.notify_all();
    drained_.wait(lock, [&] { return accepted_unanswered_ == 0; });
  }
  cv_.notify_all();
  for (auto& t : workers_)
    if (t.joinable()) t.join();
}

}  // namespace unirt
