// Runs an engine on a backend: kernels created once, constants uploaded once, one plan (and, on
// CUDA, one captured graph) per input-shape signature.
#pragma once
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "runtime/engine.h"
#include "runtime/planner.h"

namespace unirt {

// A tensor in host memory with the name of the graph input or output it is for.
struct HostTensor : TensorData {
  std::string name;

  HostTensor() = default;
  HostTensor(std::string n, DType type, std::vector<int64_t> dims, std::vector<uint8_t> data = {})
      : TensorData{type, std::move(dims), std::move(data)}, name(std::move(n)) {}
  HostTensor(std::string n, TensorData t) : TensorData(std::move(t)), name(std::move(n)) {}
};

struct SessionOptions {
  int threads = 0;          // CPU backend; 0 = all cores
  bool cuda_graphs = true;  // capture each input shape into a CUDA graph
  size_t max_cached_plans = 16;
  // Per plan and segment after a data-dependent size: how many sets of sizes stay prepared.
  size_t max_cached_segments = 64;
  // Debugging: fill the activation arena and the workspace with 0xFF bytes (NaN in float32 and
  // float16) when they are allocated, so a kernel that reads what nothing wrote shows as NaN.
  // Also set by the environment variable UNIRT_POISON_MEMORY=1.
  bool poison_memory = false;
};

struct LayerTiming {
  std::string node, op;
  double ms = 0;              // the layer alone, launched `iterations` times in a row
  double in_sequence_ms = -1; // its share of one run of the whole network (-1: not measured)
  std::string tactic;         // the implementation it runs at this shape, where it chose one
};

class Session;
// Times the implementations kernels offer at the engine's opt shapes on `backend` and records the
// choices in e.tactics (saved with the engine, reused when it is loaded). No-op without opt shapes.
void select_tactics(Engine& e, std::unique_ptr<Backend> backend);

class Session {
 public:
  Session(std::shared_ptr<const Engine> engine, std::unique_ptr<Backend> backend, SessionOptions o = {});
  ~Session();  // where Prepared and Segment are complete
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Host in, host out; inputs matched by name.
  std::vector<HostTensor> run(const std::vector<HostTensor>& inputs);
  // For callers that manage backend memory themselves (device pointers on CUDA): one view per
  // graph input and output, in graph order, outputs of the shapes output_shapes() gives. No
  // allocation once this input shape has been seen. Returns the outputs' actual shapes: an output
  // whose size depends on data (NonZero, NonMaxSuppression, TopK with a data k) fills the start of
  // its buffer, row-major at its actual shape.
  std::vector<std::vector<int64_t>> execute(const std::vector<TensorView>& inputs, const std::vector<TensorView>& outputs);
  // Output shapes for the given input shapes (graph order); for a data-dependent size, its upper
  // bound (what the buffer must hold).
  std::vector<std::vector<int64_t>> output_shapes(const std::vector<std::vector<int64_t>>& input_shapes);
  // True when some output size depends on data: each run then synchronises once per data-dependent
  // node to read the size back before the nodes after it are planned.
  bool has_data_dependent_sizes() const { return !engine_->graph.data_dims.empty(); }
  // Per-layer device time, averaged over `iterations` runs of the last-used shape.
  std::vector<LayerTiming> profile_layers(const std::vector<HostTensor>& inputs, int iterations);

  // The implementation each kernel chose (node name -> description) for the last prepared shape.
  std::map<std::string, std::string> tactics() const;

  size_t peak_activation_bytes() const;   // of the last planned input shape
  size_t naive_activation_bytes() const;  // same buffers without reuse
  size_t weight_bytes() const { return weight_bytes_; }
  size_t workspace_bytes() const { return workspace_.bytes(); }
  const Engine& engine() const { return *engine_; }
  Backend& backend() { return *backend_; }
  void synchronize() { backend_->synchronize(); }

 private:
  friend void select_tactics(Engine& e, std::unique_ptr<Backend> backend);
  struct Prepared;
  struct Segment;
  Prepared& prepare_for(const std::vector<std::vector<int64_t>>& input_shapes);
  // Segment k of pp's plan at the data sizes read back so far (`known`, keyed by `sizes`).
  Segment& segment_for(Prepared& pp, size_t k, const std::map<std::string, int64_t>& known, const std::vector<int64_t>& sizes);
  void grow_workspace(size_t bytes);
  void poison(void* p, size_t bytes);
  void launch(const Plan& plan, Segment& seg);
  void bind_views(const Plan& plan, Segment& seg, const std::map<int, void*>& io);
  void check_input(const Value& v, const TensorView& t, size_t i) const;

  // Declared first among the buffers' owners: members go in reverse order, so every Buffer below
  // is freed while the backend that allocated it still exists.
  std::shared_ptr<const Engine> engine_;
  std::unique_ptr<Backend> backend_;
  SessionOptions opts_;
  std::vector<std::unique_ptr<OpKernel>> kernels_;  // per node index (null for static nodes)
  std::vector<Buffer> consts_;                      // per value: its uploaded constant, if any
  size_t weight_bytes_ = 0;
  Buffer arena_;
  Buffer workspace_;
  std::list<std::unique_ptr<Prepared>> cache_;  // most recent first
  Prepared* last_ = nullptr;
  std::vector<Segment*> last_segments_;  // the segments the last execute() ran, in order
  Buffer sizes_;                         // where kernels write data-dependent sizes
  bool capture_supported_ = true;        // false once the backend's capture() returned null
  std::vector<Buffer> staging_;          // run()'s device copies of inputs/outputs, per slot
  void* staging(size_t slot, size_t bytes);
  // Engines with shape inputs: one specialised session per value set, most recent first.
  std::list<std::pair<std::vector<std::vector<int64_t>>, std::unique_ptr<Session>>> specialised_;
  Session& specialised(const std::map<std::string, TensorData>& values, const std::vector<std::vector<int64_t>>& input_shapes);
  std::map<std::string, TensorData> shape_input_values(const std::vector<TensorView>& inputs);
  bool is_shape_input(const std::string& name) const;
};

}  // namespace unirt
