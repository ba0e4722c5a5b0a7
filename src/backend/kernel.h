// The kernel half of the backend contract: what a kernel sees (TensorView, RunContext), what it
// implements (OpKernel) and where it registers (KernelRegistry). backend/backend.h has the other
// half, memory and streams. The runtime owns shapes, planning and scheduling, so a new backend
// plugs into the same IR, passes and plan.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/precision.h"

namespace unirt {

// A concrete tensor as a kernel sees it: memory of the backend (host for CPU, device for CUDA).
struct TensorView {
  void* data = nullptr;
  DType dtype = DType::Undefined;
  std::vector<int64_t> shape;
  // Host copy of the elements for small integer tensors known at plan time (shape values such
  // as Reshape's target or Pad's amounts, and integer constants). nullptr otherwise.
  const int64_t* host_values = nullptr;

  int64_t numel() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
  size_t bytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  template <typename T> T* as() const { return static_cast<T*>(data); }
};

// A concrete shape seen as outer x n x inner around one axis: how axis-wise kernels (TopK, the arg
// reductions) of every backend walk a tensor.
struct AxisSplit {
  int64_t outer = 1, n = 1, inner = 1;
  AxisSplit(const std::vector<int64_t>& s, int64_t axis) {
    for (int64_t i = 0; i < axis; ++i) outer *= s[i];
    n = s[axis];
    for (size_t i = axis + 1; i < s.size(); ++i) inner *= s[i];
  }
};

struct RunContext {
  void* stream = nullptr;     // cudaStream_t for the CUDA backend
  void* workspace = nullptr;  // scratch of the size the kernel asked for in prepare()
  size_t workspace_bytes = 0;
  int threads = 1;            // CPU backend: OpenMP threads for this run
};

class OpKernel {
 public:
  virtual ~OpKernel() = default;
  // Once per input-shape signature, before run(), with concrete shapes (data pointers null).
  // Returns the scratch bytes run() needs. Must not allocate on the device.
  virtual size_t prepare(const std::vector<TensorView>& inputs, const std::vector<TensorView>& outputs) {
    (void)inputs;
    (void)outputs;
    return 0;
  }
  // Tactics: where several implementations exist, prepare() times them on the shape (it may use
  // temporary device memory and synchronise for that, never run()) and tactic() describes the
  // choice for the last prepared shape. An engine records these at its opt shape and hands them
  // back through use_tactic() when it is loaded, so the choice is not re-timed.
  virtual std::string tactic() const { return ""; }
  virtual void use_tactic(const std::string& recorded) { (void)recorded; }
  // Must not allocate or synchronise: the CUDA backend captures run() into CUDA graphs.
  virtual void run(const std::vector<TensorView>& inputs, const std::vector<TensorView>& outputs,
                   const RunContext& ctx) = 0;
};

struct KernelCreateArgs {
  const Graph& graph;
  const Node& node;
  Precision precision;
};

using KernelFactory = std::function<std::unique_ptr<OpKernel>(const KernelCreateArgs&)>;

// What a kernel covers, as `unirt ops` lists it: the element types of its data operands ("any"
// for kernels that move bytes whatever they mean) and, where it matters, the layouts and ranks.
struct KernelInfo {
  KernelInfo(std::string t = "", std::string l = "") : types(std::move(t)), layouts(std::move(l)) {}
  std::string types;
  std::string layouts;
};

// One registry per backend name ("cpu", "cuda"); kernels register by ONNX op type (or the
// name of a fused op such as "unirt.Attention"), one line per op, so "how does the CPU run Pad" is
// a search for UNIRT_REGISTER_KERNEL(cpu, Pad.
class KernelRegistry {
 public:
  static KernelRegistry& get(const std::string& backend);
  void add(const std::string& op_type, KernelFactory f, KernelInfo info);
  const KernelFactory* find(const std::string& op_type) const;
  const KernelInfo* info(const std::string& op_type) const;
  std::vector<std::string> ops() const;

 private:
  struct Entry {
    KernelFactory factory;
    KernelInfo info;
  };
  std::map<std::string, Entry> entries_;
};

struct KernelRegistrar {
  KernelRegistrar(const char* backend, const char* op_type, KernelFactory f, KernelInfo info) {
    KernelRegistry::get(backend).add(op_type, std::move(f), std::move(info));
  }
};

#define UNIRT_CONCAT_INNER(a, b) a##b
#define UNIRT_CONCAT(a, b) UNIRT_CONCAT_INNER(a, b)
// UNIRT_REGISTER_KERNEL(cpu, Conv, ConvKernel, "float32", "NCHW, 1..3 spatial dims"): ConvKernel
// has a ctor (const KernelCreateArgs&); then the types it accepts and, optionally, its layouts.
#define UNIRT_REGISTER_KERNEL(backend, op_type, Class, ...)                                            \
  static ::unirt::KernelRegistrar UNIRT_CONCAT(unirt_reg_##backend##_, __LINE__)(                        \
      #backend, #op_type,                                                                                \
      [](const ::unirt::KernelCreateArgs& a) -> std::unique_ptr<::unirt::OpKernel> {                    \
        return std::make_unique<Class>(a);                                                               \
      },                                                                                                 \
      ::unirt::KernelInfo{__VA_ARGS__})

}  // namespace unirt
