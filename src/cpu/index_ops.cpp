// Index ops: GatherElements, ScatterElements, ScatterND, TopK, ArgMax/ArgMin, NonZero. Data
// movement is by element size (any type); TopK and the arg reductions compare float32, int64 or
// int32 values. TopK with a data k and NonZero write their output length into the extra output
// the runtime gives a node with a data-dependent size (Graph::data_dims).
// Indices are checked (negative ones count from the end); an index out of range is an error
// naming the node, never a read or write out of bounds.
#include <numeric>

#include "cpu/cpu_util.h"

namespace unirt {
namespace cpu {
namespace {

// out[pos] for every position of `shape`: calls f(flat index, multi-index).
template <typename F>
void for_each_index(const std::vector<int64_t>& shape, F&& f) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  std::vector<int64_t> idx(shape.size(), 0);
  for (int64_t i = 0; i < n; ++i) {
    f(i, idx);
    for (int k = static_cast<int>(shape.size()) - 1; k >= 0; --k) {
      if (++idx[k] < shape[k]) break;
      idx[k] = 0;
    }
  }
}

class IndexKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;

 protected:
  // Calls f(T{}) for the value types TopK and the arg reductions compare.
  template <typename F>
  void by_value_type(const TensorView& t, F&& f) const {
    switch (t.dtype) {
      case DType::Float32: return f(float{});
      case DType::Int64: return f(int64_t{});
      case DType::Int32: return f(int32_t{});
      default: unsupported_type(t, "input");
    }
  }
  int64_t checked(int64_t i, int64_t n) const {
    if (i < -n || i >= n) fail("index " + std::to_string(i) + " is out of range [" + std::to_string(-n) + ", " + std::to_string(n) + ")");
    return i < 0 ? i + n : i;
  }
};

class GatherElementsKernel : public IndexKernel {
 public:
  using IndexKernel::IndexKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    const auto& xs = in[0].shape;
    const int64_t axis = norm_axis(node_.attr_i("axis", 0), static_cast<int64_t>(xs.size()));
    const auto idx = ints(in[1]);
    expect_shape(out[0], in[1].shape, "output");
    for (size_t d = 0; d < xs.size(); ++d)
      if (static_cast<int64_t>(d) != axis && in[1].shape[d] > xs[d])
        fail("indices " + dims_text(in[1].shape) + " exceed data " + dims_text(xs) + " off the axis");
    const auto st = strides_of(xs);
    const size_t es = dtype_size(in[0].dtype);
    const char* x = in[0].as<char>();
    char* y = out[0].as<char>();
    for_each_index(in[1].shape, [&](int64_t i, const std::vector<int64_t>& p) {
      int64_t off = 0;
      for (size_t d = 0; d < p.size(); ++d) off += (static_cast<int64_t>(d) == axis ? checked(idx[i], xs[d]) : p[d]) * st[d];
      std::memcpy(y + i * es, x + off * es, es);
    });
  }
};
UNIRT_REGISTER_KERNEL(cpu, GatherElements, GatherElementsKernel, "any");

// dst = combine(dst, src) for the scatter reductions, on float32/int64/int32 (none: any type).
template <typename T>
void combine(T* dst, const T* src, const std::string& r) {
  if (r == "add") *dst += *src;
  else if (r == "mul") *dst *= *src;
  else if (r == "max") *dst = std::max(*dst, *src);
  else if (r == "min") *dst = std::min(*dst, *src);
  else *dst = *src;
}

class ScatterBase : public IndexKernel {
 public:
  explicit ScatterBase(const KernelCreateArgs& a) : IndexKernel(a), reduction_(a.node.attr_s("reduction", "none")) {}

 protected:
  void write(char* y, int64_t dst, const char* u, int64_t src, DType t, size_t n) const {
    if (reduction_ == "none") {
      std::memcpy(y + dst * dtype_size(t), u + src * dtype_size(t), n * dtype_size(t));
      return;
    }
    for (size_t k = 0; k < n; ++k) {
      switch (t) {
        case DType::Float32: combine(reinterpret_cast<float*>(y) + dst + k, reinterpret_cast<const float*>(u) + src + k, reduction_); break;
        case DType::Int64: combine(reinterpret_cast<int64_t*>(y) + dst + k, reinterpret_cast<const int64_t*>(u) + src + k, reduction_); break;
        case DType::Int32: combine(reinterpret_cast<int32_t*>(y) + dst + k, reinterpret_cast<const int32_t*>(u) + src + k, reduction_); break;
        default: fail("reduction '" + reduction_ + "' on " + dtype_name(t) + " is not supported by the CPU backend");
      }
    }
  }
  std::string reduction_;
};

