#include "ir/dim.h"

#include <algorithm>
#include <functional>
#include <numeric>
#include <sstream>

namespace unirt {

struct DimNode {
  Dim::Op op;
  int64_t value = 0;                           // Const value; Sum constant term
  std::string name;                            // Sym
  std::vector<std::pair<Dim, int64_t>> terms;  // Sum: (atom, coefficient), sorted by atom key
  std::vector<Dim> args;                       // Prod factors (sorted), FloorDiv/Mod {num, den}, Max/Min (sorted)
  DimRange range;
  std::string key;
  explicit DimNode(Dim::Op o) : op(o) {}
};

namespace {

[[noreturn]] void overflow() { throw DimError("dimension arithmetic overflows int64"); }

int64_t add_i(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) overflow();
  return r;
}
int64_t mul_i(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) overflow();
  return r;
}
int64_t floor_div_i(int64_t a, int64_t b) {
  if (b == 0) throw DimError("symbolic dimension: division by zero");
  if (b == -1) return mul_i(a, -1);
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}
int64_t floor_mod_i(int64_t a, int64_t b) {
  if (b == 0) throw DimError("symbolic dimension: modulo by zero");
  if (b == -1) return 0;
  int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

// ---- range arithmetic: -kDimInf in a lower bound and +kDimInf in an upper bound are absorbing;
// everything else saturates there, which keeps every bound sound.
int64_t sat(__int128 v) { return v > kDimInf ? kDimInf : v < -kDimInf ? -kDimInf : static_cast<int64_t>(v); }
bool is_inf(int64_t v) { return v >= kDimInf || v <= -kDimInf; }
int64_t lo_add(int64_t a, int64_t b) { return (a <= -kDimInf || b <= -kDimInf) ? -kDimInf : sat(static_cast<__int128>(a) + b); }
int64_t hi_add(int64_t a, int64_t b) { return (a >= kDimInf || b >= kDimInf) ? kDimInf : sat(static_cast<__int128>(a) + b); }
int64_t bound_mul(int64_t a, int64_t b) {
  if (a == 0 || b == 0) return 0;
  if (is_inf(a) || is_inf(b)) return ((a < 0) != (b < 0)) ? -kDimInf : kDimInf;
  return sat(static_cast<__int128>(a) * b);
}
DimRange range_scale(DimRange r, int64_t k) {
  if (k >= 0) return {bound_mul(r.lo, k), bound_mul(r.hi, k)};
  return {bound_mul(r.hi, k), bound_mul(r.lo, k)};
}
DimRange range_add(DimRange a, DimRange b) { return {lo_add(a.lo, b.lo), hi_add(a.hi, b.hi)}; }
DimRange range_mul(DimRange a, DimRange b) {
  const int64_t c[4] = {bound_mul(a.lo, b.lo), bound_mul(a.lo, b.hi), bound_mul(a.hi, b.lo), bound_mul(a.hi, b.hi)};
  return {*std::min_element(c, c + 4), *std::max_element(c, c + 4)};
}
// floor(x / y) for bounds, y > 0; an infinite y gives 0 or -1.
int64_t bound_div(int64_t x, int64_t y) {
  if (y >= kDimInf) return x >= 0 ? 0 : -1;
  if (is_inf(x)) return x;
  return floor_div_i(x, y);
}
DimRange range_floordiv(DimRange x, DimRange y) {
  if (y.lo <= 0) return {};
  const int64_t c[4] = {bound_div(x.lo, y.lo), bound_div(x.lo, y.hi), bound_div(x.hi, y.lo), bound_div(x.hi, y.hi)};
  return {*std::min_element(c, c + 4), *std::max_element(c, c + 4)};
}

std::string sym_key(const std::string& name) { return "s" + std::to_string(name.size()) + ":" + name; }

// ---- linear forms: constant + sum of coefficient * atom, atoms keyed by their canonical text.
struct Lin {
  int64_t c = 0;
  std::map<std::string, std::pair<Dim, int64_t>> t;
};

void lin_add_atom(Lin& L, const Dim& atom, int64_t k) {
  if (k == 0) return;
  auto it = L.t.find(atom.key());
  if (it == L.t.end()) {
    L.t.emplace(atom.key(), std::make_pair(atom, k));
    return;
  }
  it->second.second = add_i(it->second.second, k);
  if (it->second.second == 0) L.t.erase(it);
}

void lin_add(Lin& L, const Dim& d, int64_t k) {
  if (k == 0) return;
  if (d.is_const()) {
    L.c = add_i(L.c, mul_i(k, d.value()));
  } else if (d.op() == Dim::Op::Sum) {
    L.c = add_i(L.c, mul_i(k, d.sum_constant()));
    for (const auto& tk : d.node()->terms) lin_add_atom(L, tk.first, mul_i(k, tk.second));
  } else {
    lin_add_atom(L, d, k);
  }
}

Lin lin_of(const Dim& d) {
  Lin L;
  lin_add(L, d, 1);
  return L;
}

// The range of a linear form. Interval arithmetic alone loses the correlation between x and
// c * (x // c), so each pair k*S - k*c*(S // c) is read as k * (S % c), whose range is exact.
struct ModPiece {
  int64_t m;
  Dim num;
  int64_t den;
};

// Splits recognisable m * (S % d) pieces out of a linear form (they are removed from L), using
// m*S == m*d*(S//d) + m*(S%d): a form holding m*S and k*(S//d) becomes (k + m*d)*(S//d) + m*(S%d).
// Done where k and m have opposite signs (x - x//2, x - 14*((x+13)//14)), which is where reading
// the pair as one term narrows the range.
std::vector<ModPiece> extract_mods(Lin& L, bool exact_only = false) {
  std::vector<ModPiece> out;
  std::vector<std::pair<Dim, int64_t>> divs;
  for (const auto& kv : L.t) {
    const Dim& a = kv.second.first;
    if (a.op() == Dim::Op::FloorDiv && a.args()[1].is_const() && a.args()[1].value() > 0) divs.push_back(kv.second);
  }
  for (const auto& fk : divs) {
    const Dim& F = fk.first;
    const int64_t d = F.args()[1].value();
    auto fit = L.t.find(F.key());
    if (fit == L.t.end()) continue;
    const int64_t k = fit->second.second;
    const Lin S = lin_of(F.args()[0]);
    if (S.t.empty()) continue;
    // The multiple m of S that L holds: exactly cancelling F (m = -k/d, L may hold more of S's
    // terms in the same direction), else whatever multiple of S's first term L holds.
    auto holds = [&](int64_t m, bool at_least) {
      for (const auto& st : S.t) {
        auto it = L.t.find(st.first);
        if (it == L.t.end()) return false;
        const __int128 want = static_cast<__int128>(m) * st.second.second, have = it->second.second;
        if (want == 0 || (want > 0) != (have > 0)) return false;
        if (at_least ? (have > 0 ? have < want : have > want) : have != want) return false;
      }
      return true;
    };
    int64_t m = 0;
    if (k % d == 0 && holds(-k / d, true)) {
      m = -k / d;
    } else {
      if (exact_only) continue;
      auto t0 = L.t.find(S.t.begin()->first);
      const int64_t s0 = S.t.begin()->second.second;
      if (t0 == L.t.end() || t0->second.second % s0 != 0) continue;
      m = t0->second.second / s0;
      if (m == 0 || (m > 0) == (k > 0) || !holds(m, false)) continue;
    }
    for (const auto& st : S.t) lin_add_atom(L, st.second.first, -mul_i(m, st.second.second));
    lin_add_atom(L, F, mul_i(m, d));
    L.c = add_i(L.c, -mul_i(m, S.c));
    out.push_back({m, F.args()[0], d});
  }
  return out;
}

DimRange mod_range(const Dim& num, int64_t den) {
  DimRange r = num.range();
  if (!is_inf(r.lo) && !is_inf(r.hi) && floor_div_i(r.lo, den) == floor_div_i(r.hi, den)) {
    const int64_t q = floor_div_i(r.lo, den) * den;
    return {r.lo - q, r.hi - q};
  }
  return {0, den - 1};
}

DimRange lin_range(Lin L) {
  std::vector<ModPiece> mods;
  try {
    mods = extract_mods(L);
  } catch (const DimError&) {
    return {};  // overflow while reading the pieces: unbounded is still a sound answer
  }
  DimRange r{L.c, L.c};
  for (const auto& p : mods) r = range_add(r, range_scale(mod_range(p.num, p.den), p.m));
  for (const auto& kv : L.t) r = range_add(r, range_scale(kv.second.first.range(), kv.second.second));
  return r;
}

}  // namespace

