// MatMul and Gemm through cuBLASLt. Plans (descriptors + algorithm) are made in prepare() per input
// shape; run() only enqueues. Row-major tensors are handed to the column-major library as their
// transposes: D^T = op(B)^T op(A)^T.
#include "cuda/gemm.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <numeric>

namespace unirt {
namespace cuda {

namespace {
constexpr uint64_t kMaxGemmWorkspace = 32ull << 20;
const float kOne = 1.f, kZero = 0.f;
cudaDataType_t lt_type(DType t) { return t == DType::Float16 ? CUDA_R_16F : CUDA_R_32F; }

cublasLtMatrixLayout_t make_layout(DType t, int64_t rows, int64_t cols, int64_t ld, int64_t batch, int64_t stride) {
  cublasLtMatrixLayout_t l = nullptr;
  UNIRT_CUBLAS(cublasLtMatrixLayoutCreate(&l, lt_type(t), static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), ld));
  if (batch > 1) {
    const int32_t b = static_cast<int32_t>(batch);
    UNIRT_CUBLAS(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &b, sizeof(b)));
    UNIRT_CUBLAS(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
  }
  return l;
}
}  // namespace

LtGemm::~LtGemm() {
  if (a_) cublasLtMatrixLayoutDestroy(a_);
  if (b_) cublasLtMatrixLayoutDestroy(b_);
  if (c_) cublasLtMatrixLayoutDestroy(c_);
  if (desc_) cublasLtMatmulDescDestroy(desc_);
}

size_t LtGemm::setup(const GemmShape& s, int candidates) {
  s_ = s;
  cublasLtHandle_t lt = context().lt;
  UNIRT_CUBLAS(cublasLtMatmulDescCreate(&desc_, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  // Library "A" is our B, library "B" is our A (see the file comment).
  const cublasOperation_t opa = s.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, opb = s.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  UNIRT_CUBLAS(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof(opa)));
  UNIRT_CUBLAS(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof(opb)));
  if (s.bias || s.gelu) {
    const cublasLtEpilogue_t ep =
        s.gelu ? (s.bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU) : CUBLASLT_EPILOGUE_BIAS;
    UNIRT_CUBLAS(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof(ep)));
  }
  a_ = s.trans_b ? make_layout(s.type, s.K, s.N, s.ldb, s.batch, s.stride_b) : make_layout(s.type, s.N, s.K, s.ldb, s.batch, s.stride_b);
  b_ = s.trans_a ? make_layout(s.type, s.M, s.K, s.lda, s.batch, s.stride_a) : make_layout(s.type, s.K, s.M, s.lda, s.batch, s.stride_a);
  c_ = make_layout(s.type, s.N, s.M, s.ldc, s.batch, s.stride_c);

  cublasLtMatmulPreference_t pref = nullptr;
  UNIRT_CUBLAS(cublasLtMatmulPreferenceCreate(&pref));
  std::unique_ptr<cublasLtMatmulPreferenceOpaque_t, decltype(&cublasLtMatmulPreferenceDestroy)> guard(pref, cublasLtMatmulPreferenceDestroy);
  UNIRT_CUBLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &kMaxGemmWorkspace,
                                                    sizeof(kMaxGemmWorkspace)));
  const uint32_t align = static_cast<uint32_t>(s.min_alignment);
  for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
    UNIRT_CUBLAS(cublasLtMatmulPreferenceSetAttribute(pref, attr, &align, sizeof(align)));
  results_.assign(static_cast<size_t>(std::max(1, candidates)), cublasLtMatmulHeuristicResult_t{});
  int found = 0;
  UNIRT_CUBLAS(cublasLtMatmulAlgoGetHeuristic(lt, desc_, a_, b_, c_, c_, pref, static_cast<int>(results_.size()), results_.data(), &found));
  if (found == 0)
    throw Error("cuBLASLt has no algorithm for a " + std::to_string(s.M) + "x" + std::to_string(s.N) + "x" + std::to_string(s.K) +
                " GEMM (batch " + std::to_string(s.batch) + ")");
  results_.resize(static_cast<size_t>(found));
  return select(0);
}

size_t LtGemm::select(int i) {
  if (i < 0 || i >= candidates()) throw Error("GEMM candidate " + std::to_string(i) + " of " + std::to_string(candidates()));
  selected_ = i;
  algo_ = results_[i].algo;
  workspace_ = results_[i].workspaceSize;
  return workspace_;
}

