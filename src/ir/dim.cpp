#include "ir/dim.h"

#include <algorithm>
#include <sstream>
#include <stdexcept>

namespace unirt {

struct DimNode {
  Dim::Op op;
  int64_t value = 0;  // Const
  std::string name;   // Sym
  std::shared_ptr<const DimNode> a, b;  // binary ops
  explicit DimNode(Dim::Op o) : op(o) {}
};

namespace {

int64_t floor_div_i(int64_t a, int64_t b) {
  if (b == 0) throw std::runtime_error("symbolic dimension: division by zero");
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t floor_mod_i(int64_t a, int64_t b) { return a - floor_div_i(a, b) * b; }

int64_t apply(Dim::Op op, int64_t x, int64_t y) {
  switch (op) {
    case Dim::Op::Add: return x + y;
    case Dim::Op::Sub: return x - y;
    case Dim::Op::Mul: return x * y;
    case Dim::Op::FloorDiv: return floor_div_i(x, y);
    case Dim::Op::Mod: return floor_mod_i(x, y);
    case Dim::Op::Max: return std::max(x, y);
    case Dim::Op::Min: return std::min(x, y);
    default: throw std::logic_error("symbolic dimension: bad op");
  }
}

const char* op_text(Dim::Op op) {
  switch (op) {
    case Dim::Op::Add: return "+";
    case Dim::Op::Sub: return "-";
    case Dim::Op::Mul: return "*";
    case Dim::Op::FloorDiv: return "//";
    case Dim::Op::Mod: return "%";
    case Dim::Op::Max: return "max";
    case Dim::Op::Min: return "min";
    default: return "?";
  }
}

}  // namespace

Dim::Dim(int64_t value) {
  auto n = std::make_shared<DimNode>(Op::Const);
  n->value = value;
  node_ = std::move(n);
}

Dim Dim::symbol(const std::string& name) {
  auto n = std::make_shared<DimNode>(Op::Sym);
  n->name = name;
  return Dim(std::shared_ptr<const DimNode>(std::move(n)));
}

bool Dim::is_const() const { return node_->op == Op::Const; }

int64_t Dim::value() const {
  if (!is_const()) throw std::runtime_error("dimension '" + str() + "' is symbolic, a constant was expected");
  return node_->value;
}

Dim::Op Dim::op() const { return node_->op; }
const std::string& Dim::symbol_name() const { return node_->name; }
Dim Dim::lhs() const { return Dim(node_->a); }
Dim Dim::rhs() const { return Dim(node_->b); }

Dim Dim::make(Op op, const Dim& a, const Dim& b) {
  if (a.is_const() && b.is_const()) return Dim(apply(op, a.value(), b.value()));
  // Algebraic identities that keep the expressions the exporter produces short.
  switch (op) {
    case Op::Add:
      if (a.is_const(0)) return b;
      if (b.is_const(0)) return a;
      if (a.is_const()) return make(Op::Add, b, a);
      if (b.is_const() && a.op() == Op::Add && a.rhs().is_const())
        return make(Op::Add, a.lhs(), Dim(a.rhs().value() + b.value()));
      break;
    case Op::Sub:
      if (b.is_const()) return make(Op::Add, a, Dim(-b.value()));
      if (a.equals(b)) return Dim(0);
      if (a.op() == Op::Add && a.lhs().equals(b)) return a.rhs();
      break;
    case Op::Mul:
      if (a.is_const()) return make(Op::Mul, b, a);
      if (b.is_const(1)) return a;
      if (b.is_const(0)) return Dim(0);
      if (b.is_const() && a.op() == Op::Mul && a.rhs().is_const())
        return make(Op::Mul, a.lhs(), Dim(a.rhs().value() * b.value()));
      break;
    case Op::FloorDiv:
      if (b.is_const(1)) return a;
      if (b.is_const() && a.op() == Op::Mul && a.rhs().is_const() && b.value() != 0 &&
          a.rhs().value() % b.value() == 0)
        return make(Op::Mul, a.lhs(), Dim(a.rhs().value() / b.value()));
      if (b.is_const() && a.op() == Op::FloorDiv && a.rhs().is_const())
        return make(Op::FloorDiv, a.lhs(), Dim(a.rhs().value() * b.value()));
      if (a.equals(b)) return Dim(1);
      // (x + c*k) // k == x // k + c: keeps conv output sizes such as (H-4)//4+1 short.
      if (b.is_const() && b.value() > 0 && a.op() == Op::Add && a.rhs().is_const() && a.rhs().value() % b.value() == 0)
        return make(Op::Add, make(Op::FloorDiv, a.lhs(), b), Dim(a.rhs().value() / b.value()));
      break;
    case Op::Mod:
      if (b.is_const(1)) return Dim(0);
      if (b.is_const() && a.op() == Op::Mul && a.rhs().is_const() && b.value() != 0 &&
          a.rhs().value() % b.value() == 0)
        return Dim(0);
      break;
    case Op::Max:
    case Op::Min:
      if (a.equals(b)) return a;
      break;
    default:
      break;
  }
  auto n = std::make_shared<DimNode>(op);
  n->a = a.node_;
  n->b = b.node_;
  return Dim(std::shared_ptr<const DimNode>(std::move(n)));
}

int64_t Dim::eval(const std::map<std::string, int64_t>& bindings) const {
  switch (node_->op) {
    case Op::Const: return node_->value;
    case Op::Sym: {
      auto it = bindings.find(node_->name);
      if (it == bindings.end())
        throw std::runtime_error("symbolic dimension '" + node_->name + "' has no value");
      return it->second;
    }
    default: return apply(node_->op, lhs().eval(bindings), rhs().eval(bindings));
  }
}

Dim Dim::substitute(const std::map<std::string, int64_t>& bindings) const {
  switch (node_->op) {
    case Op::Const: return *this;
    case Op::Sym: {
      auto it = bindings.find(node_->name);
      return it == bindings.end() ? *this : Dim(it->second);
    }
    default: return make(node_->op, lhs().substitute(bindings), rhs().substitute(bindings));
  }
}

void Dim::collect_symbols(std::vector<std::string>& out) const {
  if (node_->op == Op::Sym) {
    if (std::find(out.begin(), out.end(), node_->name) == out.end()) out.push_back(node_->name);
  } else if (node_->op != Op::Const) {
    lhs().collect_symbols(out);
    rhs().collect_symbols(out);
  }
}

bool Dim::equals(const Dim& other) const {
  if (node_ == other.node_) return true;
  if (is_const() && other.is_const()) return value() == other.value();
  if (str() == other.str()) return true;
  // Different forms (floor((H-4)/4)+1 and H//4, say) may be the same function. Compare at sample
  // points chosen to include sizes that are and are not multiples of 2, 4, 7, 14 and 32.
  std::vector<std::string> syms;
  collect_symbols(syms);
  other.collect_symbols(syms);
  static const int64_t samples[] = {224, 97, 800, 1216, 333, 1, 2, 7, 64, 1333, 45, 512};
  const int n = sizeof(samples) / sizeof(samples[0]);
  int compared = 0;
  for (int k = 0; k < n; ++k) {
    std::map<std::string, int64_t> b;
    for (size_t i = 0; i < syms.size(); ++i) b[syms[i]] = samples[(k + 5 * i) % n];
    try {
      if (eval(b) != other.eval(b)) return false;
      ++compared;
    } catch (const std::exception&) {
    }
  }
  return compared > 0;
}

std::string Dim::str() const {
  switch (node_->op) {
    case Op::Const: return std::to_string(node_->value);
    case Op::Sym: return node_->name;
    case Op::Max:
    case Op::Min:
      return std::string(op_text(node_->op)) + "(" + lhs().str() + "," + rhs().str() + ")";
    default:
      return "(" + lhs().str() + op_text(node_->op) + rhs().str() + ")";
  }
}

Dim operator+(const Dim& a, const Dim& b) { return Dim::make(Dim::Op::Add, a, b); }
Dim operator-(const Dim& a, const Dim& b) { return Dim::make(Dim::Op::Sub, a, b); }
Dim operator*(const Dim& a, const Dim& b) { return Dim::make(Dim::Op::Mul, a, b); }
Dim floordiv(const Dim& a, const Dim& b) { return Dim::make(Dim::Op::FloorDiv, a, b); }
Dim ceildiv(const Dim& a, const Dim& b) {
  if (a.is_const() && b.is_const()) return Dim(-floor_div_i(-a.value(), b.value()));
  return floordiv(a + b - 1, b);
}
Dim mod(const Dim& a, const Dim& b) { return Dim::make(Dim::Op::Mod, a, b); }
Dim dmax(const Dim& a, const Dim& b) { return Dim::make(Dim::Op::Max, a, b); }
Dim dmin(const Dim& a, const Dim& b) { return Dim::make(Dim::Op::Min, a, b); }

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? "," : "") << s[i].str();
  os << "]";
  return os.str();
}

Dim shape_numel(const Shape& s) {
  Dim n(1);
  for (const auto& d : s) n = n * d;
  return n;
}

bool shape_is_const(const Shape& s) {
  return std::all_of(s.begin(), s.end(), [](const Dim& d) { return d.is_const(); });
}

std::vector<int64_t> shape_values(const Shape& s) {
  std::vector<int64_t> v;
  v.reserve(s.size());
  for (const auto& d : s) v.push_back(d.value());
  return v;
}

Shape shape_from_values(const std::vector<int64_t>& v) { return Shape(v.begin(), v.end()); }

}  // namespace unirt
