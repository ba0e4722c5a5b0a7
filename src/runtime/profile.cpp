// The shape profile meets the symbolic shapes: symbol ranges come from --min/--max-shapes (a
// dimension the profile pins becomes a constant), and after the passes every corner of the
// profile is planned, so a profile on which a guard or a size fails is refused at build time
// with the range that would work.
#include "runtime/profile.h"

#include <algorithm>

#include "runtime/planner.h"

namespace unirt {

namespace {

const std::vector<int64_t>* find_dims(const std::map<std::string, std::vector<int64_t>>& m, const std::string& k) {
  auto it = m.find(k);
  return it == m.end() ? nullptr : &it->second;
}

}  // namespace

std::map<std::string, SymbolProfile> symbol_profiles(const Graph& g, const ShapeProfile& prof) {
  std::map<std::string, SymbolProfile> out;
  for (int id : g.inputs) {
    const Value& v = g.value(id);
    const auto* mn = find_dims(prof.min, v.name);
    const auto* op = find_dims(prof.opt, v.name);
    const auto* mx = find_dims(prof.max, v.name);
    for (size_t i = 0; i < v.shape.size(); ++i) {
      const Dim& d = v.shape[i];
      if (d.is_const()) {
        for (const auto* p : {mn, op, mx})
          if (p && i < p->size() && (*p)[i] != d.value())
            throw Error(prof.describe(v.name) + ": dimension " + std::to_string(i) + " is " + std::to_string((*p)[i]) +
                        " but the model fixes it to " + std::to_string(d.value()));
        continue;
      }
      if (d.op() != Dim::Op::Sym) continue;
      SymbolProfile& s = out[d.symbol_name()];
      if (s.where.empty()) s.where = "'" + v.name + "' dimension " + std::to_string(i);
      if (mn && i < mn->size()) s.lo = std::max(s.lo, (*mn)[i]);
      if (mx && i < mx->size()) s.hi = std::min(s.hi, (*mx)[i]), s.from_profile = true;  // corners need a real max
      if (op && i < op->size()) s.opt = (*op)[i];
      if (mn && i < mn->size() && (*mn)[i] == 0) s.lo = 0;  // a profile may admit empty tensors
    }
  }
  for (auto& kv : out) {
    SymbolProfile& s = kv.second;
    if (s.lo > s.hi)
      throw Error("shape profile: symbol '" + kv.first + "' (" + s.where + ") has min " + std::to_string(s.lo) + " above max " +
                  std::to_string(s.hi) + " (another input sharing it may narrow it)");
    if (s.opt >= 0 && (s.opt < s.lo || s.opt > s.hi))
      throw Error("shape profile: symbol '" + kv.first + "' (" + s.where + ") has opt " + std::to_string(s.opt) + " outside " +
                  std::to_string(s.lo) + ".." + std::to_string(s.hi));
  }
  return out;
}

void bind_profile_ranges(Graph& g, const ShapeProfile& prof) {
  std::map<std::string, Dim> ranged;
  for (const auto& kv : symbol_profiles(g, prof)) ranged[kv.first] = Dim::symbol(kv.first, kv.second.lo, kv.second.hi);
  for (int id : g.inputs)
    for (Dim& d : g.value(id).shape) d = d.substitute_dims(ranged);
}

namespace {

// Input shapes of one corner: each symbol at the given value.
std::map<std::string, std::vector<int64_t>> corner_shapes(const Graph& g, const std::map<std::string, int64_t>& at) {
  std::map<std::string, std::vector<int64_t>> shapes;
  for (int id : g.inputs) {
    const Value& v = g.value(id);
    std::vector<int64_t> s;
    for (const Dim& d : v.shape) s.push_back(d.eval(at));
    shapes[v.name] = s;
  }
  return shapes;
}

struct CornerFailure {
  std::map<std::string, int64_t> at;
  std::string message;
};

// Plans every combination of min/opt/max over the given symbol value lists; the first failure.
bool first_failure(const Engine& e, const std::vector<std::pair<std::string, std::vector<int64_t>>>& values, CornerFailure* f,
                   int* planned) {
  size_t combos = 1;
  for (const auto& kv : values) combos *= kv.second.size();
  for (size_t c = 0; c < combos; ++c) {
    std::map<std::string, int64_t> at;
    size_t rest = c;
    for (const auto& kv : values) {
      at[kv.first] = kv.second[rest % kv.second.size()];
      rest /= kv.second.size();
    }
    try {
      ++*planned;
      make_plan(e, corner_shapes(e.graph, at));
    } catch (const std::exception& ex) {
      if (f) *f = {at, ex.what()};
      return true;
    }
  }
  return false;
}

}  // namespace

int check_profile_corners(const Engine& e) {
  const Graph& g = e.graph;
  std::map<std::string, SymbolProfile> syms = symbol_profiles(g, e.options.profile);
  std::vector<std::string> input_syms;
  for (int id : g.inputs)
    for (const Dim& d : g.value(id).shape)
      if (d.op() == Dim::Op::Sym) input_syms.push_back(d.symbol_name());
  if (input_syms.empty()) return 0;
  for (const auto& s : input_syms)
    if (!syms.count(s) || !syms[s].from_profile) return 0;  // no full profile: guards are checked per shape only
  std::vector<std::pair<std::string, std::vector<int64_t>>> values;
  for (const auto& kv : syms) {
    std::vector<int64_t> v = {kv.second.lo, kv.second.hi};
    if (kv.second.opt > kv.second.lo && kv.second.opt < kv.second.hi) v.push_back(kv.second.opt);
    values.push_back({kv.first, v});
  }
  int planned = 0;
  CornerFailure fail;
  if (!first_failure(e, values, &fail, &planned)) return planned;
  std::string at;
  for (const auto& kv : fail.at) at += (at.empty() ? "" : ", ") + kv.first + "=" + std::to_string(kv.second);
  std::string msg = "the shape profile includes shapes this graph cannot run: at " + at + ": " + fail.message;
  // Which single symbol, pinned to its smallest value, makes every corner work?
  for (auto& kv : values) {
    const std::vector<int64_t> all = kv.second;
    kv.second = {syms[kv.first].lo};
    const bool still = first_failure(e, values, nullptr, &planned);
    kv.second = all;
    if (still) continue;
    std::map<std::string, int64_t> pinned_max;
    for (const auto& s : syms) pinned_max[s.first] = s.first == kv.first ? s.second.lo : s.second.hi;
    std::string inputs;
    for (const auto& in : corner_shapes(g, pinned_max)) inputs += (inputs.empty() ? "" : ",") + in.first + ":" + dims_text(in.second);
    msg += "\nvalid only for " + kv.first + " == " + std::to_string(syms[kv.first].lo) + " (" + syms[kv.first].where +
           "): use --max-shapes " + inputs;
    throw Error(msg);
  }
  throw Error(msg + "\nno single dimension pinned to its minimum fixes this: narrow the profile or re-export the model");
}

}  // namespace unirt
