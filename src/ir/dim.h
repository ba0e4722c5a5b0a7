// Symbolic dimensions. A Dim is an integer expression over named symbols (batch, height, width)
// so that shapes such as ceil(H/4 / 14) * 14 stay exact through Shape -> Gather -> Concat ->
// Reshape/Pad chains instead of collapsing to "unknown". When every symbol is bound the same
// code yields concrete values, so the runtime reuses the build-time shape functions.
//
// Expressions are kept in a canonical form (a sum of integer multiples of atoms; atoms are
// symbols, products, floor divisions, max/min) built only by rewrite rules that hold for every
// integer value in the symbols' ranges. Every symbol carries a range (from the engine's profile),
// every expression a derived range, and the rules use them: `x // 14` is 0 when 0 <= x < 14,
// `max(a, b)` is `a` when a - b >= 0 over the ranges. Two dims are equal only when proven equal
// (`same`); a question the algebra cannot decide is answered `Truth::Unknown` and becomes a
// guard checked on each concrete shape (see Graph::guards).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace unirt {

struct DimNode;

// Inclusive value range; +-kDimInf stands for "unbounded" (range arithmetic saturates there).
constexpr int64_t kDimInf = int64_t{1} << 62;
// The range of a symbol no profile constrains.
constexpr int64_t kDefaultDimMin = 1;
constexpr int64_t kDefaultDimMax = (int64_t{1} << 31) - 1;

struct DimRange {
  int64_t lo = -kDimInf, hi = kDimInf;
  bool contains(int64_t v) const { return lo <= v && v <= hi; }
};

enum class Truth { False, True, Unknown };

// Thrown for division by zero or int64 overflow in dimension arithmetic.
class DimError : public std::runtime_error {
 public:
  explicit DimError(const std::string& m) : std::runtime_error(m) {}
};

class Dim {
 public:
  // Sum: constant + sum of coeff * term. Prod: product of factors. FloorDiv/Mod: {num, den}
  // (Mod only for a symbolic divisor: x % c is written x - c * (x // c)). Max/Min: n-ary.
  enum class Op : uint8_t { Const, Sym, Sum, Prod, FloorDiv, Mod, Max, Min };

  Dim() : Dim(int64_t{0}) {}
  Dim(int64_t value);  // NOLINT: implicit on purpose, so shape code can mix ints and Dims
  Dim(int value) : Dim(static_cast<int64_t>(value)) {}  // NOLINT
  // A symbol with the range no profile constrains (kDefaultDimMin..kDefaultDimMax).
  static Dim symbol(const std::string& name);
  // A symbol with values lo..hi; lo == hi gives the constant.
  static Dim symbol(const std::string& name, int64_t lo, int64_t hi);

  bool is_const() const;
  int64_t value() const;  // throws unless is_const()
  bool is_const(int64_t v) const { return is_const() && value() == v; }

  Op op() const;
  const std::string& symbol_name() const;  // only for Op::Sym
  DimRange range() const;
  int64_t sum_constant() const;                          // Op::Sum
  std::vector<std::pair<Dim, int64_t>> sum_terms() const;  // Op::Sum: (term, coefficient)
  const std::vector<Dim>& args() const;                  // Prod, FloorDiv, Mod, Max, Min

  // Evaluate with every symbol bound; throws naming the first unbound symbol.
  int64_t eval(const std::map<std::string, int64_t>& bindings) const;
  // Replace bound symbols by constants (or expressions) and simplify.
  Dim substitute(const std::map<std::string, int64_t>& bindings) const;
  Dim substitute_dims(const std::map<std::string, Dim>& bindings) const;
  void collect_symbols(std::vector<std::string>& out) const;
  // Every symbol with its range, for range-driven checks (profile corners).
  void collect_symbol_ranges(std::map<std::string, DimRange>& out) const;

  std::string str() const;
  // str() shortened to about max_chars (middle elided), for error messages.
  std::string brief(size_t max_chars = 200) const;
  // Canonical text: equal keys <=> same canonical form.
  const std::string& key() const;

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
  friend struct DimBuilder;
  explicit Dim(std::shared_ptr<const DimNode> n) : node_(std::move(n)) {}
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
// C-style truncating division (ONNX Div on integers), exact on the symbols' ranges.
Dim truncdiv(const Dim& a, const Dim& b);

// Proven equal for every value of the symbols in their ranges.
bool same(const Dim& a, const Dim& b);
// True when proven equal, False when proven different, Unknown otherwise.
Truth dim_eq(const Dim& a, const Dim& b);
// a < b decided over the ranges (True / False), or Unknown.
Truth dim_lt(const Dim& a, const Dim& b);

using Shape = std::vector<Dim>;

std::string shape_str(const Shape& s);
bool same_shape(const Shape& a, const Shape& b);
// Product of all dims (symbolic).
Dim shape_numel(const Shape& s);
bool shape_is_const(const Shape& s);
std::vector<int64_t> shape_values(const Shape& s);  // throws unless all const
Shape shape_from_values(const std::vector<int64_t>& v);
// "1x3x224x224" ("scalar" for rank 0): how concrete shapes appear in messages and on the CLI.
std::string dims_text(const std::vector<int64_t>& s);
// Row-major element strides of a concrete shape (the last dim has stride 1).
std::vector<int64_t> strides_of(const std::vector<int64_t>& s);

}  // namespace unirt