class ScatterElementsKernel : public ScatterBase {
 public:
  using ScatterBase::ScatterBase;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    const auto& xs = in[0].shape;
    const int64_t axis = norm_axis(node_.attr_i("axis", 0), static_cast<int64_t>(xs.size()));
    const auto idx = ints(in[1]);
    expect_shape(out[0], xs, "output");
    expect_shape(in[2], in[1].shape, "updates");
    for (size_t d = 0; d < xs.size(); ++d)
      if (static_cast<int64_t>(d) != axis && in[1].shape[d] > xs[d])
        fail("indices " + dims_text(in[1].shape) + " exceed data " + dims_text(xs) + " off the axis");
    const auto st = strides_of(xs);
    char* y = out[0].as<char>();
    if (y != in[0].as<char>()) std::memcpy(y, in[0].data, in[0].bytes());
    for_each_index(in[1].shape, [&](int64_t i, const std::vector<int64_t>& p) {
      int64_t off = 0;
      for (size_t d = 0; d < p.size(); ++d) off += (static_cast<int64_t>(d) == axis ? checked(idx[i], xs[d]) : p[d]) * st[d];
      write(y, off, in[2].as<char>(), i, in[0].dtype, 1);
    });
  }
};
UNIRT_REGISTER_KERNEL(cpu, ScatterElements, ScatterElementsKernel, "any");

class ScatterNDKernel : public ScatterBase {
 public:
  using ScatterBase::ScatterBase;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    const auto& xs = in[0].shape;
    const auto idx = ints(in[1]);
    expect_shape(out[0], xs, "output");
    const int64_t k = in[1].shape.back();
    const auto st = strides_of(xs);
    int64_t slice = 1;
    for (size_t d = static_cast<size_t>(k); d < xs.size(); ++d) slice *= xs[d];
    const int64_t tuples = k ? static_cast<int64_t>(idx.size()) / k : 0;
    if (in[2].numel() != tuples * slice) fail("updates hold " + std::to_string(in[2].numel()) + " values, expected " + std::to_string(tuples * slice));
    char* y = out[0].as<char>();
    if (y != in[0].as<char>()) std::memcpy(y, in[0].data, in[0].bytes());
    for (int64_t t = 0; t < tuples; ++t) {
      int64_t off = 0;
      for (int64_t d = 0; d < k; ++d) off += checked(idx[t * k + d], xs[d]) * st[d];
      write(y, off, in[2].as<char>(), t * slice, in[0].dtype, static_cast<size_t>(slice));
    }
  }
};
UNIRT_REGISTER_KERNEL(cpu, ScatterND, ScatterNDKernel, "any");

// The k first elements of a row (n values `stride` apart) in TopK's order: larger (or smaller)
// first, NaN as the largest value, equal values by lower index (ONNX). order: n slots.
template <typename T>
void top_of_row(const T* row, int64_t n, int64_t stride, int64_t k, bool largest, std::vector<int64_t>& order) {
  order.resize(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  auto before = [&](int64_t a, int64_t b) {
    const T va = row[a * stride], vb = row[b * stride];
    const bool na = va != va, nb = vb != vb;
    if (na || nb) return na && !nb ? largest : (!na && nb ? !largest : a < b);
    if (va != vb) return largest ? va > vb : va < vb;
    return a < b;
  };
  std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
}

class TopKKernel : public IndexKernel {
 public:
  using IndexKernel::IndexKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    by_value_type(in[0], [&](auto tag) { typed<decltype(tag)>(in, out); });
  }

 private:
  template <typename T>
  void typed(const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
    const auto& xs = in[0].shape;
    const int64_t axis = norm_axis(node_.attr_i("axis", -1), static_cast<int64_t>(xs.size()));
    if (opset_ >= 10 && in[1].numel() != 1) fail("k holds " + std::to_string(in[1].numel()) + " values, expected one");
    const int64_t k = opset_ < 10 ? node_.attr_i("k") : ints(in[1])[0];
    if (k < 0 || k > xs[axis]) fail("k " + std::to_string(k) + " is outside 0.." + std::to_string(xs[axis]));
    const bool largest = node_.attr_i("largest", 1) != 0;
    const AxisSplit v(xs, axis);
    if (out.size() > 2) out[2].as<int64_t>()[0] = k;  // k was data: it is the output's length
    // Nothing to write (k == 0, or an empty axis): do not walk the rows, however many there are.
    if (k == 0) return;
    const T* x = in[0].as<T>();
    T* y = out[0].as<T>();
    int64_t* yi = out[1].as<int64_t>();
    std::vector<int64_t> order;
    for (int64_t o = 0; o < v.outer; ++o)
      for (int64_t i = 0; i < v.inner; ++i) {
        const T* row = x + o * v.n * v.inner + i;
        top_of_row(row, v.n, v.inner, k, largest, order);
        for (int64_t j = 0; j < k; ++j) {
          y[(o * k + j) * v.inner + i] = row[order[j] * v.inner];
          yi[(o * k + j) * v.inner + i] = order[j];
        }
      }
  }
};
UNIRT_REGISTER_KERNEL(cpu, TopK, TopKKernel, "float32 int64 int32");

