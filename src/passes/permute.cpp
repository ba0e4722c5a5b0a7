// Permutations of dims and their application to constants, for the layout steps.
#include <cstring>

#include "passes/layout_nhwc.h"

namespace unirt {

Perm invert(const Perm& p) {
  Perm r(p.size());
  for (size_t i = 0; i < p.size(); ++i) r[p[i]] = static_cast<int64_t>(i);
  return r;
}
Perm compose(const Perm& p, const Perm& q) {
  Perm r(q.size());
  for (size_t i = 0; i < q.size(); ++i) r[i] = p[q[i]];
  return r;
}
bool is_identity(const Perm& p) {
  for (size_t i = 0; i < p.size(); ++i)
    if (p[i] != static_cast<int64_t>(i)) return false;
  return true;
}

TensorData transpose_data(const TensorData& t, const Perm& perm) {
  TensorData o;
  o.dtype = t.dtype;
  const size_t r = t.shape.size(), es = dtype_size(t.dtype);
  o.shape.resize(r);
  for (size_t i = 0; i < r; ++i) o.shape[i] = t.shape[perm[i]];
  o.bytes.resize(t.bytes.size());
  const std::vector<int64_t> in_strides = strides_of(t.shape);
  const int64_t n = t.numel();
  std::vector<int64_t> idx(r, 0);
  for (int64_t e = 0; e < n; ++e) {
    int64_t src = 0;
    for (size_t i = 0; i < r; ++i) src += idx[i] * in_strides[perm[i]];
    std::memcpy(o.bytes.data() + e * es, t.bytes.data() + src * es, es);
    for (int i = static_cast<int>(r) - 1; i >= 0; --i) {
      if (++idx[i] < o.shape[i]) break;
      idx[i] = 0;
    }
  }
  return o;
}

int add_transpose(Graph& g, int input, const Perm& perm, int output, const std::string& base) {
  if (output < 0) output = g.add_value(g.unique_name(base + "/nhwc"), g.value(input).dtype);
  Node t;
  t.name = g.unique_name(base + "/reformat");
  t.op_type = "Transpose";
  t.inputs = {input};
  t.outputs = {output};
  t.attrs["perm"] = perm;
  g.add_node(std::move(t));
  return output;
}

}  // namespace unirt