// Builds canonical nodes; the only place DimNodes are created.
struct DimBuilder {
  static Dim make(std::shared_ptr<DimNode> n) { return Dim(std::shared_ptr<const DimNode>(std::move(n))); }

  static Dim from_lin(const Lin& L) {
    if (L.t.empty()) return Dim(L.c);
    if (L.t.size() == 1 && L.c == 0 && L.t.begin()->second.second == 1) return L.t.begin()->second.first;
    auto n = std::make_shared<DimNode>(Dim::Op::Sum);
    n->value = L.c;
    n->key = "S(" + std::to_string(L.c);
    for (const auto& kv : L.t) {
      n->terms.push_back(kv.second);
      n->key += ";" + std::to_string(kv.second.second) + "*" + kv.first;
    }
    n->key += ")";
    n->range = lin_range(L);
    return make(std::move(n));
  }

  static Dim scale(const Dim& d, int64_t k) {
    Lin L;
    lin_add(L, d, k);
    return from_lin(L);
  }

  static const std::vector<Dim>& factors(const Dim& d, std::vector<Dim>& tmp) {
    if (d.op() == Dim::Op::Prod) return d.node()->args;
    tmp = {d};
    return tmp;
  }

  static Dim atom_mul(const Dim& x, const Dim& y) {
    std::vector<Dim> tx, ty;
    std::vector<Dim> f = factors(x, tx);
    const auto& g = factors(y, ty);
    f.insert(f.end(), g.begin(), g.end());
    std::sort(f.begin(), f.end(), [](const Dim& a, const Dim& b) { return a.key() < b.key(); });
    auto n = std::make_shared<DimNode>(Dim::Op::Prod);
    n->key = "P(";
    n->range = {1, 1};
    for (size_t i = 0; i < f.size(); ++i) {
      n->key += (i ? "," : "") + f[i].key();
      n->range = range_mul(n->range, f[i].range());
    }
    n->key += ")";
    n->args = std::move(f);
    return make(std::move(n));
  }

