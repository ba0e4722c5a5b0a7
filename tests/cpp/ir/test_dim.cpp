// Dim algebra: canonical forms, ranges, and a property test that checks every rewrite against a
// plain evaluator of the unsimplified expression over the symbols' whole ranges.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <random>

#include "ir/dim.h"

using unirt::Dim;
using unirt::Truth;

TEST(Dim, FoldsConstants) {
  EXPECT_EQ((Dim(3) + Dim(4)).value(), 7);
  EXPECT_EQ(unirt::floordiv(Dim(-7), Dim(2)).value(), -4);
  EXPECT_EQ(unirt::ceildiv(Dim(15), Dim(14)).value(), 2);
  EXPECT_EQ(unirt::mod(Dim(-7), Dim(3)).value(), 2);
}

TEST(Dim, SymbolicConvOutputEqualsQuarter) {
  Dim h = Dim::symbol("H");
  Dim conv = unirt::floordiv(h - 4, Dim(4)) + 1;  // k=4, s=4, no padding
  EXPECT_TRUE(unirt::same(conv, unirt::floordiv(h, Dim(4))));
  EXPECT_FALSE(unirt::same(conv, unirt::floordiv(h, Dim(2))));
  EXPECT_EQ(conv.eval({{"H", 224}}), 56);
  EXPECT_EQ(conv.str(), "(H//4)");
}

TEST(Dim, WindowPadAmountStaysSymbolic) {
  Dim h = Dim::symbol("H");
  Dim pad = unirt::mod(Dim(14) - unirt::mod(h, Dim(14)), Dim(14));
  EXPECT_FALSE(pad.is_const());
  EXPECT_EQ(pad.eval({{"H", 50}}), 6);
  EXPECT_EQ(pad.eval({{"H", 56}}), 0);
  EXPECT_EQ(pad.substitute({{"H", 50}}).value(), 6);
  EXPECT_EQ(pad.range().lo, 0);
  EXPECT_EQ(pad.range().hi, 13);
  // Padded size is a multiple of 14, and the crop back to H is recognised.
  Dim hp = h + pad;
  EXPECT_TRUE(unirt::same(hp, unirt::ceildiv(h, Dim(14)) * 14));
  EXPECT_TRUE(unirt::mod(hp, Dim(14)).is_const(0));
  EXPECT_TRUE(unirt::same(unirt::floordiv(hp, Dim(14)) * 14, hp));
  EXPECT_TRUE(unirt::same(unirt::dmin(unirt::dmax(h, Dim(0)), hp), h));
}

TEST(Dim, SamplingWouldLieHere) {
  Dim h = Dim::symbol("h");
  Dim d = unirt::floordiv(h, Dim(6)) - unirt::floordiv(h + 1, Dim(6));
  EXPECT_FALSE(d.is_const());
  EXPECT_EQ(d.eval({{"h", 5}}), -1);
  EXPECT_EQ(unirt::dim_eq(unirt::floordiv(h, Dim(6)), unirt::floordiv(h + 1, Dim(6))), Truth::Unknown);
}

TEST(Dim, RangesDecideMinMax) {
  Dim h = Dim::symbol("h", 0, 4096), p = Dim::symbol("p", 0, 64);
  Dim e = unirt::dmin(unirt::dmax(h, Dim(0)), h + p) - unirt::dmin(Dim(0), h + p);
  EXPECT_EQ(e.str(), "h");
  EXPECT_TRUE(unirt::floordiv(Dim::symbol("x", 0, 13), Dim(14)).is_const(0));
  EXPECT_EQ(unirt::dim_eq(h + 1, Dim(0)), Truth::False);
  EXPECT_EQ(unirt::dim_lt(h, h + p + 1), Truth::True);
}

TEST(Dim, KeptTokenCountIsNonNegative) {
  Dim n = Dim::symbol("h") * Dim::symbol("w");
  Dim dropped = n - unirt::floordiv(n, Dim(2));  // N - N//2 tokens merged by token pruning
  EXPECT_EQ(unirt::dim_lt(dropped, Dim(0)), Truth::False);
  EXPECT_EQ(unirt::dim_eq(dropped, Dim(-1)), Truth::False);
  EXPECT_EQ(unirt::floordiv(Dim::symbol("x"), Dim(2)).str(), "(x//2)");
}

TEST(Dim, PinnedSymbolIsConstant) {
  EXPECT_TRUE(Dim::symbol("b", 1, 1).is_const(1));
  Dim b = Dim::symbol("b", 1, 2);
  EXPECT_EQ(unirt::dim_eq(b * 320, Dim(320)), Truth::Unknown);
  EXPECT_EQ(unirt::dim_eq(b * 320, Dim(100)), Truth::False);
}

