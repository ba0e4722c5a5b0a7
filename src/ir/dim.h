// Symbolic dimensions. A Dim is an integer expression over named symbols (batch, height, width)
// so that shapes such as ceil(H/4 / 14) * 14 stay exact through Shape -> Gather -> Concat ->
// Reshape/Pad chains instead of collapsing to "unknown". When every symbol is bound the same
// code yields concrete values, so the runtime reuses the build-time shape functions.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace unirt {

struct DimNode;

class Dim {
 public:
  enum class Op : uint8_t { Const, Sym, Add, Sub, Mul, FloorDiv, Mod, Max, Min };

  Dim() : Dim(int64_t{0}) {}
  Dim(int64_t value);  // NOLINT: implicit on purpose, so shape code can mix ints and Dims
  Dim(int value) : Dim(static_cast<int64_t>(value)) {}  // NOLINT
  static Dim symbol(const std::string& name);

  bool is_const() const;
  int64_t value() const;  // throws unless is_const()
  bool is_const(int64_t v) const { return is_const() && value() == v; }

  Op op() const;
  const std::string& symbol_name() const;  // only for Op::Sym
  Dim lhs() const;
  Dim rhs() const;

  // Evaluate with every symbol bound; throws naming the first unbound symbol.
  int64_t eval(const std::map<std::string, int64_t>& bindings) const;
  // Replace bound symbols by constants and fold.
  Dim substitute(const std::map<std::string, int64_t>& bindings) const;
  // Equal as functions: structurally, or at a fixed set of sample bindings of the symbols.
  bool equals(const Dim& other) const;
  void collect_symbols(std::vector<std::string>& out) const;

  std::string str() const;

  friend Dim operator+(const Dim& a, const Dim& b);
  friend Dim operator-(const Dim& a, const Dim& b);
  friend Dim operator*(const Dim& a, const Dim& b);
  // Python-style floor division and modulo (ONNX Div on int64 truncates; callers pick).
  friend Dim floordiv(const Dim& a, const Dim& b);
  friend Dim ceildiv(const Dim& a, const Dim& b);
  friend Dim mod(const Dim& a, const Dim& b);
  friend Dim dmax(const Dim& a, const Dim& b);
  friend Dim dmin(const Dim& a, const Dim& b);

  const DimNode* node() const { return node_.get(); }

 private:
  explicit Dim(std::shared_ptr<const DimNode> n) : node_(std::move(n)) {}
  static Dim make(Op op, const Dim& a, const Dim& b);
  std::shared_ptr<const DimNode> node_;
};

Dim operator+(const Dim& a, const Dim& b);
Dim operator-(const Dim& a, const Dim& b);
Dim operator*(const Dim& a, const Dim& b);
Dim floordiv(const Dim& a, const Dim& b);
Dim ceildiv(const Dim& a, const Dim& b);
Dim mod(const Dim& a, const Dim& b);
Dim dmax(const Dim& a, const Dim& b);
Dim dmin(const Dim& a, const Dim& b);

using Shape = std::vector<Dim>;

std::string shape_str(const Shape& s);
// Product of all dims (symbolic).
Dim shape_numel(const Shape& s);
bool shape_is_const(const Shape& s);
std::vector<int64_t> shape_values(const Shape& s);  // throws unless all const
Shape shape_from_values(const std::vector<int64_t>& v);

}  // namespace unirt