  static Dim mul(const Dim& a, const Dim& b) {
    if (a.is_const()) return scale(b, a.value());
    if (b.is_const()) return scale(a, b.value());
    const Lin La = lin_of(a), Lb = lin_of(b);
    const size_t na = La.t.size() + (La.c != 0), nb = Lb.t.size() + (Lb.c != 0);
    if (na * nb > 64) return atom_mul(a, b);  // too large to distribute: keep the product of the sums
    Lin out;
    auto each = [](const Lin& L, const std::function<void(const Dim*, int64_t)>& f) {
      if (L.c != 0) f(nullptr, L.c);
      for (const auto& kv : L.t) f(&kv.second.first, kv.second.second);
    };
    each(La, [&](const Dim* ta, int64_t ka) {
      each(Lb, [&](const Dim* tb, int64_t kb) {
        const int64_t k = mul_i(ka, kb);
        if (!ta && !tb) out.c = add_i(out.c, k);
        else if (!ta) lin_add(out, *tb, k);
        else if (!tb) lin_add(out, *ta, k);
        else lin_add_atom(out, atom_mul(*ta, *tb), k);
      });
    });
    return from_lin(out);
  }

  static Dim binary_node(Dim::Op op, const Dim& a, const Dim& b, DimRange r) {
    auto n = std::make_shared<DimNode>(op);
    n->key = std::string(op == Dim::Op::FloorDiv ? "D(" : "M(") + a.key() + "," + b.key() + ")";
    n->args = {a, b};
    n->range = r;
    return make(std::move(n));
  }

