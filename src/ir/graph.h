// The unirt IR: a graph of ONNX-semantics nodes over values with symbolic shapes.
// Everything after the importer (passes, planner, backends, engine file) works on this.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "ir/dim.h"
#include "ir/dtype.h"

namespace unirt {

// Every user-facing failure is an Error; its message names the node/tensor and what was expected.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// Limits on what a model, an engine file or a request may ask for, checked before anything is
// allocated so that a hostile file gets an error rather than the OOM killer. Process-wide; the CLI
// sets them from --max-tensor-bytes (and the UNIRT_MAX_TENSOR_BYTES environment variable).
struct ResourceLimits {
  int64_t max_tensor_bytes = int64_t{64} << 30;  // one tensor: a weight, an activation, an input
  int64_t max_dim = int64_t{1} << 40;            // one dimension (engine files hold dims up to 2^40)
  int64_t max_rank = 32;
  int64_t max_nodes = int64_t{1} << 20;
};
ResourceLimits& resource_limits();

// Element count of a concrete shape; throws Error naming `what` for a negative or too large
// dimension, a rank above the limit or an int64 overflow.
int64_t checked_numel(const std::vector<int64_t>& shape, const std::string& what);
// Bytes of a tensor of that shape and type, checked like checked_numel and against
// ResourceLimits::max_tensor_bytes.
size_t checked_bytes(const std::vector<int64_t>& shape, DType dtype, const std::string& what);
// The same test without building a message (hot paths): false where checked_bytes would throw.
bool bytes_within_limits(const std::vector<int64_t>& shape, DType dtype, size_t* bytes);

// Constant tensor contents held on the host (initializers, folded constants, attribute tensors).
struct TensorData {
  DType dtype = DType::Float32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;

  int64_t numel() const;
  template <typename T> const T* as() const { return reinterpret_cast<const T*>(bytes.data()); }
  template <typename T> T* as() { return reinterpret_cast<T*>(bytes.data()); }
  // Values of an integer tensor (int32/int64/bool/uint8/int8) widened to int64.
  std::vector<int64_t> to_int64() const;
  // Values of a floating tensor widened to float.
  std::vector<float> to_float() const;
  static TensorData from_int64(const std::vector<int64_t>& v, std::vector<int64_t> shape);
  static TensorData from_float(const std::vector<float>& v, std::vector<int64_t> shape);
};

using AttrValue = std::variant<int64_t, float, std::string, std::vector<int64_t>, std::vector<float>,
                               std::vector<std::string>, TensorData>;

struct Node {
  std::string name;
  std::string op_type;
  std::string domain;             // "" for the default ONNX domain
  std::vector<int> inputs;        // value ids; -1 marks an omitted optional input
  std::vector<int> outputs;       // value ids; -1 marks an omitted optional output
  std::map<std::string, AttrValue> attrs;
  // Free-form notes set by fusion passes ("fused: LayerNorm from 9 nodes"); shown by inspect.
  std::vector<std::string> notes;

  bool has_attr(const std::string& k) const { return attrs.count(k) != 0; }
  int64_t attr_i(const std::string& k, int64_t dflt) const;
  int64_t attr_i(const std::string& k) const;  // throws Error naming the node if missing
  float attr_f(const std::string& k, float dflt) const;
  std::string attr_s(const std::string& k, const std::string& dflt) const;
  std::vector<int64_t> attr_ints(const std::string& k, const std::vector<int64_t>& dflt = {}) const;
  std::vector<float> attr_floats(const std::string& k, const std::vector<float>& dflt = {}) const;
  const TensorData& attr_t(const std::string& k) const;

  // "Conv 'stage1/conv1'" : what error messages put first.
  std::string describe() const;
  int num_inputs() const;  // count of present (non -1) inputs counting trailing omissions out
  bool has_input(int i) const { return i < static_cast<int>(inputs.size()) && inputs[i] >= 0; }
};

struct Value {
  std::string name;
  DType dtype = DType::Undefined;
  Shape shape;
  bool has_shape = false;
  // Set for constants (initializers and folded values).
  std::shared_ptr<TensorData> data;
  // Set by shape inference for small int64 tensors whose elements are known as symbolic
  // dimensions (outputs of Shape and arithmetic on them). The planner evaluates them per
  // input shape instead of running kernels, so backends read them as host values.
  std::optional<std::vector<Dim>> sym_value;
  int producer = -1;  // node index, -1 for graph inputs and constants

  bool is_const() const { return data != nullptr; }
};

// A shape fact the build could neither prove nor refute over the profile (a broadcast, a MatMul
// inner dimension, a Reshape's element count, ...): lhs must equal rhs. The engine stores it, the
// planner checks it on every concrete shape, and `unirt build` on the profile's corners.
struct ShapeGuard {
  std::string node;   // Node::describe() of the node whose check this is
  std::string check;  // what is checked, e.g. "broadcast dimension 3 of [b,h,320] and [1,h,(320*b)]"
  Dim lhs, rhs;
};

// A size known only once a node has run: NonZero's count, NonMaxSuppression's selected boxes,
// TopK's k when it is tensor data. Downstream shapes carry `symbol` (range 0..bound); memory is
// planned for `bound`, the node's kernel writes the actual value, and the runtime reads it back
// before it plans the nodes after it (see runtime/planner.h).
struct DataDim {
  std::string symbol;  // the symbol in downstream shapes
  std::string node;    // Node::name of the op whose kernel writes it
  Dim bound;           // upper bound, in the input symbols
};

class Graph {
 public:
  std::vector<Value> values;
  std::vector<Node> nodes;
  std::vector<int> inputs;   // value ids of runtime inputs
  std::vector<int> outputs;  // value ids of graph outputs
  std::string name;
  int64_t opset = 0;
  std::string producer;  // e.g. "pytorch 2.11"
  // The model's metadata_props (e.g. unirt.weights: where the weights came from), kept in engines.
  std::map<std::string, std::string> metadata;
  std::vector<ShapeGuard> guards;  // set by shape inference
  std::vector<DataDim> data_dims;  // set by shape inference, in topological order of their nodes

  // a == b proven, or asserted by a guard (a fusion may rely on either).
  bool known_equal(const Dim& a, const Dim& b) const;
  bool known_equal(const Shape& a, const Shape& b) const;

  int add_value(const std::string& name, DType dtype = DType::Undefined);
  int add_constant(const std::string& name, TensorData data);
  int add_node(Node node);  // sets producers of its outputs
  int find_value(const std::string& name) const;  // -1 if absent
  const Value& value(int id) const { return values.at(id); }
  Value& value(int id) { return values.at(id); }
  // Unique name derived from base, for values and nodes that passes create.
  std::string unique_name(const std::string& base);

  // Consumers of each value (node indices), recomputed on demand.
  std::vector<std::vector<int>> consumers() const;
  // Topological order of nodes; throws Error naming a node on a cycle.
  std::vector<int> topo_order() const;
  // Removes nodes marked dead (op_type empty) and values nothing references; renumbers.
  void compact();
  // Rebuild Value::producer from nodes.
  void relink();
  bool is_graph_output(int value) const;

 private:
  std::map<std::string, int> by_name_;
  int name_counter_ = 0;
};

}  // namespace unirt