TEST(Dim, ExactMonomialDivision) {
  Dim b = Dim::symbol("b"), h = Dim::symbol("h"), w = Dim::symbol("w");
  Dim gh = unirt::ceildiv(unirt::floordiv(h, Dim(16)), Dim(14)), gw = unirt::ceildiv(unirt::floordiv(w, Dim(16)), Dim(14));
  Dim numel = b * (gh * 14) * (gw * 14) * 320;
  Dim known = b * gh * gw * 14 * 14;
  EXPECT_EQ(unirt::floordiv(numel, known).str(), "320");
  EXPECT_TRUE(unirt::same(unirt::floordiv(numel, b * 320), gh * gw * 196));
}

TEST(Dim, UnboundSymbolNamesIt) {
  try {
    Dim::symbol("batch").eval({});
    FAIL();
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("batch"), std::string::npos);
  }
}

TEST(Dim, OverflowAndZeroDivisionAreErrors) {
  EXPECT_THROW(Dim(INT64_MAX) + Dim(1), unirt::DimError);
  EXPECT_THROW(unirt::floordiv(Dim(INT64_MIN), Dim(-1)), unirt::DimError);
  EXPECT_THROW(unirt::floordiv(Dim::symbol("h"), Dim(0)), unirt::DimError);
  EXPECT_THROW(unirt::floordiv(Dim::symbol("h"), Dim::symbol("w")).eval({{"h", 3}, {"w", 0}}), unirt::DimError);
}

TEST(Dim, BriefKeepsMessagesShort) {
  Dim x = Dim::symbol("height");
  for (int i = 0; i < 12; ++i) x = unirt::dmax(unirt::floordiv(x + Dim::symbol("w" + std::to_string(i)), Dim(3 + i)), Dim::symbol("q"));
  EXPECT_GT(x.str().size(), 200u);
  EXPECT_LE(x.brief().size(), 200u);
}

// ---- property test ----
namespace {

// The expression as written, evaluated without any rewriting (Python semantics).
struct Ref {
  char op;  // 'c' const, 's' symbol, + - * / (floor) % m (max) n (min) u (ceil)
  int64_t v = 0;
  std::string s;
  std::shared_ptr<Ref> a, b;
};

bool ref_eval(const Ref& r, const std::map<std::string, int64_t>& env, int64_t& out) {
  int64_t x = 0, y = 0;
  if (r.op == 'c') return out = r.v, true;
  if (r.op == 's') return out = env.at(r.s), true;
  if (!ref_eval(*r.a, env, x) || !ref_eval(*r.b, env, y)) return false;
  auto fdiv = [](int64_t p, int64_t q) {
    int64_t d = p / q;
    if ((p % q != 0) && ((p < 0) != (q < 0))) --d;
    return d;
  };
  switch (r.op) {
    case '+': out = x + y; return true;
    case '-': out = x - y; return true;
    case '*': out = x * y; return true;
    case '/': if (y == 0) return false; out = fdiv(x, y); return true;
    case 'u': if (y == 0) return false; out = -fdiv(-x, y); return true;
    case '%': if (y == 0) return false; out = x - y * fdiv(x, y); return true;
    case 'm': out = std::max(x, y); return true;
    case 'n': out = std::min(x, y); return true;
  }
  return false;
}

struct Gen {
  std::mt19937_64 rng;
  std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> syms;
  std::map<std::string, Dim> dims;
  int64_t pick(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); }

  std::pair<std::shared_ptr<Ref>, Dim> make(int depth) {
    auto r = std::make_shared<Ref>();
    if (depth == 0 || pick(0, 5) == 0) {
      if (pick(0, 2) == 0) {
        r->op = 'c';
        r->v = pick(-20, 20);
        return {r, Dim(r->v)};
      }
      const auto& s = syms[static_cast<size_t>(pick(0, static_cast<int64_t>(syms.size()) - 1))];
      r->op = 's';
      r->s = s.first;
      return {r, dims.at(s.first)};
    }
    static const char ops[] = {'+', '-', '*', '/', '%', 'm', 'n', 'u', '/', '%', '+', '-'};
    r->op = ops[pick(0, sizeof(ops) - 1)];
    auto [ra, da] = make(depth - 1);
    std::shared_ptr<Ref> rb;
    Dim db;
    // Divisors: mostly constants (shape arithmetic), sometimes expressions.
    if ((r->op == '/' || r->op == '%' || r->op == 'u') && pick(0, 3) != 0) {
      int64_t c = pick(-16, 16);
      if (c == 0) c = 14;
      rb = std::make_shared<Ref>();
      rb->op = 'c';
      rb->v = c;
      db = Dim(c);
    } else if (r->op == '*' && pick(0, 1) == 0) {
      rb = std::make_shared<Ref>();
      rb->op = 'c';
      rb->v = pick(-8, 8);
      db = Dim(rb->v);
    } else {
      std::tie(rb, db) = make(depth - 1);
    }
    r->a = ra;
    r->b = rb;
    Dim d;
    switch (r->op) {
      case '+': d = da + db; break;
      case '-': d = da - db; break;
      case '*': d = da * db; break;
      case '/': d = unirt::floordiv(da, db); break;
      case 'u': d = unirt::ceildiv(da, db); break;
      case '%': d = unirt::mod(da, db); break;
      case 'm': d = unirt::dmax(da, db); break;
      case 'n': d = unirt::dmin(da, db); break;
    }
    return {r, d};
  }
};

}  // namespace

