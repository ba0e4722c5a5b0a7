// MatMul (numpy semantics, broadcast batch dims) and Gemm through OpenBLAS sgemm.
#include "cpu/blas.h"
#include "cpu/cpu_util.h"

namespace unirt {
namespace cpu {
namespace {

class MatMulKernel : public CpuKernel {
 public:
  using CpuKernel::CpuKernel;
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_float(in[0], "A");
    expect_float(in[1], "B");
    auto as = in[0].shape, bs = in[1].shape;
    if (as.empty() || bs.empty()) fail("inputs must have rank >= 1");
    if (as.size() == 1) as.insert(as.begin(), 1);
    if (bs.size() == 1) bs.push_back(1);
    const int64_t M = as[as.size() - 2], K = as.back(), N = bs.back();
    if (bs[bs.size() - 2] != K)
      fail("inner dimensions differ: " + dims_text(in[0].shape) + " x " + dims_text(in[1].shape));
    std::vector<int64_t> ab(as.begin(), as.end() - 2), bb(bs.begin(), bs.end() - 2);
    const size_t r = std::max(ab.size(), bb.size());
    std::vector<int64_t> ob(r);
    for (size_t i = 0; i < r; ++i) {
      int64_t da = i + ab.size() >= r ? ab[i + ab.size() - r] : 1, db = i + bb.size() >= r ? bb[i + bb.size() - r] : 1;
      if (da != db && da != 1 && db != 1) fail("batch dims do not broadcast: " + dims_text(in[0].shape) + " x " + dims_text(in[1].shape));
      ob[i] = std::max(da, db);
    }
    int64_t batches = 1;
    for (auto d : ob) batches *= d;
    {
      std::vector<int64_t> want = ob;
      if (in[0].shape.size() > 1) want.push_back(M);
      if (in[1].shape.size() > 1) want.push_back(N);
      expect_shape(out[0], want, "output");
    }
    if (batches * M * N == 0) return;
    if (K == 0) {
      std::memset(out[0].data, 0, out[0].bytes());
      return;
    }
    const float* A = in[0].as<float>();
    const float* B = in[1].as<float>();
    float* C = out[0].as<float>();
    auto sa = broadcast_strides(ab, ob), sb = broadcast_strides(bb, ob);
    // A batch of 2-D weights times one shared B: fold the batch into M (one large GEMM).
    bool b_shared = true;
    for (auto s : sb) b_shared &= s == 0;
    bool a_dense = true;
    for (size_t i = 0; i < ob.size(); ++i) a_dense &= (i + ab.size() >= r && ab[i + ab.size() - r] == ob[i]);
    if (b_shared && a_dense) {
      sgemm(false, false, batches * M, N, K, 1.f, A, K, B, N, 0.f, C, N, ctx.threads);
      return;
    }
    // Few batches: each GEMM uses every thread. Many (attention heads): one thread per GEMM.
    const bool per_batch = batches >= ctx.threads;
    const int inner_threads = per_batch ? 1 : ctx.threads;
#pragma omp parallel for num_threads(ctx.threads) if (per_batch && batches > 1)
    for (int64_t bi = 0; bi < batches; ++bi) {
      int64_t rem = bi, oa = 0, obb = 0;
      for (int k = static_cast<int>(r) - 1; k >= 0; --k) {
        const int64_t idx = rem % ob[k];
        rem /= ob[k];
        oa += idx * sa[k];
        obb += idx * sb[k];
      }
      sgemm(false, false, M, N, K, 1.f, A + oa * M * K, K, B + obb * K * N, N, 0.f, C + bi * M * N, N, inner_threads);
    }
  }
};
UNIRT_REGISTER_KERNEL(cpu, MatMul, MatMulKernel, "float32");

class GemmKernel : public CpuKernel {
 public:
  explicit GemmKernel(const KernelCreateArgs& a)
      : CpuKernel(a),
        alpha_(a.node.attr_f("alpha", 1.f)),
        beta_(a.node.attr_f("beta", 1.f)),
        ta_(a.node.attr_i("transA", 0) != 0),
        tb_(a.node.attr_i("transB", 0) != 0) {}
  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    expect_float(in[0], "A");
    expect_float(in[1], "B");
    const auto& as = in[0].shape;
    const auto& bs = in[1].shape;
    if (as.size() != 2 || bs.size() != 2) fail("A and B must be 2-D");
    const int64_t M = ta_ ? as[1] : as[0], K = ta_ ? as[0] : as[1], N = tb_ ? bs[0] : bs[1];
    if ((tb_ ? bs[1] : bs[0]) != K) fail("inner dimensions differ: " + dims_text(as) + " x " + dims_text(bs));
    expect_shape(out[0], {M, N}, "output");
    float* C = out[0].as<float>();
    float beta = 0.f;
    if (in.size() > 2 && in[2].data) {
      expect_float(in[2], "C");
      if (!broadcastable_to(in[2].shape, out[0].shape))
        fail("C has shape " + dims_text(in[2].shape) + ", which does not broadcast to " + dims_text(out[0].shape));
      const std::vector<int64_t>* s[1] = {&in[2].shape};
      BroadcastPlan<1> p(out[0].shape, s);
      const float* c = in[2].as<float>();
      for (int64_t r = 0; r < p.rows; ++r) {
        int64_t off[1];
        p.row_offsets(r, off);
        for (int64_t i = 0; i < p.inner; ++i) C[r * p.inner + i] = c[off[0] + i * p.inner_stride(0)];
      }
      beta = beta_;
    }
    if (M == 0 || N == 0) return;
    if (K == 0) {  // sgemm leaves C untouched when K is 0: apply beta here
      for (int64_t i = 0; i < M * N; ++i) C[i] *= beta;
      return;
    }
    sgemm(ta_, tb_, M, N, K, alpha_, in[0].as<float>(), as[1], in[1].as<float>(), bs[1], beta, C, N, ctx.threads);
  }

 private:
  float alpha_, beta_;
  bool ta_, tb_;
};
UNIRT_REGISTER_KERNEL(cpu, Gemm, GemmKernel, "float32", "A and B 2-D");

}  // namespace
}  // namespace cpu
}  // namespace unirt
