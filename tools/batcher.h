// Dynamic batching for `unirt serve`: concurrent requests for one model are queued, merged along
// the batch dimension (those whose other dimensions and types agree), run once on a model
// instance and split back. A bounded queue refuses work it cannot hold instead of growing; a
// request past its deadline is answered as timed out, never run; shutdown() drains what was
// accepted. Instances are objects of their own, so a batcher can feed several (one per GPU).
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/session.h"

namespace unirt {

// Latency and batch-size distributions as Prometheus histograms (cumulative buckets).
struct Histogram {
  std::vector<double> bounds;  // upper bounds, ascending; +Inf implied
  std::vector<uint64_t> counts;
  double sum = 0;
  uint64_t count = 0;
  explicit Histogram(std::vector<double> b) : bounds(std::move(b)), counts(bounds.size() + 1, 0) {}
  void add(double v);
};

struct BatcherOptions {
  int64_t max_batch = 0;                     // 0: the engine profile's largest batch (or 1 if it has none)
  std::chrono::microseconds max_queue_delay{1000};
  size_t max_queue = 1024;                   // requests waiting; a full queue refuses more
  std::chrono::milliseconds timeout{30000};  // per request, from submission to answer
  bool dynamic_batching = true;
};

// What one request gets back: its outputs, or why not (status: 400 bad input, 503 queue full or
// shutting down, 504 timed out, 500 the engine failed).
struct InferResult {
  int status = 200;
  std::string error;
  std::vector<HostTensor> outputs;
  int64_t batch = 0;       // the batch it ran in (requests' rows together)
  double queue_ms = 0, compute_ms = 0;
};

// One engine on one backend: a session and the lock that serialises it.
class ModelInstance {
 public:
  ModelInstance(std::shared_ptr<const Engine> engine, std::unique_ptr<Backend> backend, const std::string& label, SessionOptions o = {});
  std::vector<HostTensor> run(const std::vector<HostTensor>& inputs);
  const std::string& label() const { return label_; }
  std::atomic<int64_t> in_flight{0};
  std::atomic<uint64_t> batches{0}, failures{0};

 private:
  std::unique_ptr<Session> session_;
  std::mutex mu_;
  std::string label_;
};

class DynamicBatcher {
 public:
  DynamicBatcher(std::shared_ptr<const Engine> engine, std::vector<std::shared_ptr<ModelInstance>> instances, BatcherOptions o);
  ~DynamicBatcher();  // shutdown()
  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  // Blocks until the request is answered (run, refused, timed out or failed). Inputs by name, each
  // with its batch rows first when the engine batches; every problem is in the result.
  InferResult infer(std::vector<HostTensor> inputs);
  // Stops taking requests (they get 503) and waits until every accepted one is answered.
  void shutdown();
  // Runs every batch size the batcher can form (1..max batch, zeros at the profile's opt shape
  // otherwise) twice on every instance, so the plans and CUDA graphs exist before the first
  // request (Triton's model warm-up). Returns how many shapes were prepared.
  int warm_up();

  // Whether requests can be merged: every input and output has the same symbolic first dimension.
  bool batchable() const { return batchable_; }
  int64_t max_batch() const { return max_batch_; }
  size_t queue_depth() const;
  struct Stats {
    uint64_t requests = 0, succeeded = 0, failed = 0, rejected = 0, timed_out = 0, batches = 0;
    Histogram batch_size{{1, 2, 4, 8, 16, 32, 64, 128, 256}};
    Histogram latency_ms{{0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000}};
    Histogram queue_ms{{0.1, 0.5, 1, 2, 5, 10, 20, 50, 100, 1000}};
  };
  Stats stats() const;
  const std::vector<std::shared_ptr<ModelInstance>>& instances() const { return instances_; }

 private:
  struct Pending;
  void worker(size_t instance);
  std::string check_inputs(const std::vector<HostTensor>& inputs, std::vector<HostTensor>& ordered, int64_t* rows) const;
  void finish(Pending& p, InferResult r);

  std::shared_ptr<const Engine> engine_;
  std::vector<std::shared_ptr<ModelInstance>> instances_;
  BatcherOptions opts_;
  bool batchable_ = false;
  int64_t max_batch_ = 1;
  mutable std::mutex mu_;
  std::condition_variable cv_;  // workers: work arrived or stopping
  std::deque<std::shared_ptr<Pending>> queue_;
  bool stopping_ = false;
  size_t accepted_unanswered_ = 0;
  std::condition_variable drained_;
  Stats stats_;
  std::vector<std::thread> workers_;
};

}  // namespace unirt
