#include "ir/graph.h"
#include "ir/half.h"

#include <algorithm>
#include <cstring>

namespace unirt {

ResourceLimits& resource_limits() {
  static ResourceLimits limits;
  return limits;
}

int64_t checked_numel(const std::vector<int64_t>& shape, const std::string& what) {
  const ResourceLimits& lim = resource_limits();
  if (static_cast<int64_t>(shape.size()) > lim.max_rank)
    throw Error(what + ": rank " + std::to_string(shape.size()) + " is above the limit of " + std::to_string(lim.max_rank));
  int64_t n = 1;
  bool overflow = false;
  for (int64_t d : shape) {
    if (d < 0) throw Error(what + ": shape " + dims_text(shape) + " has a negative dimension");
    if (d > lim.max_dim)
      throw Error(what + ": dimension " + std::to_string(d) + " of " + dims_text(shape) + " is above the limit of " +
                  std::to_string(lim.max_dim));
    overflow = overflow || __builtin_mul_overflow(n, d, &n);
  }
  // A zero dimension makes the tensor empty whatever the others overflowed to.
  for (int64_t d : shape)
    if (d == 0) return 0;
  if (overflow) throw Error(what + ": shape " + dims_text(shape) + " has more elements than int64 holds");
  return n;
}

size_t checked_bytes(const std::vector<int64_t>& shape, DType dtype, const std::string& what) {
  const int64_t n = checked_numel(shape, what);
  const int64_t es = static_cast<int64_t>(dtype_size(dtype));
  const int64_t lim = resource_limits().max_tensor_bytes;
  if (es > 0 && n > lim / es)
    throw Error(what + ": " + dtype_name(dtype) + " " + dims_text(shape) + " needs " + std::to_string(n) + " x " +
                std::to_string(es) + " bytes, above the limit of " + std::to_string(lim) +
                " bytes per tensor (unirt --max-tensor-bytes N, or UNIRT_MAX_TENSOR_BYTES)");
  return static_cast<size_t>(n * es);
}

bool bytes_within_limits(const std::vector<int64_t>& shape, DType dtype, size_t* bytes) {
  const ResourceLimits& lim = resource_limits();
  if (static_cast<int64_t>(shape.size()) > lim.max_rank) return false;
  int64_t n = 1;
  bool overflow = false, empty = false;
  for (int64_t d : shape) {
    if (d < 0 || d > lim.max_dim) return false;
    empty = empty || d == 0;
    overflow = overflow || __builtin_mul_overflow(n, d, &n);
  }
  if (empty) n = 0;
  else if (overflow) return false;
  const int64_t es = static_cast<int64_t>(dtype_size(dtype));
  if (es > 0 && n > lim.max_tensor_bytes / es) return false;
  *bytes = static_cast<size_t>(n * es);
  return true;
}

int64_t TensorData::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::vector<int64_t> TensorData::to_int64() const {
  const int64_t n = numel();
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    switch (dtype) {
      case DType::Int64: v[i] = as<int64_t>()[i]; break;
      case DType::Int32: v[i] = as<int32_t>()[i]; break;
      case DType::Int8: v[i] = as<int8_t>()[i]; break;
      case DType::Uint8:
      case DType::Bool: v[i] = as<uint8_t>()[i]; break;
      case DType::Float32: v[i] = static_cast<int64_t>(as<float>()[i]); break;
      case DType::Float64: v[i] = static_cast<int64_t>(as<double>()[i]); break;
      default: throw Error(std::string("cannot read ") + dtype_name(dtype) + " tensor as int64");
    }
  }
  return v;
}

std::vector<float> TensorData::to_float() const {
  const int64_t n = numel();
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    switch (dtype) {
      case DType::Float32: v[i] = as<float>()[i]; break;
      case DType::Float64: v[i] = static_cast<float>(as<double>()[i]); break;
      case DType::Float16: v[i] = half_to_float(as<uint16_t>()[i]); break;
      case DType::Int64: v[i] = static_cast<float>(as<int64_t>()[i]); break;
      case DType::Int32: v[i] = static_cast<float>(as<int32_t>()[i]); break;
      default: throw Error(std::string("cannot read ") + dtype_name(dtype) + " tensor as float");
    }
  }
  return v;
}