  // Symmetric residue of k modulo c, in (-c/2, c/2].
  static int64_t symres(int64_t k, int64_t c) {
    int64_t r = floor_mod_i(k, c);
    if (r > c / 2) r -= c;
    return r;
  }

  // floor(R / c), c >= 2, R's coefficients already reduced to symmetric residues.
  static Dim floordiv_core(const Lin& R, int64_t c) {
    if (R.t.empty()) return Dim(floor_div_i(R.c, c));
    const Dim r = from_lin(R);
    const DimRange rr = r.range();
    if (!is_inf(rr.lo) && !is_inf(rr.hi) && floor_div_i(rr.lo, c) == floor_div_i(rr.hi, c)) return Dim(floor_div_i(rr.lo, c));
    // Leading coefficient positive: floor(R / c) == -floor((-R + c - 1) / c).
    if (R.t.begin()->second.second < 0) {
      Lin N;
      lin_add(N, r, -1);
      N.c = add_i(N.c, c - 1);
      return scale(floordiv_const(N, c), -1);
    }
    // (S // d) // c == S // (d * c) for d, c > 0. With an offset ((S // d + r0) // c) the nested
    // form is kept: it is what the window pads are written in, and the range reading of
    // X - c * ((X + r0) // c) needs X visible.
    if (R.t.size() == 1 && R.t.begin()->second.second == 1 && R.c == 0) {
      const Dim& f = R.t.begin()->second.first;
      if (f.op() == Dim::Op::FloorDiv && f.args()[1].is_const() && f.args()[1].value() > 0) {
        const int64_t d = f.args()[1].value();
        return floordiv(f.args()[0] + Dim(mul_i(R.c, d)), Dim(mul_i(d, c)));
      }
    }
    return binary_node(Dim::Op::FloorDiv, r, Dim(c), {bound_div(rr.lo, c), bound_div(rr.hi, c)});
  }

  static Dim floordiv_const(const Lin& L, int64_t c) {
    Lin q, r;
    for (const auto& kv : L.t) {
      const int64_t k = kv.second.second;
      const int64_t kr = symres(k, c);
      lin_add_atom(q, kv.second.first, (k - kr) / c);
      lin_add_atom(r, kv.second.first, kr);
    }
    q.c = floor_div_i(L.c, c);
    r.c = L.c - q.c * c;
    int64_t g = c;
    for (const auto& kv : r.t) g = std::gcd(g, kv.second.second < 0 ? -kv.second.second : kv.second.second);
    Dim core;
    if (g > 1 && !r.t.empty()) {
      Lin rg;
      for (const auto& kv : r.t) lin_add_atom(rg, kv.second.first, kv.second.second / g);
      rg.c = floor_div_i(r.c, g);  // floor((g*A + r0) / (g*c')) == floor((A + floor(r0/g)) / c')
      core = c / g == 1 ? from_lin(rg) : floordiv_core(rg, c / g);
    } else {
      core = floordiv_core(r, c);
    }
    return from_lin(q) + core;
  }

