// What cuBLASLt offers for quantized GEMMs on UniFormer's Linear shapes, and how fast: FP16 (the
// engine's FP16 path) against FP8 E4M3 (scalar or per-channel "outer vector" scales, float16 or
// E4M3 output, bias / GELU+bias epilogues, a float16 residual as C) and INT8 (IMMA; int8 or int32
// output). Row-major Y[M, N] = X[M, K] W^T with W stored [N, K], the layout FP8 and INT8 need (the
// library's "TN"). Each row: the algorithms the heuristic offers, the fastest one's time, TFLOP/s
// and its error against the FP16 GEMM on integer-valued inputs (exact in every type).
// Usage: unirt_bench_quant_gemm [iterations]
#include <cublasLt.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

#define CK(x)                                                                              \
  do {                                                                                     \
    cudaError_t e_ = (x);                                                                  \
    if (e_ != cudaSuccess) {                                                               \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                                        \
    }                                                                                      \
  } while (0)

cublasLtHandle_t lt;
void* workspace = nullptr;
constexpr size_t kWorkspace = 32u << 20;

struct Shape {
  const char* where;
  int64_t M, N, K;
};

struct Variant {
  const char* name;
  cudaDataType_t ab, c, d;
  cublasComputeType_t compute;
  cudaDataType_t scale_type;
  cublasLtEpilogue_t epilogue;
  int a_scale_mode, b_scale_mode;  // -1: no scale pointer
  bool d_scale = false;
  bool residual = false;           // C = a float16 residual, beta = 1
  bool alpha_vector = false;       // per-row alpha (INT8 per-channel)
};

size_t type_size(cudaDataType_t t) {
  switch (t) {
    case CUDA_R_16F: return 2;
    case CUDA_R_32I:
    case CUDA_R_32F: return 4;
    default: return 1;
  }
}

// Integer values in [-3, 3], stored in type t.
void fill(std::vector<uint8_t>& bytes, cudaDataType_t t, size_t n, unsigned seed) {
  bytes.assign(n * type_size(t), 0);
  unsigned s = seed;
  for (size_t i = 0; i < n; ++i) {
    s = s * 1664525u + 1013904223u;
    const int v = static_cast<int>((s >> 16) % 7) - 3;
    if (t == CUDA_R_16F) {
      const __half h = __float2half(static_cast<float>(v));
      std::memcpy(&bytes[2 * i], &h, 2);
    } else if (t == CUDA_R_8I) {
      bytes[i] = static_cast<uint8_t>(static_cast<int8_t>(v));
    } else {  // E4M3: 0, 1, 2, 3 are 0x00, 0x38, 0x40, 0x44; the sign is bit 7
      static const uint8_t mag[4] = {0x00, 0x38, 0x40, 0x44};
      bytes[i] = static_cast<uint8_t>(mag[std::abs(v)] | (v < 0 ? 0x80 : 0));
    }
  }
}

float to_float(const uint8_t* p, cudaDataType_t t) {
  if (t == CUDA_R_16F) {
    __half h;
    std::memcpy(&h, p, 2);
    return __half2float(h);
  }
  if (t == CUDA_R_32I) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return static_cast<float>(v);
  }
  if (t == CUDA_R_8I) return static_cast<float>(static_cast<int8_t>(*p));
  // E4M3
  const int sign = *p >> 7, e = (*p >> 3) & 15, m = *p & 7;
  const float v = e ? std::ldexp(1.f + m / 8.f, e - 7) : std::ldexp(m / 8.f, -6);
  return sign ? -v : v;
}

struct Result {
  int algos = 0;
  float ms = -1;
  double max_err = 0;
  std::string why;
};