// unirt.MultiLevelTopK (passes/fuse_multilevel_topk.cpp): TopK of each level's rows, the values
// side by side in one row per batch item, each level's indices on their own.
class MultiLevelTopKKernel : public IndexKernel {
 public:
  using IndexKernel::IndexKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    const int64_t levels = static_cast<int64_t>(in.size()) / 2;
    const int64_t B = in[0].shape.at(0);
    std::vector<int64_t> ks(static_cast<size_t>(levels)), offs(static_cast<size_t>(levels) + 1, 0);
    for (int64_t l = 0; l < levels; ++l) {
      expect_float(in[l], "scores");
      if (in[l].shape.size() != 2 || in[l].shape[0] != B) fail("scores of level " + std::to_string(l) + " must be [" + std::to_string(B) + ", n]");
      const auto k = ints(in[levels + l]);
      if (k.size() != 1 || k[0] < 0 || k[0] > in[l].shape[1])
        fail("k of level " + std::to_string(l) + " must be one value in 0.." + std::to_string(in[l].shape[1]));
      ks[l] = k[0];
      offs[l + 1] = offs[l] + k[0];
    }
    const int64_t total = offs[levels];
    if (out[0].shape != std::vector<int64_t>{B, total}) fail("values output " + dims_text(out[0].shape) + ", expected [B, sum of k]");
    if (total == 0) return;  // nothing to select, however many rows
    float* y = out[0].as<float>();
#pragma omp parallel for num_threads(ctx.threads) schedule(dynamic) if (B * levels > 1)
    for (int64_t bl = 0; bl < B * levels; ++bl) {
      const int64_t b = bl / levels, l = bl % levels;
      const int64_t n = in[l].shape[1];
      const float* row = in[l].as<float>() + b * n;
      std::vector<int64_t> order;
      top_of_row(row, n, 1, ks[l], true, order);
      int64_t* yi = out.size() > static_cast<size_t>(l + 1) && out[l + 1].data ? out[l + 1].as<int64_t>() + b * ks[l] : nullptr;
      for (int64_t j = 0; j < ks[l]; ++j) {
        y[b * total + offs[l] + j] = row[order[j]];
        if (yi) yi[j] = order[j];
      }
    }
  }
};
UNIRT_REGISTER_KERNEL(cpu, unirt.MultiLevelTopK, MultiLevelTopKKernel, "float32", "scores [batch, n_l] per level, k_l one int64 each");

// The coordinates of the nonzero elements in element order: [rank, count].
class NonZeroKernel : public IndexKernel {
 public:
  using IndexKernel::IndexKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    const auto& xs = in[0].shape;
    const int64_t n = in[0].numel();
    std::vector<int64_t> hits;
    const size_t es = dtype_size(in[0].dtype);
    for (int64_t i = 0; i < n; ++i)
      if (element_nonzero(in[0].dtype, in[0].as<uint8_t>() + i * es)) hits.push_back(i);
    const int64_t count = static_cast<int64_t>(hits.size());
    if (out[0].shape.size() != 2 || count > out[0].shape[1])
      fail("output " + dims_text(out[0].shape) + " cannot hold " + std::to_string(count) + " coordinates");
    int64_t* y = out[0].as<int64_t>();
    const auto st = strides_of(xs);
    for (int64_t j = 0; j < count; ++j)
      for (size_t d = 0; d < xs.size(); ++d) y[d * count + j] = hits[j] / st[d] % xs[d];
    if (out.size() > 1) out[1].as<int64_t>()[0] = count;
  }
};
UNIRT_REGISTER_KERNEL(cpu, NonZero, NonZeroKernel, "any");

class ArgReduceKernel : public IndexKernel {
 public:
  explicit ArgReduceKernel(const KernelCreateArgs& a) : IndexKernel(a), max_(a.node.op_type == "ArgMax") {}
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext&) override {
    by_value_type(in[0], [&](auto tag) { typed<decltype(tag)>(in, out); });
  }

 private:
  template <typename T>
  void typed(const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
    const auto& xs = in[0].shape;
    const int64_t axis = norm_axis(node_.attr_i("axis", 0), static_cast<int64_t>(xs.size()));
    const bool last = node_.attr_i("select_last_index", 0) != 0;
    const AxisSplit v(xs, axis);
    if (v.n == 0) fail("cannot reduce an empty axis");
    const T* x = in[0].as<T>();
    int64_t* y = out[0].as<int64_t>();
    for (int64_t o = 0; o < v.outer; ++o)
      for (int64_t i = 0; i < v.inner; ++i) {
        const T* row = x + o * v.n * v.inner + i;
        int64_t best = 0;
        for (int64_t j = 1; j < v.n; ++j) {
          const T a = row[j * v.inner], b = row[best * v.inner];
          if ((max_ ? a > b : a < b) || (last && a == b)) best = j;
        }
        y[o * v.inner + i] = best;
      }
  }
  bool max_;
};
UNIRT_REGISTER_KERNEL(cpu, ArgMax, ArgReduceKernel, "float32 int64 int32");
UNIRT_REGISTER_KERNEL(cpu, ArgMin, ArgReduceKernel, "float32 int64 int32");

}  // namespace
}  // namespace cpu
}  // namespace unirt
