// Helpers for the CPU kernel tests: host tensors, running one node's kernel, error checks.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/kernel.h"

namespace unirt {
namespace cputest {

struct Tensor {
  DType dtype = DType::Undefined;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
  std::vector<int64_t> host;  // when set, passed as TensorView::host_values
  bool omitted = false;

  int64_t numel() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
  template <typename T> T* as() { return reinterpret_cast<T*>(bytes.data()); }
  template <typename T> const T* as() const { return reinterpret_cast<const T*>(bytes.data()); }
  float f(int64_t i) const { return as<float>()[i]; }
  TensorView view() {
    TensorView v;
    if (omitted) return v;
    v.data = bytes.empty() ? nullptr : bytes.data();
    v.dtype = dtype;
    v.shape = shape;
    if (!host.empty()) v.host_values = host.data();
    return v;
  }
};

inline Tensor empty(DType dt, std::vector<int64_t> shape) {
  Tensor t;
  t.dtype = dt;
  t.shape = std::move(shape);
  t.bytes.assign(static_cast<size_t>(t.numel()) * dtype_size(dt) + 1, 0xcd);  // +1: never a null data pointer
  return t;
}
inline Tensor out_f(std::vector<int64_t> shape) { return empty(DType::Float32, std::move(shape)); }
inline Tensor none() {
  Tensor t;
  t.omitted = true;
  return t;
}

inline Tensor randf(std::vector<int64_t> shape, uint32_t seed, float lo = -2.f, float hi = 2.f) {
  Tensor t = empty(DType::Float32, std::move(shape));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.as<float>()[i] = d(rng);
  return t;
}

template <typename T>
Tensor values(DType dt, std::vector<int64_t> shape, const std::vector<T>& v) {
  Tensor t = empty(dt, std::move(shape));
  EXPECT_EQ(static_cast<int64_t>(v.size()), t.numel());
  std::memcpy(t.bytes.data(), v.data(), v.size() * sizeof(T));
  return t;
}
inline Tensor floats(std::vector<int64_t> shape, const std::vector<float>& v) { return values(DType::Float32, std::move(shape), v); }
inline Tensor i64(const std::vector<int64_t>& v, std::vector<int64_t> shape = {-1}) {
  if (shape == std::vector<int64_t>{-1}) shape = {static_cast<int64_t>(v.size())};
  return values(DType::Int64, shape, v);
}
// Shape-like input as the planner hands it over: host values plus the same int64 data.
inline Tensor shape_input(const std::vector<int64_t>& v) {
  Tensor t = i64(v);
  t.host = v;
  return t;
}

inline Node node(const std::string& op, const std::string& name = "n") {
  Node n;
  n.op_type = op;
  n.name = name;
  return n;
}

// Runs the CPU kernel of `n` once; returns after run(). opset is the graph's.
inline void run(const Node& n, std::vector<Tensor*> in, std::vector<Tensor*> out, int64_t opset = 18, int threads = 2) {
  Graph g;
  g.opset = opset;
  const KernelFactory* f = KernelRegistry::get("cpu").find(n.op_type);
  ASSERT_NE(f, nullptr) << "no CPU kernel for " << n.op_type;
  auto k = (*f)(KernelCreateArgs{g, n, Precision::FP32});
  std::vector<TensorView> iv, ov;
  for (auto* t : in) iv.push_back(t->view());
  for (auto* t : out) ov.push_back(t->view());
  std::vector<TensorView> ip = iv, op = ov;
  for (auto& t : ip) t.data = nullptr;  // prepare() sees shapes only
  for (auto& t : op) t.data = nullptr;
  std::vector<uint8_t> ws(k->prepare(ip, op));
  RunContext ctx;
  ctx.workspace = ws.empty() ? nullptr : ws.data();
  ctx.workspace_bytes = ws.size();
  ctx.threads = threads;
  k->run(iv, ov, ctx);
}

// The kernel must throw unirt::Error whose message names the node.
inline void expect_error(const Node& n, std::vector<Tensor*> in, std::vector<Tensor*> out, const std::string& also = "",
                         int64_t opset = 18) {
  try {
    Graph g;
    g.opset = opset;
    auto k = (*KernelRegistry::get("cpu").find(n.op_type))(KernelCreateArgs{g, n, Precision::FP32});
    std::vector<TensorView> iv, ov;
    for (auto* t : in) iv.push_back(t->view());
    for (auto* t : out) ov.push_back(t->view());
    RunContext ctx;
    k->run(iv, ov, ctx);
    ADD_FAILURE() << n.op_type << " '" << n.name << "' did not throw";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(n.name), std::string::npos) << m;
    if (!also.empty()) EXPECT_NE(m.find(also), std::string::npos) << m;
  }
}

inline void expect_near_all(const Tensor& got, const std::vector<double>& want, double atol = 1e-5, double rtol = 1e-5) {
  ASSERT_EQ(got.numel(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) {
    const double g = got.as<float>()[i];
    if (std::isnan(want[i])) {
      EXPECT_TRUE(std::isnan(g)) << "element " << i;
      continue;
    }
    ASSERT_NEAR(g, want[i], atol + rtol * std::fabs(want[i])) << "element " << i;
  }
}

// Flat index of a broadcast operand for output index `i`.
inline int64_t bcast_index(int64_t i, const std::vector<int64_t>& out, const std::vector<int64_t>& in) {
  int64_t off = 0, stride = 1;
  for (int k = static_cast<int>(out.size()) - 1, j = static_cast<int>(in.size()) - 1; k >= 0; --k, --j) {
    const int64_t c = i % out[k];
    i /= out[k];
    if (j >= 0) {
      if (in[j] != 1) off += c * stride;
      stride *= in[j];
    }
  }
  return off;
}

}  // namespace cputest
}  // namespace unirt