std::string LtGemm::autotune(bool with_c) {
  const size_t es = dtype_size(s_.type);
  const int64_t rows_a = s_.trans_a ? s_.K : s_.M, rows_b = s_.trans_b ? s_.N : s_.K;
  // A batched GEMM spans (batch - 1) strides past its first matrix.
  const int64_t extra = s_.batch > 1 ? s_.batch - 1 : 0;
  const size_t a_bytes = static_cast<size_t>(rows_a * s_.lda + extra * s_.stride_a) * es;
  const size_t b_bytes = static_cast<size_t>(rows_b * s_.ldb + extra * s_.stride_b) * es;
  const size_t d_bytes = static_cast<size_t>(s_.M * s_.ldc + extra * s_.stride_c) * es;
  size_t ws = 0;
  for (const auto& r : results_) ws = std::max(ws, r.workspaceSize);
  void *A = nullptr, *B = nullptr, *D = nullptr, *C = nullptr, *bias = nullptr, *W = nullptr;
  cudaEvent_t e0 = nullptr, e1 = nullptr;
  std::vector<float> ms(results_.size(), -1.f);
  auto release = [&] {
    for (void* p : {A, B, D, C, bias, W})
      if (p) cudaFree(p);
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
  };
  try {
    UNIRT_CUDA(cudaMalloc(&A, a_bytes));
    UNIRT_CUDA(cudaMalloc(&B, b_bytes));
    UNIRT_CUDA(cudaMalloc(&D, d_bytes));
    if (with_c) UNIRT_CUDA(cudaMalloc(&C, d_bytes));
    UNIRT_CUDA(cudaMalloc(&bias, static_cast<size_t>(s_.N) * es));
    if (ws) UNIRT_CUDA(cudaMalloc(&W, ws));
    UNIRT_CUDA(cudaMemset(A, 0, a_bytes));
    UNIRT_CUDA(cudaMemset(B, 0, b_bytes));
    if (C) UNIRT_CUDA(cudaMemset(C, 0, d_bytes));
    UNIRT_CUDA(cudaMemset(bias, 0, static_cast<size_t>(s_.N) * es));
    UNIRT_CUDA(cudaEventCreate(&e0));
    UNIRT_CUDA(cudaEventCreate(&e1));
    if (s_.bias) UNIRT_CUBLAS(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
    for (int i = 0; i < candidates(); ++i) {
      select(i);
      // An algorithm the library offers but cannot run here is skipped, not fatal.
      if (cublasLtMatmul(context().lt, desc_, &kOne, B, a_, A, b_, with_c ? &kOne : &kZero, C ? C : D, c_, D, c_, &algo_, W, workspace_,
                         nullptr) != CUBLAS_STATUS_SUCCESS)
        continue;
      const int reps = 10;
      UNIRT_CUDA(cudaEventRecord(e0));
      for (int r = 0; r < reps; ++r)
        cublasLtMatmul(context().lt, desc_, &kOne, B, a_, A, b_, with_c ? &kOne : &kZero, C ? C : D, c_, D, c_, &algo_, W, workspace_,
                       nullptr);
      UNIRT_CUDA(cudaEventRecord(e1));
      UNIRT_CUDA(cudaEventSynchronize(e1));
      float t = 0;
      UNIRT_CUDA(cudaEventElapsedTime(&t, e0, e1));
      ms[i] = t / reps;
    }
  } catch (...) {
    release();
    throw;
  }
  release();
  int best = -1;
  for (int i = 0; i < candidates(); ++i)
    if (ms[i] >= 0 && (best < 0 || ms[i] < ms[best])) best = i;
  if (best < 0) throw Error("no cuBLASLt candidate ran for a " + std::to_string(s_.M) + "x" + std::to_string(s_.N) + "x" + std::to_string(s_.K) + " GEMM");
  select(best);
  char buf[160];
  std::snprintf(buf, sizeof(buf), "M=%lld cublasLt candidate %d of %d: %.4f ms (heuristic's first: %.4f ms)",
                static_cast<long long>(s_.M), best, candidates(), ms[best], ms[0]);
  return buf;
}

void LtGemm::run(float alpha, const void* A, const void* B, float beta, const void* C, void* D, const void* bias, void* workspace,
                 size_t workspace_bytes, cudaStream_t stream) const {
  if (workspace_bytes < workspace_) throw Error("GEMM workspace of " + std::to_string(workspace_bytes) + " bytes, needs " + std::to_string(workspace_));
  if (s_.bias)  // the descriptor is ours alone; setting the pointer is host-side work, safe under capture
    UNIRT_CUBLAS(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  UNIRT_CUBLAS(cublasLtMatmul(context().lt, desc_, &alpha, B, a_, A, b_, &beta, C ? C : D, c_, D, c_, &algo_, workspace, workspace_,
                              stream));
}

size_t choose_gemm(LtGemm& gemm, int64_t M, const std::string& recorded, bool with_c, std::string* tactic) {
  // UNIRT_GEMM_CANDIDATE=i pins every plan to the heuristic's candidate i (when it has one): for
  // experiments that need one cuBLASLt kernel held fixed, such as telling a sanitizer report that
  // follows one library kernel from a bug of ours (docs/results/sanitizers_h200.md).
  if (const char* pin = std::getenv("UNIRT_GEMM_CANDIDATE")) {
    const int i = std::atoi(pin);
    if (i >= 0 && i < gemm.candidates()) {
      *tactic = "M=" + std::to_string(M) + " cublasLt candidate " + std::to_string(i) + " of " + std::to_string(gemm.candidates()) +
                " (pinned by UNIRT_GEMM_CANDIDATE)";
      return gemm.select(i);
    }
  }
  long long m = -1;
  int idx = -1, of = -1;
  if (std::sscanf(recorded.c_str(), "M=%lld cublasLt candidate %d of %d", &m, &idx, &of) == 3 && m == M && of == gemm.candidates() &&
      idx >= 0 && idx < gemm.candidates()) {
    *tactic = recorded;
    return gemm.select(idx);
  }
  *tactic = gemm.autotune(with_c);
  return gemm.run_workspace();
}

int alignment_of(std::initializer_list<int64_t> byte_offsets) {
  int a = 16;
  for (int64_t o : byte_offsets)
    while (a > 1 && o % a != 0) a >>= 1;
  return a;
}

GemmShape dense_gemm(DType type, int64_t M, int64_t N, int64_t K, bool bias) {
  GemmShape g;
  g.type = type;
  g.M = M;
  g.N = N;
  g.K = K;
  g.lda = K;
  g.ldb = N;
  g.ldc = N;
  g.bias = bias;
  const int64_t es = static_cast<int64_t>(dtype_size(type));
  g.min_alignment = alignment_of({K * es, N * es});
  return g;
}

size_t GemmPlans::prepare(const GemmShape& g, bool with_c) {
  auto it = plans_.find(g.M);
  if (it != plans_.end()) return it->second->workspace;
  auto p = std::make_unique<Plan>();
  p->gemm.setup(g, kGemmCandidates);
  p->workspace = choose_gemm(p->gemm, g.M, recorded, with_c, &tactic);
  const size_t ws = p->workspace;
  plans_.emplace(g.M, std::move(p));
  return ws;
}

const LtGemm* GemmPlans::find(int64_t M) const {
  auto it = plans_.find(M);
  return it == plans_.end() ? nullptr : &it->second->gemm;
}

namespace {

// Batched MatMul with ONNX broadcasting over the leading dims.
class MatMulKernel : public CudaKernel {
 public:
  using CudaKernel::CudaKernel;

  size_t prepare(const std::vector<TensorView>& in, const std::vector<TensorView>& out) override {
    expect_floatish(in[0], "A");
    if (in[0].dtype != in[1].dtype || in[0].dtype != out[0].dtype)
      fail(std::string("A, B and the output must share one float type, found ") + dtype_name(in[0].dtype) + ", " +
           dtype_name(in[1].dtype) + ", " + dtype_name(out[0].dtype));
    auto key = in[0].shape;
    key.push_back(-1);
    key.insert(key.end(), in[1].shape.begin(), in[1].shape.end());
    auto it = plans_.find(key);
    if (it != plans_.end()) return it->second->gemm.ready() ? it->second->workspace : 0;
    auto p = std::make_unique<Plan>();
    plan(*p, in, out);
    const size_t ws = p->workspace;
    plans_.emplace(key, std::move(p));
    return ws;
  }

  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    auto key = in[0].shape;
    key.push_back(-1);
    key.insert(key.end(), in[1].shape.begin(), in[1].shape.end());
    auto it = plans_.find(key);
    if (it == plans_.end()) fail("run() for input shapes prepare() never saw");
    const Plan& p = *it->second;
    if (!p.gemm.ready()) return;  // empty output or K == 0 handled at plan time
    const size_t es = dtype_size(out[0].dtype);
    cudaStream_t s = stream_of(ctx);
    const char* A = static_cast<const char*>(in[0].data);
    const char* B = static_cast<const char*>(in[1].data);
    char* Y = static_cast<char*>(out[0].data);
    guarded("cuBLASLt MatMul", [&] {
      if (p.offsets_a.empty()) {
        p.gemm.run(1.f, A, B, 0.f, nullptr, Y, nullptr, ctx.workspace, ctx.workspace_bytes, s);
        return;
      }
      for (size_t b = 0; b < p.offsets_a.size(); ++b)
        p.gemm.run(1.f, A + p.offsets_a[b] * es, B + p.offsets_b[b] * es, 0.f, nullptr, Y + b * p.out_step * es, nullptr, ctx.workspace,
                   ctx.workspace_bytes, s);
    });
  }

 private:
  struct Plan {
    LtGemm gemm;
    size_t workspace = 0;
    // Broadcast patterns no strided batch can express: one GEMM per output matrix.
    std::vector<int64_t> offsets_a, offsets_b;
    int64_t out_step = 0;
  };

  void plan(Plan& p, const std::vector<TensorView>& in, const std::vector<TensorView>& out) {
    auto as = in[0].shape, bs = in[1].shape;
    if (as.empty() || bs.empty()) fail("MatMul inputs must have rank >= 1");
    if (as.size() == 1) as.insert(as.begin(), 1);
    if (bs.size() == 1) bs.push_back(1);
    const int64_t M = as[as.size() - 2], K = as.back(), N = bs.back();
    if (bs[bs.size() - 2] != K)
      fail("inner dimensions differ: A has " + std::to_string(K) + " columns, B " + std::to_string(bs[bs.size() - 2]) + " rows");
    std::vector<int64_t> ab(as.begin(), as.end() - 2), bb(bs.begin(), bs.end() - 2);
    const size_t r = std::max(ab.size(), bb.size());
    while (ab.size() < r) ab.insert(ab.begin(), 1);
    while (bb.size() < r) bb.insert(bb.begin(), 1);
    std::vector<int64_t> ob(r);
    for (size_t i = 0; i < r; ++i) {
      if (ab[i] != bb[i] && ab[i] != 1 && bb[i] != 1)
        fail("batch dims " + std::to_string(ab[i]) + " and " + std::to_string(bb[i]) + " do not broadcast");
      ob[i] = std::max(ab[i], bb[i]);
    }
    const int64_t na = std::accumulate(ab.begin(), ab.end(), int64_t{1}, std::multiplies<int64_t>());
    const int64_t nb = std::accumulate(bb.begin(), bb.end(), int64_t{1}, std::multiplies<int64_t>());
    const int64_t batches = std::accumulate(ob.begin(), ob.end(), int64_t{1}, std::multiplies<int64_t>());
    if (batches * M * N != out[0].numel()) fail("output has " + std::to_string(out[0].numel()) + " elements, expected " + std::to_string(batches * M * N));
    if (batches * M * N == 0) return;
    if (K == 0) fail("MatMul with an empty inner dimension is not supported on CUDA");
    const size_t es = dtype_size(in[0].dtype);
    GemmShape g;
    g.type = out[0].dtype;
    g.M = M;
    g.N = N;
    g.K = K;
    g.lda = K;
    g.ldb = N;
    g.ldc = N;
    if (nb == 1) {  // shared B (Linear layers, constant weights): all rows of A in one GEMM
      g.M = na * M;
    } else if (ab == bb) {
      g.batch = batches;
      g.stride_a = M * K;
      g.stride_b = K * N;
      g.stride_c = M * N;
    } else if (na == 1) {
      g.batch = batches;
      g.stride_a = 0;
      g.stride_b = K * N;
      g.stride_c = M * N;
    } else {
      const auto sa = strides_for(ab, ob), sb = strides_for(bb, ob);
      for (int64_t b = 0; b < batches; ++b) {
        int64_t rem = b, oa = 0, obb = 0;
        for (int k = static_cast<int>(r) - 1; k >= 0; --k) {
          const int64_t idx = rem % ob[k];
          rem /= ob[k];
          oa += idx * sa.s[k];
          obb += idx * sb.s[k];
        }
        p.offsets_a.push_back(oa * M * K);
        p.offsets_b.push_back(obb * K * N);
      }
      p.out_step = M * N;
      g.min_alignment = alignment_of({static_cast<int64_t>(M * K * es), static_cast<int64_t>(K * N * es), static_cast<int64_t>(M * N * es)});
    }
    guarded("cuBLASLt MatMul plan", [&] { p.workspace = p.gemm.setup(g); });
  }

  std::map<std::vector<int64_t>, std::unique_ptr<Plan>> plans_;
};
UNIRT_REGISTER_KERNEL(cuda, MatMul, MatMulKernel, "float32 float16");

// Gemm: Y = alpha * op(A) op(B) + beta * C. A [N]-shaped C with beta 1 rides the bias epilogue;
// any other C is broadcast into Y first and accumulated with beta.
class GemmKernel : public CudaKernel {
 public:
  explicit GemmKernel(const KernelCreateArgs& a)
      : CudaKernel(a), alpha_(a.node.attr_f("alpha", 1.f)), beta_(a.node.attr_f("beta", 1.f)),
        ta_(a.node.attr_i("transA", 0) != 0), tb_(a.node.attr_i("transB", 0) != 0) {}

  size_t prepare(const std::vector<TensorView>& in, const std::vector<TensorView>& out) override {
    expect_floatish(in[0], "A");
    if (in[0].dtype != in[1].dtype || in[0].dtype != out[0].dtype) fail("A, B and the output must share one float type");
    const auto& as = in[0].shape;
    const auto& bs = in[1].shape;
    if (as.size() != 2 || bs.size() != 2) fail("Gemm inputs must be 2-D");
    auto it = plans_.find(as);
    if (it != plans_.end()) return it->second->workspace;
    const int64_t M = ta_ ? as[1] : as[0], K = ta_ ? as[0] : as[1], N = tb_ ? bs[0] : bs[1];
    if ((tb_ ? bs[1] : bs[0]) != K) fail("inner dimensions differ: " + std::to_string(K) + " vs " + std::to_string(tb_ ? bs[1] : bs[0]));
    auto p = std::make_unique<Plan>();
    p->M = M;
    p->N = N;
    const bool has_c = has(2) && beta_ != 0.f;
    if (has_c) {
      const auto& cs = in[2].shape;
      const int64_t cn = in[2].numel();
      if (cn == N && beta_ == 1.f && (cs.size() == 1 || (cs.size() == 2 && cs[0] == 1))) p->bias = true;
      else p->broadcast_c = true;
      if (in[2].dtype != out[0].dtype) fail("C must have the output type");
    }
    if (M * N > 0 && K > 0) {
      GemmShape g;
      g.type = out[0].dtype;
      g.trans_a = ta_;
      g.trans_b = tb_;
      g.M = M;
      g.N = N;
      g.K = K;
      g.lda = as[1];
      g.ldb = bs[1];
      g.ldc = N;
      g.bias = p->bias;
      guarded("cuBLASLt Gemm plan", [&] { p->workspace = p->gemm.setup(g); });
    }
    const size_t ws = p->workspace;
    plans_.emplace(as, std::move(p));
    return ws;
  }

  void run(const std::vector<TensorView>& in, const std::vector<TensorView>& out, const RunContext& ctx) override {
    auto it = plans_.find(in[0].shape);
    if (it == plans_.end()) fail("run() for an input shape prepare() never saw");
    const Plan& p = *it->second;
    if (p.M * p.N == 0) return;
    cudaStream_t s = stream_of(ctx);
    float beta = 0.f;
    if (p.broadcast_c) {
      std::vector<int64_t> cs = in[2].shape;
      while (cs.size() < 2) cs.insert(cs.begin(), 1);
      const std::vector<int64_t> ys{p.M, p.N};
      auto st = strides_for(cs, ys);
      strided_copy(in[2].data, out[0].data, out[0].dtype, ys, {st.s[0], st.s[1]}, 0, s);
      check_launch(node_);
      beta = beta_;
    }
    if (!p.gemm.ready()) {  // K == 0: Y = beta * C
      if (p.bias || (p.broadcast_c && beta_ != 1.f)) fail("Gemm with an empty inner dimension and a scaled C is not supported on CUDA");
      if (!p.broadcast_c) UNIRT_CUDA(cudaMemsetAsync(out[0].data, 0, out[0].bytes(), s));
      return;
    }
    guarded("cuBLASLt Gemm", [&] {
      p.gemm.run(alpha_, in[0].data, in[1].data, beta, beta != 0.f ? out[0].data : nullptr, out[0].data, p.bias ? in[2].data : nullptr,
                 ctx.workspace, ctx.workspace_bytes, s);
    });
  }

 private:
  struct Plan {
    LtGemm gemm;
    size_t workspace = 0;
    int64_t M = 0, N = 0;
    bool bias = false, broadcast_c = false;
  };
  float alpha_, beta_;
  bool ta_, tb_;
  std::map<std::vector<int64_t>, std::unique_ptr<Plan>> plans_;
};
UNIRT_REGISTER_KERNEL(cuda, Gemm, GemmKernel, "float32 float16", "A and B 2-D");

}  // namespace
}  // namespace cuda
}  // namespace unirt