TensorData TensorData::from_int64(const std::vector<int64_t>& v, std::vector<int64_t> shape) {
  TensorData t;
  t.dtype = DType::Int64;
  t.shape = std::move(shape);
  t.bytes.resize(v.size() * sizeof(int64_t));
  if (!v.empty()) std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  return t;
}

TensorData TensorData::from_float(const std::vector<float>& v, std::vector<int64_t> shape) {
  TensorData t;
  t.dtype = DType::Float32;
  t.shape = std::move(shape);
  t.bytes.resize(v.size() * sizeof(float));
  if (!v.empty()) std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  return t;
}

std::string Node::describe() const { return op_type + " '" + name + "'"; }

int Node::num_inputs() const {
  int n = static_cast<int>(inputs.size());
  while (n > 0 && inputs[n - 1] < 0) --n;
  return n;
}

int64_t Node::attr_i(const std::string& k, int64_t dflt) const {
  auto it = attrs.find(k);
  if (it == attrs.end()) return dflt;
  if (auto p = std::get_if<int64_t>(&it->second)) return *p;
  throw Error(describe() + ": attribute '" + k + "' should be an int");
}

int64_t Node::attr_i(const std::string& k) const {
  if (!has_attr(k)) throw Error(describe() + ": required attribute '" + k + "' is missing");
  return attr_i(k, 0);
}

float Node::attr_f(const std::string& k, float dflt) const {
  auto it = attrs.find(k);
  if (it == attrs.end()) return dflt;
  if (auto p = std::get_if<float>(&it->second)) return *p;
  if (auto p = std::get_if<int64_t>(&it->second)) return static_cast<float>(*p);
  throw Error(describe() + ": attribute '" + k + "' should be a float");
}

std::string Node::attr_s(const std::string& k, const std::string& dflt) const {
  auto it = attrs.find(k);
  if (it == attrs.end()) return dflt;
  if (auto p = std::get_if<std::string>(&it->second)) return *p;
  throw Error(describe() + ": attribute '" + k + "' should be a string");
}

std::vector<int64_t> Node::attr_ints(const std::string& k, const std::vector<int64_t>& dflt) const {
  auto it = attrs.find(k);
  if (it == attrs.end()) return dflt;
  if (auto p = std::get_if<std::vector<int64_t>>(&it->second)) return *p;
  if (auto p = std::get_if<int64_t>(&it->second)) return {*p};
  throw Error(describe() + ": attribute '" + k + "' should be a list of ints");
}

std::vector<float> Node::attr_floats(const std::string& k, const std::vector<float>& dflt) const {
  auto it = attrs.find(k);
  if (it == attrs.end()) return dflt;
  if (auto p = std::get_if<std::vector<float>>(&it->second)) return *p;
  throw Error(describe() + ": attribute '" + k + "' should be a list of floats");
}

const TensorData& Node::attr_t(const std::string& k) const {
  auto it = attrs.find(k);
  if (it == attrs.end()) throw Error(describe() + ": required attribute '" + k + "' is missing");
  if (auto p = std::get_if<TensorData>(&it->second)) return *p;
  throw Error(describe() + ": attribute '" + k + "' should be a tensor");
}

int Graph::add_value(const std::string& name, DType dtype) {
  if (by_name_.count(name)) throw Error("value '" + name + "' is defined twice");
  Value v;
  v.name = name;
  v.dtype = dtype;
  values.push_back(std::move(v));
  int id = static_cast<int>(values.size()) - 1;
  by_name_[name] = id;
  return id;
}

int Graph::add_constant(const std::string& name, TensorData data) {
  int id = add_value(name, data.dtype);
  Value& v = values[id];
  v.shape = shape_from_values(data.shape);
  v.has_shape = true;
  v.data = std::make_shared<TensorData>(std::move(data));
  return id;
}

int Graph::add_node(Node node) {
  int idx = static_cast<int>(nodes.size());
  for (int o : node.outputs)
    if (o >= 0) values.at(o).producer = idx;
  nodes.push_back(std::move(node));
  return idx;
}

int Graph::find_value(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? -1 : it->second;
}

std::string Graph::unique_name(const std::string& base) {
  for (;;) {
    std::string n = base + "__" + std::to_string(name_counter_++);
    if (!by_name_.count(n)) return n;
  }
}

