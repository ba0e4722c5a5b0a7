// Per input-shape plan: concrete shapes, which nodes run, and where each activation lives in one
// arena (buffers reused once their last reader has run).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "runtime/engine.h"

namespace unirt {

// What the plan knows of one value at these input shapes.
struct PlannedValue {
  static constexpr size_t kNoBuffer = ~size_t{0};
  std::vector<int64_t> shape;        // concrete; the upper bound when data_shaped
  std::vector<int64_t> host_values;  // its elements, for values known on the host (shape values, int64 constants)
  bool has_host_values = false;
  bool data_shaped = false;  // its shape or host values involve a data-dependent size
  bool written = false;      // some step writes it (or it is a view of a buffer one writes)
  int first_step = -1, last_step = -1;  // arena values: live range in Plan::steps
  // Arena offset, or kNoBuffer for constants, shape values and graph inputs/outputs (those live in
  // their own buffers, given by the caller, so results never alias the arena).
  size_t offset = kNoBuffer;
};

struct Plan {
  static constexpr size_t kNoBuffer = PlannedValue::kNoBuffer;
  std::map<std::string, int64_t> bindings;  // symbol -> size
  std::vector<PlannedValue> values;         // per value id
  std::vector<int> steps;                   // node indices that run, in order
  size_t arena_bytes = 0;                   // peak activation bytes with reuse
  size_t naive_bytes = 0;                   // without reuse, for comparison

  // Data-dependent sizes (Graph::data_dims), in step order. The steps split into segments after
  // each node that writes one. Until the runtime reads a size back, the shapes (and host values)
  // of the values that depend on it hold their upper bound: memory is planned for the bound, so
  // offsets never move, and the segments after it are prepared once the size is known.
  struct DataSize {
    std::string symbol;
    std::string node;
    int step = -1;      // index in `steps` of the node whose kernel writes it
    int64_t bound = 0;  // the most it can be at these input shapes
    size_t slot = 0;    // index in Graph::data_dims
  };
  std::vector<DataSize> data_sizes;
  std::vector<int> segment_ends;  // exclusive end (index in `steps`) of each segment, the last is steps.size()
};

// Binds the graph-input symbols from `input_shapes` (by input name), checks them against the
// profile, evaluates every shape and plans memory (planner.cpp: bind_inputs, bound_data_sizes,
// evaluate_shapes, schedule_steps, split_segments, pack_arena). Throws Error naming the tensor and
// the profile.
Plan make_plan(const Engine& e, const std::map<std::string, std::vector<int64_t>>& input_shapes);

// Checks every shape guard of the graph at these symbol values; throws Error naming the node,
// the check and the values.
// Guards that mention data-dependent sizes are skipped here and checked by check_data_guards.
void check_guards(const Graph& g, const std::map<std::string, int64_t>& bindings);
// Checks the guards whose data sizes are all in `known` (input bindings and the sizes read back so
// far) and that mention one of `fresh` (the sizes just read back).
void check_data_guards(const Graph& g, const std::map<std::string, int64_t>& known, const std::vector<std::string>& fresh);
// Shape and host values of value v once the sizes in `known` are read back: exact where all the
// sizes it depends on are known, the planned upper bound otherwise.
void data_shaped_value(const Graph& g, const Plan& p, int v, const std::map<std::string, int64_t>& known,
                       std::vector<int64_t>& shape, std::vector<int64_t>& host_values);
std::string bindings_text(const std::map<std::string, int64_t>& b);

// Ops whose output is the input's bytes under another shape: planned as views, never run.
bool is_view_op(const std::string& op);
// True for nodes the planner never runs (their outputs are constants or shape values).
bool node_is_static(const Graph& g, const Node& n);

// Bytes of one value at its planned shape, rounded up to the arena alignment (256).
size_t planned_bytes(const Graph& g, const Plan& p, int value);

}  // namespace unirt