  static Dim floordiv(const Dim& a, const Dim& b) {
    if (b.is_const()) {
      const int64_t c = b.value();
      if (c == 0) throw DimError("symbolic dimension: division by zero (" + a.str() + " // 0)");
      if (a.is_const()) return Dim(floor_div_i(a.value(), c));
      if (c == 1) return a;
      if (c < 0) return floordiv(scale(a, -1), Dim(mul_i(c, -1)));
      return floordiv_const(lin_of(a), c);
    }
    if (a.is_const(0)) return Dim(0);
    if (same(a, b)) return Dim(1);
    // Exact division by a monomial k * M: every term of a is a multiple of it.
    const Lin Lb = lin_of(b);
    if (Lb.c == 0 && Lb.t.size() == 1) {
      const Dim& mb = Lb.t.begin()->second.first;
      const int64_t kb = Lb.t.begin()->second.second;
      const Lin La = lin_of(a);
      std::vector<Dim> tmb;
      const auto& fb = factors(mb, tmb);
      bool ok = La.c == 0;
      Lin out;
      for (const auto& kv : La.t) {
        if (!ok) break;
        if (kv.second.second % kb != 0) { ok = false; break; }
        std::vector<Dim> tmp;
        std::vector<Dim> fa = factors(kv.second.first, tmp);
        for (const Dim& f : fb) {
          auto it = std::find_if(fa.begin(), fa.end(), [&](const Dim& x) { return x.key() == f.key(); });
          if (it == fa.end()) { ok = false; break; }
          fa.erase(it);
        }
        if (!ok) break;
        Dim rest(1);
        for (const Dim& f : fa) rest = rest * f;
        lin_add(out, rest, kv.second.second / kb);
      }
      if (ok) return from_lin(out);
    }
    const DimRange ra = a.range(), rb = b.range();
    if (rb.lo > 0 && ra.lo >= 0 && ra.hi < rb.lo) return Dim(0);
    return binary_node(Dim::Op::FloorDiv, a, b, range_floordiv(ra, rb));
  }

  static Dim mod(const Dim& a, const Dim& b) {
    if (b.is_const()) {
      const int64_t c = b.value();
      if (c == 0) throw DimError("symbolic dimension: modulo by zero (" + a.str() + " % 0)");
      if (a.is_const()) return Dim(floor_mod_i(a.value(), c));
      return a - b * floordiv(a, b);
    }
    const Dim q = floordiv(a, b);
    if (q.op() != Dim::Op::FloorDiv || q.key() != "D(" + a.key() + "," + b.key() + ")") return a - b * q;
    const DimRange ra = a.range(), rb = b.range();
    DimRange r;
    if (rb.lo > 0) r = {0, hi_add(rb.hi, -1)};
    if (rb.lo > 0 && ra.lo >= 0) r.hi = std::min(r.hi, ra.hi);
    return binary_node(Dim::Op::Mod, a, b, r);
  }

  static Dim minmax(bool is_max, const Dim& a, const Dim& b) {
    if (a.is_const() && b.is_const()) return Dim(is_max ? std::max(a.value(), b.value()) : std::min(a.value(), b.value()));
    const Dim::Op op = is_max ? Dim::Op::Max : Dim::Op::Min;
    std::vector<Dim> ops;
    for (const Dim* d : {&a, &b}) {
      if (d->op() == op) ops.insert(ops.end(), d->node()->args.begin(), d->node()->args.end());
      else ops.push_back(*d);
    }
    std::sort(ops.begin(), ops.end(), [](const Dim& x, const Dim& y) { return x.key() < y.key(); });
    ops.erase(std::unique(ops.begin(), ops.end(), [](const Dim& x, const Dim& y) { return x.key() == y.key(); }), ops.end());
    // Drop an operand that another one bounds over the ranges (max: o <= p, min: o >= p).
    std::vector<char> drop(ops.size(), 0);
    for (size_t i = 0; i < ops.size(); ++i)
      for (size_t j = 0; j < ops.size() && !drop[i]; ++j) {
        if (i == j || drop[j]) continue;
        DimRange d;
        try {
          d = (ops[j] - ops[i]).range();
        } catch (const DimError&) {
          continue;
        }
        if (is_max ? d.lo >= 0 : d.hi <= 0) drop[i] = 1;
      }
    std::vector<Dim> kept;
    for (size_t i = 0; i < ops.size(); ++i)
      if (!drop[i]) kept.push_back(ops[i]);
    if (kept.size() == 1) return kept[0];
    auto n = std::make_shared<DimNode>(op);
    n->key = is_max ? "X(" : "N(";
    n->range = kept[0].range();
    for (size_t i = 0; i < kept.size(); ++i) {
      n->key += (i ? "," : "") + kept[i].key();
      const DimRange r = kept[i].range();
      n->range = is_max ? DimRange{std::max(n->range.lo, r.lo), std::max(n->range.hi, r.hi)}
                        : DimRange{std::min(n->range.lo, r.lo), std::min(n->range.hi, r.hi)};
    }
    n->key += ")";
    n->args = std::move(kept);
    return make(std::move(n));
  }