Result run(const Shape& s, const Variant& v, int iters, std::vector<float>* reference) {
  Result r;
  const int64_t M = s.M, N = s.N, K = s.K;
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr, ld = nullptr;
  if (cublasLtMatmulDescCreate(&desc, v.compute, v.scale_type) != CUBLAS_STATUS_SUCCESS) {
    r.why = "desc";
    return r;
  }
  const cublasOperation_t T = CUBLAS_OP_T, Nn = CUBLAS_OP_N;
  cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &T, sizeof(T));
  cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &Nn, sizeof(Nn));
  cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &v.epilogue, sizeof(v.epilogue));
  // Library A = W ([N, K] row-major = K x N column-major), library B = X, D = Y^T (N x M).
  cublasLtMatrixLayoutCreate(&la, v.ab, K, N, K);
  cublasLtMatrixLayoutCreate(&lb, v.ab, K, M, K);
  cublasLtMatrixLayoutCreate(&lc, v.c, N, M, N);
  cublasLtMatrixLayoutCreate(&ld, v.d, N, M, N);

  std::vector<uint8_t> ha, hb, hc;
  fill(ha, v.ab, static_cast<size_t>(N * K), 1);
  fill(hb, v.ab, static_cast<size_t>(M * K), 2);
  fill(hc, v.c, static_cast<size_t>(M * N), 3);
  void *A, *B, *C, *D, *bias, *sa, *sb, *sd, *alpha_vec;
  CK(cudaMalloc(&A, ha.size()));
  CK(cudaMalloc(&B, hb.size()));
  CK(cudaMalloc(&C, static_cast<size_t>(M * N) * type_size(v.c)));
  CK(cudaMalloc(&D, static_cast<size_t>(M * N) * type_size(v.d)));
  CK(cudaMalloc(&bias, static_cast<size_t>(N) * 4));
  CK(cudaMalloc(&sa, static_cast<size_t>(std::max(M, N)) * 4));
  CK(cudaMalloc(&sb, static_cast<size_t>(std::max(M, N)) * 4));
  CK(cudaMalloc(&sd, 4));
  CK(cudaMalloc(&alpha_vec, static_cast<size_t>(N) * 4));
  CK(cudaMemcpy(A, ha.data(), ha.size(), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(B, hb.data(), hb.size(), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(C, hc.data(), hc.size(), cudaMemcpyHostToDevice));
  CK(cudaMemset(bias, 0, static_cast<size_t>(N) * 4));
  std::vector<float> ones(static_cast<size_t>(std::max(M, N)), 1.f);
  CK(cudaMemcpy(sa, ones.data(), ones.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(sb, ones.data(), ones.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(sd, ones.data(), 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(alpha_vec, ones.data(), static_cast<size_t>(N) * 4, cudaMemcpyHostToDevice));
  if (v.epilogue & CUBLASLT_EPILOGUE_BIAS) {
    const cudaDataType_t bt = v.d == CUDA_R_8F_E4M3 ? CUDA_R_16F : (v.d == CUDA_R_32I || v.d == CUDA_R_8I ? CUDA_R_32F : v.d);
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof(bt));
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias));
  }
  if (v.a_scale_mode >= 0) {
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sa, sizeof(sa));
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &v.a_scale_mode, sizeof(int));
  }
  if (v.b_scale_mode >= 0) {
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sb, sizeof(sb));
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &v.b_scale_mode, sizeof(int));
  }
  if (v.d_scale) cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_D_SCALE_POINTER, &sd, sizeof(sd));
  if (v.alpha_vector) {
    const cublasLtPointerMode_t pm = CUBLASLT_POINTER_MODE_ALPHA_DEVICE_VECTOR_BETA_ZERO;
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_POINTER_MODE, &pm, sizeof(pm));
  }

  cublasLtMatmulPreference_t pref;
  cublasLtMatmulPreferenceCreate(&pref);
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &kWorkspace, sizeof(kWorkspace));
  cublasLtMatmulHeuristicResult_t res[8];
  int found = 0;
  const cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, lc, ld, pref, 8, res, &found);
  r.algos = hs == CUBLAS_STATUS_SUCCESS ? found : 0;
  if (hs != CUBLAS_STATUS_SUCCESS) r.why = "heuristic status " + std::to_string(static_cast<int>(hs));
  const float one = 1.f, zero = 0.f;
  const int32_t ione = 1, izero = 0;
  const bool int_scale = v.scale_type == CUDA_R_32I;
  const void* alpha = v.alpha_vector ? alpha_vec : (int_scale ? static_cast<const void*>(&ione) : &one);
  const void* beta = v.residual ? (int_scale ? static_cast<const void*>(&ione) : &one) : (int_scale ? static_cast<const void*>(&izero) : &zero);
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  int best = -1;
  for (int i = 0; i < r.algos; ++i) {
    if (res[i].workspaceSize > kWorkspace) continue;
    auto call = [&] { return cublasLtMatmul(lt, desc, alpha, A, la, B, lb, beta, C, lc, D, ld, &res[i].algo, workspace, kWorkspace, nullptr); };
    if (call() != CUBLAS_STATUS_SUCCESS) continue;
    CK(cudaDeviceSynchronize());
    CK(cudaEventRecord(e0));
    for (int it = 0; it < iters; ++it) call();
    CK(cudaEventRecord(e1));
    CK(cudaEventSynchronize(e1));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    ms /= iters;
    if (r.ms < 0 || ms < r.ms) {
      r.ms = ms;
      best = i;
    }
  }
  if (best >= 0) {
    // The result of the fastest algorithm, against the FP16 GEMM (the first variant) on the same values.
    cublasLtMatmul(lt, desc, alpha, A, la, B, lb, beta, C, lc, D, ld, &res[best].algo, workspace, kWorkspace, nullptr);
    std::vector<uint8_t> hd(static_cast<size_t>(M * N) * type_size(v.d));
    CK(cudaMemcpy(hd.data(), D, hd.size(), cudaMemcpyDeviceToHost));
    const size_t n = static_cast<size_t>(std::min<int64_t>(M * N, 1 << 20));
    if (!reference->size()) {
      reference->resize(n);
      for (size_t i = 0; i < n; ++i) (*reference)[i] = to_float(&hd[i * type_size(v.d)], v.d);
    } else {
      for (size_t i = 0; i < n; ++i) {
        float ref = (*reference)[i];
        if (v.epilogue & CUBLASLT_EPILOGUE_GELU) ref = 0.5f * ref * (1.f + std::erf(ref / std::sqrt(2.f)));
        float got = to_float(&hd[i * type_size(v.d)], v.d);
        if (v.residual) got -= to_float(&hc[i * type_size(v.c)], v.c);
        const double rel = std::fabs(got - ref) / std::max(1.f, std::fabs(ref));
        r.max_err = std::max(r.max_err, rel);
      }
    }
  } else if (r.why.empty()) {
    r.why = r.algos ? "no algorithm ran" : "no algorithm";
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  for (void* p : {A, B, C, D, bias, sa, sb, sd, alpha_vec}) cudaFree(p);
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatrixLayoutDestroy(la);
  cublasLtMatrixLayoutDestroy(lb);
  cublasLtMatrixLayoutDestroy(lc);
  cublasLtMatrixLayoutDestroy(ld);
  cublasLtMatmulDescDestroy(desc);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const int iters = argc > 1 ? std::atoi(argv[1]) : 20;
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    std::printf("no GPU\n");
    return 0;
  }
  cudaDeviceProp p;
  CK(cudaGetDeviceProperties(&p, 0));
  cublasLtCreate(&lt);
  CK(cudaMalloc(&workspace, kWorkspace));
  std::printf("# cuBLASLt %zu on %s\n\n", cublasLtGetVersion(), p.name);
  const int SC = CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F, OV = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
  const Variant variants[] = {
      {"fp16 bias", CUDA_R_16F, CUDA_R_16F, CUDA_R_16F, CUBLAS_COMPUTE_32F, CUDA_R_32F, CUBLASLT_EPILOGUE_BIAS, -1, -1},
      {"fp8 scalar bias", CUDA_R_8F_E4M3, CUDA_R_16F, CUDA_R_16F, CUBLAS_COMPUTE_32F, CUDA_R_32F, CUBLASLT_EPILOGUE_BIAS, SC, SC},
      {"fp8 outer/scalar bias", CUDA_R_8F_E4M3, CUDA_R_16F, CUDA_R_16F, CUBLAS_COMPUTE_32F, CUDA_R_32F, CUBLASLT_EPILOGUE_BIAS, OV, SC},
      {"fp8 outer/outer bias", CUDA_R_8F_E4M3, CUDA_R_16F, CUDA_R_16F, CUBLAS_COMPUTE_32F, CUDA_R_32F, CUBLASLT_EPILOGUE_BIAS, OV, OV},
      {"fp8 outer/outer", CUDA_R_8F_E4M3, CUDA_R_16F, CUDA_R_16F, CUBLAS_COMPUTE_32F, CUDA_R_32F, CUBLASLT_EPILOGUE_DEFAULT, OV, OV},
      {"fp8 outer/outer gelu+bias", CUDA_R_8F_E4M3, CUDA_R_16F, CUDA_R_16F, CUBLAS_COMPUTE_32F, CUDA_R_32F, CUBLASLT_EPILOGUE_GELU_BIAS, OV, OV},
      {"fp8 outer/outer bias+res", CUDA_R_8F_E4M3, CUDA_R_16F, CUDA_R_16F, CUBLAS_COMPUTE_32F, CUDA_R_32F, CUBLASLT_EPILOGUE_BIAS, OV, OV, false, true},
      {"fp8 scalar bias+res", CUDA_R_8F_E4M3, CUDA_R_16F, CUDA_R_16F, CUBLAS_COMPUTE_32F, CUDA_R_32F, CUBLASLT_EPILOGUE_BIAS, SC, SC, false, true},
      {"fp8 scalar gelu+bias ->e4m3", CUDA_R_8F_E4M3, CUDA_R_16F, CUDA_R_8F_E4M3, CUBLAS_COMPUTE_32F, CUDA_R_32F, CUBLASLT_EPILOGUE_GELU_BIAS, SC, SC, true},
      {"fp8 outer/outer gelu+bias ->e4m3", CUDA_R_8F_E4M3, CUDA_R_16F, CUDA_R_8F_E4M3, CUBLAS_COMPUTE_32F, CUDA_R_32F, CUBLASLT_EPILOGUE_GELU_BIAS, OV, OV, true},
      {"int8 ->int32", CUDA_R_8I, CUDA_R_32I, CUDA_R_32I, CUBLAS_COMPUTE_32I, CUDA_R_32I, CUBLASLT_EPILOGUE_DEFAULT, -1, -1},
      {"int8 ->int8", CUDA_R_8I, CUDA_R_8I, CUDA_R_8I, CUBLAS_COMPUTE_32I, CUDA_R_32F, CUBLASLT_EPILOGUE_DEFAULT, -1, -1},
      {"int8 ->int8 alpha-vector", CUDA_R_8I, CUDA_R_8I, CUDA_R_8I, CUBLAS_COMPUTE_32I, CUDA_R_32F, CUBLASLT_EPILOGUE_DEFAULT, -1, -1, false, false, true},
      {"int8 ->fp16", CUDA_R_8I, CUDA_R_16F, CUDA_R_16F, CUBLAS_COMPUTE_32I, CUDA_R_32F, CUBLASLT_EPILOGUE_DEFAULT, -1, -1},
      {"int8 ->fp32", CUDA_R_8I, CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32I, CUDA_R_32F, CUBLASLT_EPILOGUE_DEFAULT, -1, -1},
  };
  // UniFormer-S Linear layers at batch 128 and batch 1 (224x224).
  const Shape shapes[] = {
      {"s1 fc1 b128", 401408, 256, 64},   {"s1 conv1 b128", 401408, 64, 64},  {"s2 fc1 b128", 100352, 512, 128},
      {"s2 fc2 b128", 100352, 128, 512},  {"s3 qkv b128", 25088, 960, 320},   {"s3 fc1 b128", 25088, 1280, 320},
      {"s3 fc2 b128", 25088, 320, 1280},  {"s4 fc1 b128", 6272, 2048, 512},   {"s4 fc2 b128", 6272, 512, 2048},
      {"s1 fc1 b1", 3136, 256, 64},       {"s2 fc1 b1", 784, 512, 128},       {"s3 qkv b1", 196, 960, 320},
      {"s3 fc1 b1", 196, 1280, 320},      {"s3 fc2 b1", 196, 320, 1280},      {"s4 fc1 b1", 49, 2048, 512},
  };
  std::printf("| layer | M x N x K | variant | algos | ms | TFLOP/s | vs fp16 | max rel err |\n|---|---|---|---|---|---|---|---|\n");
  for (const Shape& s : shapes) {
    std::vector<float> reference;
    float fp16_ms = -1;
    for (const Variant& v : variants) {
      const Result r = run(s, v, iters, &reference);
      if (&v == &variants[0]) fp16_ms = r.ms;
      char dims[64];
      std::snprintf(dims, sizeof dims, "%lldx%lldx%lld", static_cast<long long>(s.M), static_cast<long long>(s.N), static_cast<long long>(s.K));
      if (r.ms < 0) {
        std::printf("| %s | %s | %s | %d | - | - | - | %s |\n", s.where, dims, v.name, r.algos, r.why.c_str());
        continue;
      }
      const double tflops = 2.0 * s.M * s.N * s.K / (r.ms * 1e-3) / 1e12;
      std::printf("| %s | %s | %s | %d | %.4f | %.0f | %.2fx | %.1e |\n", s.where, dims, v.name, r.algos, r.ms, tflops,
                  fp16_ms > 0 ? fp16_ms / r.ms : 0.0, r.max_err);
    }
    std::fflush(stdout);
  }
  cudaFree(workspace);
  cublasLtDestroy(lt);
  return 0;
}
