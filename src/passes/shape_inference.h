// Symbolic shape inference: dtype, Shape (vector of Dim) and, for small integer tensors computed
// from shapes, the element values (Value::sym_value), for every value of the graph.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace unirt {

// A shape function needed element values (a Reshape target, Slice starts, ...) that are tensor
// data rather than a function of the input shapes. build_engine answers it by specialising the
// engine per value when the data comes from small integer graph inputs.
class DataDependentError : public Error {
 public:
  DataDependentError(const std::string& m, std::string value) : Error(m), value_name(std::move(value)) {}
  std::string value_name;  // the value whose elements were needed
};

// Runs over all nodes in topological order. Throws Error naming the node on any inconsistency or
// on a shape that cannot be expressed from the input symbols.
void infer_shapes(Graph& g);

// What one op's shape function sees.
class ShapeCtx {
 public:
  ShapeCtx(Graph& g, Node& n) : g_(g), n_(n) {}
  Graph& graph() { return g_; }
  const Node& node() const { return n_; }
  int64_t opset() const { return g_.opset; }
  bool has(int i) const { return n_.has_input(i); }
  const Value& in(int i) const;
  const Shape& shape(int i) const { return in(i).shape; }
  DType dtype(int i) const { return in(i).dtype; }
  size_t rank(int i) const { return in(i).shape.size(); }
  // Element values of input i when known at build time (sym_value or constant integer data).
  std::optional<std::vector<Dim>> values(int i) const;
  // Like values() but required: throws naming the node and the input's role.
  std::vector<Dim> need_values(int i, const char* role) const;
  // Required compile-time integers (e.g. axes): constant or fully-constant sym_value.
  std::vector<int64_t> need_ints(int i, const char* role) const;
  void set(int out, DType dtype, Shape shape, std::optional<std::vector<Dim>> sym = std::nullopt);
  // a == b: proven passes, refuted fails naming `what`, undecided becomes a guard (Graph::guards)
  // that the planner checks on every concrete shape.
  void require_equal(const Dim& a, const Dim& b, const std::string& what) const;
  // A fresh size that only this node's kernel knows once it has run (Graph::data_dims): a symbol
  // of range 0..bound named after the node. `bound` is the most it can be, in the input symbols.
  Dim data_dim(const Dim& bound);
  int num_outputs() const { return static_cast<int>(n_.outputs.size()); }
  [[noreturn]] void fail(const std::string& msg) const;
  // Normalise a possibly negative axis against rank r.
  int64_t axis(int64_t a, size_t r) const;

 private:
  Graph& g_;
  Node& n_;
};

using ShapeFn = std::function<void(ShapeCtx&)>;
// Shape functions are grouped by op family in shape_fns_*.cpp; each file adds its ops here.
void register_shape_fns_math(std::map<std::string, ShapeFn>& m);
void register_shape_fns_tensor(std::map<std::string, ShapeFn>& m);
void register_shape_fns_index(std::map<std::string, ShapeFn>& m);
void register_shape_fns_fused(std::map<std::string, ShapeFn>& m);  // the unirt.* ops

// Conv / pool / ConvNHWC window attributes: kernel, strides and dilations in 1..max_dim, pads in
// 0..max_dim (so the output-size arithmetic cannot overflow); fails naming the node.
void check_window_attrs(ShapeCtx& c, const std::vector<int64_t>& k, const std::vector<int64_t>& strides,
                        const std::vector<int64_t>& dil, const std::vector<int64_t>& pads);

// A fused op's residual input (index i, if present) has exactly the output shape y.
void require_residual_shape(ShapeCtx& c, int i, const Shape& y);

// Numpy-style multidirectional broadcast of shapes; throws via ctx on mismatch.
Shape broadcast_shapes(const ShapeCtx& ctx, const Shape& a, const Shape& b);

}  // namespace unirt