  static Dim symbol(const std::string& name, int64_t lo, int64_t hi) {
    if (lo > hi) throw DimError("symbol '" + name + "': empty range " + std::to_string(lo) + ".." + std::to_string(hi));
    if (lo == hi) return Dim(lo);
    auto n = std::make_shared<DimNode>(Dim::Op::Sym);
    n->name = name;
    n->key = sym_key(name);
    n->range = {std::max(lo, -kDimInf), std::min(hi, kDimInf)};
    return make(std::move(n));
  }

  // Rebuilds d through the canonicalising constructors with leaves replaced by leaf(sym).
  static Dim rebuild(const Dim& d, const std::function<Dim(const Dim&)>& leaf) {
    const DimNode* n = d.node();
    switch (n->op) {
      case Dim::Op::Const: return d;
      case Dim::Op::Sym: return leaf(d);
      case Dim::Op::Sum: {
        Dim r(n->value);
        for (const auto& tk : n->terms) r = r + rebuild(tk.first, leaf) * Dim(tk.second);
        return r;
      }
      case Dim::Op::Prod: {
        Dim r(1);
        for (const Dim& f : n->args) r = r * rebuild(f, leaf);
        return r;
      }
      case Dim::Op::FloorDiv: return unirt::floordiv(rebuild(n->args[0], leaf), rebuild(n->args[1], leaf));
      case Dim::Op::Mod: return unirt::mod(rebuild(n->args[0], leaf), rebuild(n->args[1], leaf));
      case Dim::Op::Max:
      case Dim::Op::Min: {
        Dim r = rebuild(n->args[0], leaf);
        for (size_t i = 1; i < n->args.size(); ++i)
          r = n->op == Dim::Op::Max ? dmax(r, rebuild(n->args[i], leaf)) : dmin(r, rebuild(n->args[i], leaf));
        return r;
      }
    }
    return d;
  }
};

Dim::Dim(int64_t value) {
  auto n = std::make_shared<DimNode>(Op::Const);
  n->value = value;
  n->key = std::to_string(value);
  n->range = {value, value};
  node_ = std::move(n);
}

Dim Dim::symbol(const std::string& name) { return DimBuilder::symbol(name, kDefaultDimMin, kDefaultDimMax); }
Dim Dim::symbol(const std::string& name, int64_t lo, int64_t hi) { return DimBuilder::symbol(name, lo, hi); }

bool Dim::is_const() const { return node_->op == Op::Const; }

int64_t Dim::value() const {
  if (!is_const()) throw DimError("dimension '" + brief() + "' is symbolic, a constant was expected");
  return node_->value;
}

Dim::Op Dim::op() const { return node_->op; }
const std::string& Dim::symbol_name() const { return node_->name; }
DimRange Dim::range() const { return node_->range; }
int64_t Dim::sum_constant() const { return node_->op == Op::Sum ? node_->value : 0; }
std::vector<std::pair<Dim, int64_t>> Dim::sum_terms() const { return node_->terms; }
const std::vector<Dim>& Dim::args() const { return node_->args; }
const std::string& Dim::key() const { return node_->key; }

int64_t Dim::eval(const std::map<std::string, int64_t>& bindings) const {
  const DimNode* n = node_.get();
  switch (n->op) {
    case Op::Const: return n->value;
    case Op::Sym: {
      auto it = bindings.find(n->name);
      if (it == bindings.end()) throw DimError("symbolic dimension '" + n->name + "' has no value");
      return it->second;
    }
    case Op::Sum: {
      int64_t acc = n->value;
      for (const auto& tk : n->terms) acc = add_i(acc, mul_i(tk.second, tk.first.eval(bindings)));
      return acc;
    }
    case Op::Prod: {
      int64_t acc = 1;
      for (const Dim& f : n->args) acc = mul_i(acc, f.eval(bindings));
      return acc;
    }
    case Op::FloorDiv: return floor_div_i(n->args[0].eval(bindings), n->args[1].eval(bindings));
    case Op::Mod: return floor_mod_i(n->args[0].eval(bindings), n->args[1].eval(bindings));
    case Op::Max:
    case Op::Min: {
      int64_t acc = n->args[0].eval(bindings);
      for (size_t i = 1; i < n->args.size(); ++i) {
        const int64_t v = n->args[i].eval(bindings);
        acc = n->op == Op::Max ? std::max(acc, v) : std::min(acc, v);
      }
      return acc;
    }
  }
  return 0;
}