std::vector<std::vector<int>> Graph::consumers() const {
  std::vector<std::vector<int>> c(values.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].op_type.empty()) continue;
    for (int in : nodes[i].inputs)
      if (in >= 0 && (c[in].empty() || c[in].back() != static_cast<int>(i))) c[in].push_back(static_cast<int>(i));
  }
  return c;
}

std::vector<int> Graph::topo_order() const {
  const int n = static_cast<int>(nodes.size());
  std::vector<int> indeg(n, 0), order;
  auto cons = consumers();
  for (int i = 0; i < n; ++i) {
    if (nodes[i].op_type.empty()) continue;
    for (int in : nodes[i].inputs)
      if (in >= 0 && values[in].producer >= 0 && !nodes[values[in].producer].op_type.empty()) ++indeg[i];
  }
  std::vector<int> ready;
  for (int i = n - 1; i >= 0; --i)
    if (!nodes[i].op_type.empty() && indeg[i] == 0) ready.push_back(i);
  while (!ready.empty()) {
    int i = ready.back();
    ready.pop_back();
    order.push_back(i);
    std::vector<int> next;
    for (int o : nodes[i].outputs) {
      if (o < 0) continue;
      for (int c : cons[o]) {
        // A consumer reading the same value twice was counted twice above.
        for (int in : nodes[c].inputs)
          if (in == o && --indeg[c] == 0) next.push_back(c);
      }
    }
    // Keep the original order among newly ready nodes for a stable, readable schedule.
    std::sort(next.begin(), next.end(), std::greater<int>());
    ready.insert(ready.end(), next.begin(), next.end());
  }
  int live = 0;
  for (const auto& nd : nodes) live += nd.op_type.empty() ? 0 : 1;
  if (static_cast<int>(order.size()) != live) {
    for (int i = 0; i < n; ++i)
      if (!nodes[i].op_type.empty() && indeg[i] > 0)
        throw Error("graph has a cycle or a dangling input at " + nodes[i].describe());
  }
  return order;
}

bool Graph::known_equal(const Dim& a, const Dim& b) const {
  if (same(a, b)) return true;
  for (const auto& gd : guards)
    if ((gd.lhs.key() == a.key() && gd.rhs.key() == b.key()) || (gd.lhs.key() == b.key() && gd.rhs.key() == a.key()))
      return true;
  return false;
}

bool Graph::known_equal(const Shape& a, const Shape& b) const {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!known_equal(a[i], b[i])) return false;
  return true;
}

bool Graph::is_graph_output(int value) const {
  return std::find(outputs.begin(), outputs.end(), value) != outputs.end();
}

void Graph::relink() {
  for (auto& v : values) v.producer = -1;
  // Passes mark replaced nodes dead (empty op_type) and may hand their outputs to the new node.
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].op_type.empty()) continue;
    for (int o : nodes[i].outputs)
      if (o >= 0) values[o].producer = static_cast<int>(i);
  }
}

void Graph::compact() {
  // Keep live nodes in topological order so later stages can run them front to back.
  std::vector<int> order = topo_order();
  std::vector<Node> kept;
  kept.reserve(order.size());
  for (int i : order) kept.push_back(std::move(nodes[i]));
  nodes = std::move(kept);

  std::vector<char> used(values.size(), 0);
  for (int v : inputs) used[v] = 1;
  for (int v : outputs) used[v] = 1;
  for (const auto& nd : nodes) {
    for (int v : nd.inputs) if (v >= 0) used[v] = 1;
    for (int v : nd.outputs) if (v >= 0) used[v] = 1;
  }
  std::vector<int> remap(values.size(), -1);
  std::vector<Value> kept_values;
  by_name_.clear();
  for (size_t i = 0; i < values.size(); ++i) {
    if (!used[i]) continue;
    remap[i] = static_cast<int>(kept_values.size());
    by_name_[values[i].name] = remap[i];
    kept_values.push_back(std::move(values[i]));
  }
  values = std::move(kept_values);
  auto fix = [&](std::vector<int>& ids) {
    for (int& v : ids) if (v >= 0) v = remap[v];
  };
  fix(inputs);
  fix(outputs);
  for (auto& nd : nodes) {
    fix(nd.inputs);
    fix(nd.outputs);
  }
  relink();
}

}  // namespace unirt