TEST(DimProperty, SimplifiedEqualsOriginalOverTheRanges) {
  Gen g{std::mt19937_64(20261201)};
  g.syms = {{"b", {1, 4}}, {"h", {1, 200}}, {"w", {30, 90}}, {"p", {0, 13}}, {"n", {-6, 6}}};
  for (const auto& s : g.syms) g.dims.emplace(s.first, Dim::symbol(s.first, s.second.first, s.second.second));
  int cases = 0, checks = 0, disagreements = 0, range_misses = 0, skipped_build = 0;
  std::string first_bad;
  for (int iter = 0; iter < 6000; ++iter) {
    std::pair<std::shared_ptr<Ref>, Dim> e;
    try {
      e = g.make(4);
    } catch (const unirt::DimError&) {
      ++skipped_build;  // e.g. a constant division by zero folded while building
      continue;
    }
    ++cases;
    const Dim& d = e.second;
    const unirt::DimRange range = d.range();
    for (int k = 0; k < 24; ++k) {
      std::map<std::string, int64_t> env;
      for (const auto& s : g.syms) {
        const auto lo = s.second.first, hi = s.second.second;
        env[s.first] = k < 2 ? (k == 0 ? lo : hi) : g.pick(lo, hi);  // corners first
      }
      int64_t want = 0;
      if (!ref_eval(*e.first, env, want)) continue;  // the original divides by zero here
      ++checks;
      int64_t got = 0;
      bool ok = true;
      try {
        got = d.eval(env);
      } catch (const unirt::DimError&) {
        ok = false;
      }
      if (!ok || got != want) {
        if (disagreements++ == 0) first_bad = d.str() + " gave " + std::to_string(got) + ", want " + std::to_string(want);
      } else if (!range.contains(got)) {
        if (range_misses++ == 0) first_bad = d.str() + " = " + std::to_string(got) + " outside its range";
      }
    }
  }
  std::printf("Dim property test: %d expressions, %d evaluations, %d disagreements, %d range misses\n", cases, checks,
              disagreements, range_misses);
  EXPECT_GT(cases, 5000);
  EXPECT_GT(checks, 50000);
  EXPECT_EQ(disagreements, 0) << first_bad;
  EXPECT_EQ(range_misses, 0) << first_bad;
  EXPECT_LT(skipped_build, 200);
}

TEST(DimProperty, ProvenEqualityHoldsEverywhere) {
  Gen g{std::mt19937_64(7)};
  g.syms = {{"h", {1, 64}}, {"w", {1, 64}}};
  for (const auto& s : g.syms) g.dims.emplace(s.first, Dim::symbol(s.first, s.second.first, s.second.second));
  int proven = 0, wrong = 0, refuted = 0, wrong_refuted = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    std::pair<std::shared_ptr<Ref>, Dim> x, y;
    try {
      x = g.make(3);
      y = g.make(3);
      if (iter % 2 == 0) {
        // A rewritten copy of x: identities the algebra should prove.
        const int64_t c = g.pick(2, 16), r = g.pick(0, c - 1);
        Dim yd;
        switch (iter / 2 % 4) {
          case 0: yd = unirt::floordiv(x.second * c + r, Dim(c)); break;
          case 1: yd = x.second + unirt::mod(y.second, Dim(c)) - unirt::mod(y.second, Dim(c)); break;
          case 2: yd = unirt::floordiv(x.second, Dim(c)) * c + unirt::mod(x.second, Dim(c)); break;
          default: yd = unirt::dmax(x.second, x.second - r); break;
        }
        y = {x.first, yd};
      }
    } catch (const unirt::DimError&) {
      continue;
    }
    const Truth t = unirt::dim_eq(x.second, y.second);
    if (t == Truth::Unknown) continue;
    (t == Truth::True ? proven : refuted)++;
    for (int64_t h = 1; h <= 64; h += 3)
      for (int64_t w = 1; w <= 64; w += 5) {
        std::map<std::string, int64_t> env{{"h", h}, {"w", w}};
        int64_t a, b;
        if (!ref_eval(*x.first, env, a) || !ref_eval(*y.first, env, b)) continue;
        if (t == Truth::True && a != b) ++wrong;
        if (t == Truth::False && a == b) ++wrong_refuted;
      }
  }
  std::printf("Dim equality: %d pairs proven equal, %d proven different\n", proven, refuted);
  EXPECT_GT(proven, 1500);
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(wrong_refuted, 0);
}