Dim Dim::substitute(const std::map<std::string, int64_t>& bindings) const {
  if (is_const()) return *this;
  return DimBuilder::rebuild(*this, [&](const Dim& s) {
    auto it = bindings.find(s.symbol_name());
    return it == bindings.end() ? s : Dim(it->second);
  });
}

Dim Dim::substitute_dims(const std::map<std::string, Dim>& bindings) const {
  if (is_const()) return *this;
  return DimBuilder::rebuild(*this, [&](const Dim& s) {
    auto it = bindings.find(s.symbol_name());
    return it == bindings.end() ? s : it->second;
  });
}

void Dim::collect_symbols(std::vector<std::string>& out) const {
  std::map<std::string, DimRange> m;
  collect_symbol_ranges(m);
  for (const auto& kv : m)
    if (std::find(out.begin(), out.end(), kv.first) == out.end()) out.push_back(kv.first);
}

void Dim::collect_symbol_ranges(std::map<std::string, DimRange>& out) const {
  const DimNode* n = node_.get();
  if (n->op == Op::Sym) out.emplace(n->name, n->range);
  for (const auto& tk : n->terms) tk.first.collect_symbol_ranges(out);
  for (const Dim& a : n->args) a.collect_symbol_ranges(out);
}

namespace {

std::string print(const Dim& d);

std::string coeff_text(int64_t k, const std::string& atom, bool first) {
  std::string s;
  if (k < 0) s = "-";
  else if (!first) s = "+";
  const int64_t a = k < 0 ? -k : k;
  if (a != 1) s += std::to_string(a) + "*";
  return s + atom;
}

std::string print_factor(const Dim& f) {
  // Products print flat inside a coefficient: 2*h*w rather than 2*(h*w).
  if (f.op() == Dim::Op::Prod) {
    std::string s;
    for (size_t i = 0; i < f.args().size(); ++i) s += (i ? "*" : "") + print(f.args()[i]);
    return s;
  }
  return print(f);
}

std::string print(const Dim& d) {
  const DimNode* n = d.node();
  switch (n->op) {
    case Dim::Op::Const: return std::to_string(n->value);
    case Dim::Op::Sym: return n->name;
    case Dim::Op::Sum: {
      Lin L = lin_of(d);
      std::vector<ModPiece> mods;
      try {
        mods = extract_mods(L, true);  // print only the exact x - c*(x//c) pairs as x % c
      } catch (const DimError&) {
        L = lin_of(d);
        mods.clear();
      }
      std::string s = "(";
      bool first = true;
      for (const auto& kv : L.t) {
        s += coeff_text(kv.second.second, print_factor(kv.second.first), first);
        first = false;
      }
      for (const auto& p : mods) {
        s += coeff_text(p.m, "(" + print(p.num) + "%" + std::to_string(p.den) + ")", first);
        first = false;
      }
      if (L.c != 0 || first) s += (L.c < 0 || first) ? std::to_string(L.c) : "+" + std::to_string(L.c);
      return s + ")";
    }
    case Dim::Op::Prod: return "(" + print_factor(d) + ")";
    case Dim::Op::FloorDiv: return "(" + print(n->args[0]) + "//" + print(n->args[1]) + ")";
    case Dim::Op::Mod: return "(" + print(n->args[0]) + "%" + print(n->args[1]) + ")";
    case Dim::Op::Max:
    case Dim::Op::Min: {
      std::string s = n->op == Dim::Op::Max ? "max(" : "min(";
      for (size_t i = 0; i < n->args.size(); ++i) s += (i ? "," : "") + print(n->args[i]);
      return s + ")";
    }
  }
  return "?";
}

}  // namespace

