// Helpers shared by the CPU kernels: input checks, integer inputs, broadcasting, fp16 conversion.
#pragma once
#include <cstring>
#include <string>
#include <vector>

#include "runtime/kernel.h"

namespace unirt {
namespace cpu {

inline std::string shape_text(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? "," : "") + std::to_string(s[i]);
  return r + "]";
}

// Base for CPU kernels: remembers the node for error messages.
class CpuKernel : public OpKernel {
 public:
  explicit CpuKernel(const KernelCreateArgs& a) : node_(a.node), opset_(a.graph.opset) {}

 protected:
  [[noreturn]] void fail(const std::string& msg) const { throw Error(node_.describe() + ": " + msg); }
  void expect_dtype(const TensorView& t, DType d, const char* what) const {
    if (t.dtype != d)
      fail(std::string(what) + " has type " + dtype_name(t.dtype) + ", the CPU backend expects " + dtype_name(d));
  }
  void expect_float(const TensorView& t, const char* what) const { expect_dtype(t, DType::Float32, what); }
  // Integer inputs (shape values, axes, indices) as int64, from host_values or data.
  std::vector<int64_t> ints(const TensorView& t) const {
    const int64_t n = t.numel();
    std::vector<int64_t> v(static_cast<size_t>(n));
    if (t.host_values) {
      std::memcpy(v.data(), t.host_values, n * sizeof(int64_t));
      return v;
    }
    if (!t.data && n) fail("integer input has no data");
    for (int64_t i = 0; i < n; ++i) {
      switch (t.dtype) {
        case DType::Int64: v[i] = static_cast<const int64_t*>(t.data)[i]; break;
        case DType::Int32: v[i] = static_cast<const int32_t*>(t.data)[i]; break;
        default: fail(std::string("expected an int64/int32 input, got ") + dtype_name(t.dtype));
      }
    }
    return v;
  }
  Node node_;
  int64_t opset_;
};

// Strides of `shape` broadcast to rank `r` (0 stride on broadcast dims).
inline std::vector<int64_t> broadcast_strides(const std::vector<int64_t>& shape, const std::vector<int64_t>& out) {
  const size_t r = out.size();
  std::vector<int64_t> st(r, 0);
  int64_t s = 1;
  for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
    const size_t o = r - shape.size() + i;
    st[o] = (shape[i] == 1 && out[o] != 1) ? 0 : s;
    s *= shape[i];
  }
  return st;
}

inline bool broadcastable_to(const std::vector<int64_t>& in, const std::vector<int64_t>& out) {
  if (in.size() > out.size()) return false;
  for (size_t i = 0; i < in.size(); ++i) {
    int64_t d = in[in.size() - 1 - i], o = out[out.size() - 1 - i];
    if (d != o && d != 1) return false;
  }
  return true;
}

// Calls f(out_index, in_offsets...) over every output element; offsets follow broadcasting.
template <int N, typename F>
void for_each_broadcast(const std::vector<int64_t>& out, const std::vector<int64_t> (&st)[N], F&& f) {
  const size_t r = out.size();
  int64_t total = 1;
  for (auto d : out) total *= d;
  if (total == 0) return;
  std::vector<int64_t> idx(r, 0);
  int64_t off[N] = {};
  for (int64_t i = 0; i < total; ++i) {
    f(i, off);
    for (int k = static_cast<int>(r) - 1; k >= 0; --k) {
      if (++idx[k] < out[k]) {
        for (int j = 0; j < N; ++j) off[j] += st[j][k];
        break;
      }
      for (int j = 0; j < N; ++j) off[j] -= st[j][k] * (out[k] - 1);
      idx[k] = 0;
    }
  }
}

float half_to_float(uint16_t h);
uint16_t float_to_half(float f);

}  // namespace cpu
}  // namespace unirt
