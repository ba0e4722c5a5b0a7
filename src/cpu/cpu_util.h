// Helpers shared by the CPU kernels: input checks, integer inputs, broadcasting, fp16 conversion.
#pragma once
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "backend/kernel.h"
#include "ir/half.h"

namespace unirt {
namespace cpu {

inline bool present(const std::vector<TensorView>& v, size_t i) {
  return i < v.size() && (v[i].data != nullptr || v[i].host_values != nullptr);
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
  void expect_shape(const TensorView& t, const std::vector<int64_t>& want, const char* what) const {
    if (t.shape != want) fail(std::string(what) + " has shape " + dims_text(t.shape) + ", expected " + dims_text(want));
  }
  [[noreturn]] void unsupported_type(const TensorView& t, const char* what) const {
    fail(std::string(what) + " has unsupported type " + dtype_name(t.dtype) + " on the CPU backend");
  }
  // Integer inputs (shape values, axes, indices) as int64, from host_values or data.
  std::vector<int64_t> ints(const TensorView& t) const {
    const int64_t n = t.numel();
    std::vector<int64_t> v(static_cast<size_t>(n));
    if (t.host_values) {
      if (n) std::memcpy(v.data(), t.host_values, n * sizeof(int64_t));
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
  int64_t norm_axis(int64_t axis, int64_t rank, const char* what = "axis") const {
    const int64_t a = axis < 0 ? axis + rank : axis;
    if (a < 0 || a >= std::max<int64_t>(rank, 1))
      fail(std::string(what) + " " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
    return a;
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

// Broadcasting of N inputs to an output, with adjacent dims merged wherever every input walks
// them contiguously (or not at all). What is left is a list of rows over the leading dims and
// one inner dim in which each input has stride 0 or 1, so kernels get tight inner loops for
// same-shape, scalar, bias-over-last-dims and per-channel operands without special cases.
template <int N>
struct BroadcastPlan {
  std::vector<int64_t> dims;        // merged output dims; the last is the inner loop
  std::vector<int64_t> st[N];       // per input, strides over the merged dims
  int64_t rows = 0, inner = 1;

  BroadcastPlan(const std::vector<int64_t>& out, const std::vector<int64_t>* const (&ins)[N]) {
    std::vector<int64_t> full[N];
    for (int j = 0; j < N; ++j) full[j] = broadcast_strides(*ins[j], out);
    for (size_t d = 0; d < out.size(); ++d) {
      if (out[d] == 1) continue;
      bool merge = !dims.empty();
      for (int j = 0; j < N && merge; ++j) merge = st[j].back() == full[j][d] * out[d];
      if (merge) {
        dims.back() *= out[d];
        for (int j = 0; j < N; ++j) st[j].back() = full[j][d];
      } else {
        dims.push_back(out[d]);
        for (int j = 0; j < N; ++j) st[j].push_back(full[j][d]);
      }
    }
    if (dims.empty()) {
      dims.push_back(1);
      for (int j = 0; j < N; ++j) st[j].push_back(0);
    }
    int64_t total = 1;
    for (auto d : out) total *= d;
    inner = dims.back();
    rows = inner ? total / inner : 0;
  }
  int64_t inner_stride(int j) const { return st[j].back(); }
  // Offsets of each input at the start of output row `row`.
  void row_offsets(int64_t row, int64_t (&off)[N]) const {
    for (int j = 0; j < N; ++j) off[j] = 0;
    for (int k = static_cast<int>(dims.size()) - 2; k >= 0; --k) {
      const int64_t i = row % dims[k];
      row /= dims[k];
      for (int j = 0; j < N; ++j) off[j] += i * st[j][k];
    }
  }
};


}  // namespace cpu
}  // namespace unirt