std::string Dim::str() const { return print(*this); }

std::string Dim::brief(size_t max_chars) const {
  std::string s = str();
  if (s.size() <= max_chars || max_chars < 16) return s;
  const size_t head = max_chars / 2 - 2, tail = max_chars - head - 5;
  return s.substr(0, head) + " ... " + s.substr(s.size() - tail);
}

Dim operator+(const Dim& a, const Dim& b) {
  if (a.is_const() && b.is_const()) return Dim(add_i(a.value(), b.value()));
  Lin L = lin_of(a);
  lin_add(L, b, 1);
  return DimBuilder::from_lin(L);
}
Dim operator-(const Dim& a, const Dim& b) {
  if (a.is_const() && b.is_const()) return Dim(add_i(a.value(), mul_i(b.value(), -1)));
  Lin L = lin_of(a);
  lin_add(L, b, -1);
  return DimBuilder::from_lin(L);
}
Dim operator*(const Dim& a, const Dim& b) {
  if (a.is_const() && b.is_const()) return Dim(mul_i(a.value(), b.value()));
  return DimBuilder::mul(a, b);
}
Dim floordiv(const Dim& a, const Dim& b) { return DimBuilder::floordiv(a, b); }
// ceil(a / b) == -floor(-a / b) for every sign of b.
Dim ceildiv(const Dim& a, const Dim& b) { return Dim(0) - floordiv(Dim(0) - a, b); }
Dim mod(const Dim& a, const Dim& b) { return DimBuilder::mod(a, b); }
Dim dmax(const Dim& a, const Dim& b) { return DimBuilder::minmax(true, a, b); }
Dim dmin(const Dim& a, const Dim& b) { return DimBuilder::minmax(false, a, b); }

Dim truncdiv(const Dim& a, const Dim& b) {
  if (a.is_const() && b.is_const()) {
    if (b.value() == 0) throw DimError("symbolic dimension: division by zero");
    if (b.value() == -1) return Dim(mul_i(a.value(), -1));
    return Dim(a.value() / b.value());
  }
  const DimRange ra = a.range(), rb = b.range();
  if ((ra.lo >= 0 && rb.lo > 0) || (ra.hi <= 0 && rb.hi < 0)) return floordiv(a, b);
  if ((ra.lo >= 0 && rb.hi < 0) || (ra.hi <= 0 && rb.lo > 0)) return Dim(0) - floordiv(Dim(0) - a, b);
  throw DimError("truncating division " + a.brief(60) + " / " + b.brief(60) + ": the signs are not known");
}

bool same(const Dim& a, const Dim& b) {
  if (a.node() == b.node() || a.key() == b.key()) return true;
  try {
    const Dim d = a - b;
    return d.is_const(0);
  } catch (const DimError&) {
    return false;
  }
}

Truth dim_eq(const Dim& a, const Dim& b) {
  if (same(a, b)) return Truth::True;
  try {
    const DimRange r = (a - b).range();
    if (!r.contains(0)) return Truth::False;
  } catch (const DimError&) {
  }
  return Truth::Unknown;
}

Truth dim_lt(const Dim& a, const Dim& b) {
  try {
    const DimRange r = (a - b).range();
    if (r.hi < 0) return Truth::True;
    if (r.lo >= 0) return Truth::False;
  } catch (const DimError&) {
  }
  return Truth::Unknown;
}

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? "," : "") + s[i].brief(120);
  return r + "]";
}

bool same_shape(const Shape& a, const Shape& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!same(a[i], b[i])) return false;
  return true;
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

std::string dims_text(const std::vector<int64_t>& s) {
  std::string r;
  for (size_t i = 0; i < s.size(); ++i) r += (i ? "x" : "") + std::to_string(s[i]);
  return r.empty() ? "scalar" : r;
}

std::vector<int64_t> strides_of(const std::vector<int64_t>& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (int i = static_cast<int>(s.size()) - 2; i >= 0; --i) st[i] = st[i + 1] * s[i + 1];
  return st;
}

}  // namespace unirt
