// What the fuzz harnesses share: run an engine the way the CLI would, at one small shape, on the
// CPU backend. A unirt::Error is the expected answer to a bad input; anything else that escapes
// (another exception, a sanitizer report, a signal) is a bug the fuzzer reports.
#pragma once
#include <cstring>
#include <memory>

#include "runtime/planner.h"
#include "runtime/session.h"

namespace unirt::fuzz {

// Plans and runs `e` with every symbolic input dimension at 2 (constants as they are) and inputs
// of zeros, when the plan is small enough to run quickly.
inline void run_small(const Engine& e) {
  if (is_deferred(e)) return;
  std::map<std::string, std::vector<int64_t>> shapes;
  std::vector<HostTensor> inputs;
  for (int id : e.graph.inputs) {
    const Value& v = e.graph.value(id);
    HostTensor t;
    t.name = v.name;
    t.dtype = v.dtype;
    for (const Dim& d : v.shape) t.shape.push_back(d.is_const() ? d.value() : std::max<int64_t>(2, d.range().lo));
    shapes[v.name] = t.shape;
    size_t bytes;
    if (!bytes_within_limits(t.shape, t.dtype, &bytes) || bytes > (size_t{1} << 20)) return;
    t.bytes.assign(bytes, 0);
    inputs.push_back(std::move(t));
  }
  const Plan p = make_plan(e, shapes);
  size_t outputs = 0;
  for (int v : e.graph.outputs) outputs += planned_bytes(e.graph, p, v);
  if (p.arena_bytes > (size_t{64} << 20) || outputs > (size_t{64} << 20)) return;  // valid, just too big to run here
  Session s(std::make_shared<Engine>(e), make_cpu_backend(1));
  s.run(inputs);
}

}  // namespace unirt::fuzz
