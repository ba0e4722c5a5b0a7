// The dispatch half of quant_gemm.h (no CUTLASS here: the instantiations live in the .cu files).
#include "cuda/quant_gemm.h"
#include "cuda/quant_gemm_tuning.h"

#include <cstdio>
#include <cstdlib>

#include "ir/graph.h"

namespace unirt {
namespace cuda {

std::string qgemm_unsupported(const QGemmArgs& a) {
  if (a.M > INT32_MAX || a.N > INT32_MAX || a.K > INT32_MAX) return "8-bit GEMM dimensions must fit in int32";
  if (a.K % 16) return "K = " + std::to_string(a.K) + " is not a multiple of 16 (the 8-bit GEMM reads 16-byte rows)";
  if (a.N % 16) return "N = " + std::to_string(a.N) + " is not a multiple of 16";
  if (a.out8 && !a.gelu) return "an 8-bit output is only built with the GELU epilogue";
  if (a.out8 && a.has_residual) return "an 8-bit output takes no residual";
  if (!a.out8 && a.gelu) return "GELU is only built with an 8-bit output";
  if (a.has_aux && (a.out8 || !a.has_residual)) return "an 8-bit copy of the output is only built for a float16 output with a residual";
  return "";
}

const char* qgemm_tile_name(int tile) {
  static const char* names[kQGemmTiles] = {"cooperative 128x128x128", "pingpong 64x128x128", "pingpong 64x64x128", "pingpong 64x128x64",
                                           "short-K mma.sync 128x64"};
  return tile >= 0 && tile < kQGemmTiles ? names[tile] : "?";
}

void qgemm_prepare(QGemmType t, const QGemmArgs& a, int tile) {
  if (tile == kQGemmShortKTile) qgemm_prepare_short_k(t, a);
  else if (t == QGemmType::Int8) qgemm_prepare_int8(a, tile);
  else qgemm_prepare_fp8(a, tile);
}

void qgemm_run(QGemmType t, const QGemmArgs& a, int tile, cudaStream_t s) {
  if (tile == kQGemmShortKTile) qgemm_run_short_k(t, a, s);
  else if (t == QGemmType::Int8) qgemm_run_int8(a, tile, s);
  else qgemm_run_fp8(a, tile, s);
}

float time_launches_us(const std::function<void(cudaStream_t)>& launch, int reps) {
  cudaStream_t stream = nullptr;
  cudaEvent_t e0 = nullptr, e1 = nullptr;
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  auto release = [&] {
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    if (stream) cudaStreamDestroy(stream);
  };
  auto check = [&](cudaError_t e, const char* what) {
    if (e == cudaSuccess) return;
    release();
    throw Error(std::string("kernel timing: ") + what + ": " + cudaGetErrorString(e));
  };
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  check(cudaEventCreate(&e0), "cudaEventCreate");
  check(cudaEventCreate(&e1), "cudaEventCreate");
  check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
  try {
    for (int r = 0; r < reps; ++r) launch(stream);
  } catch (...) {
    cudaStreamEndCapture(stream, &graph);
    cudaGetLastError();
    release();
    throw;
  }
  check(cudaStreamEndCapture(stream, &graph), "cudaStreamEndCapture");
  check(cudaGraphInstantiate(&exec, graph, 0), "cudaGraphInstantiate");
  check(cudaGraphLaunch(exec, stream), "cudaGraphLaunch");  // the first replay uploads the graph
  check(cudaEventRecord(e0, stream), "cudaEventRecord");
  check(cudaGraphLaunch(exec, stream), "cudaGraphLaunch");
  check(cudaEventRecord(e1, stream), "cudaEventRecord");
  check(cudaEventSynchronize(e1), "cudaEventSynchronize");
  float ms = 0.f;
  check(cudaEventElapsedTime(&ms, e0, e1), "cudaEventElapsedTime");
  release();
  return ms * 1000.f / reps;
}

int qgemm_autotune(QGemmType t, const QGemmArgs& a, std::string* report, float* best_us) {
  const size_t ab = static_cast<size_t>(a.M * a.K), bb = static_cast<size_t>(a.N * a.K);
  const size_t db = static_cast<size_t>(a.M * a.N) * (a.out8 ? 1 : 2);
  void *A = nullptr, *B = nullptr, *D = nullptr, *R = nullptr, *V = nullptr, *X = nullptr;
  float ms[kQGemmTiles];
  auto release = [&] {
    for (void* p : {A, B, D, R, V, X})
      if (p) cudaFree(p);
  };
  auto check = [](cudaError_t e, const char* what) {
    if (e != cudaSuccess) throw Error(std::string("8-bit GEMM tuning: ") + what + ": " + cudaGetErrorString(e));
  };
  try {
    check(cudaMalloc(&A, ab), "cudaMalloc");
    check(cudaMalloc(&B, bb), "cudaMalloc");
    check(cudaMalloc(&D, db), "cudaMalloc");
    check(cudaMalloc(&V, static_cast<size_t>(a.N) * 8), "cudaMalloc");
    if (a.has_residual) check(cudaMalloc(&R, db), "cudaMalloc");
    if (a.has_aux) check(cudaMalloc(&X, static_cast<size_t>(a.M * a.N)), "cudaMalloc");
    // Zeros: no NaN or overflow path is timed instead of the real one.
    check(cudaMemset(A, 0, ab), "cudaMemset");
    check(cudaMemset(B, 0, bb), "cudaMemset");
    check(cudaMemset(V, 0, static_cast<size_t>(a.N) * 8), "cudaMemset");
    if (R) check(cudaMemset(R, 0, db), "cudaMemset");
    QGemmArgs s = a;
    s.a = A, s.b = B, s.d = D;
    s.alpha = static_cast<const float*>(V);
    s.bias = a.bias ? static_cast<const float*>(V) + a.N : nullptr;
    s.residual = static_cast<const __half*>(R);
    s.aux = X;
    // UNIRT_QGEMM_SHORT_K=0 leaves the hand-written kernel out (to compare against CUTLASS alone).
    const char* short_k = std::getenv("UNIRT_QGEMM_SHORT_K");
    const bool no_short_k = short_k && std::string(short_k) == "0";
    for (int i = 0; i < kQGemmTiles; ++i) {
      ms[i] = -1.f;
      if (i == kQGemmShortKTile && no_short_k) continue;
      try {
        qgemm_prepare(t, s, i);
        qgemm_run(t, s, i, nullptr);
      } catch (const Error&) {
        continue;  // a tile CUTLASS cannot run on this shape is skipped
      }
      ms[i] = time_launches_us([&](cudaStream_t st) { qgemm_run(t, s, i, st); }, 10) / 1000.f;
    }
  } catch (...) {
    release();
    throw;
  }
  release();
  int best = -1;
  for (int i = 0; i < kQGemmTiles; ++i)
    if (ms[i] >= 0 && (best < 0 || ms[i] < ms[best])) best = i;
  if (best < 0) throw Error("no 8-bit GEMM tile runs a " + std::to_string(a.M) + "x" + std::to_string(a.N) + "x" + std::to_string(a.K) + " GEMM");
  // UNIRT_QGEMM_TILE=i takes tile i wherever it runs (tests and kernel comparisons), as
  // UNIRT_CONV_NHWC picks the convolution path.
  const char* forced = std::getenv("UNIRT_QGEMM_TILE");
  bool chosen = false;
  if (forced && *forced) {
    char* end = nullptr;
    const long f = std::strtol(forced, &end, 10);
    if (*end || f < 0 || f >= kQGemmTiles) throw Error(std::string("UNIRT_QGEMM_TILE='") + forced + "': expected 0 to " + std::to_string(kQGemmTiles - 1));
    if (ms[f] >= 0) best = static_cast<int>(f), chosen = true;
  }
  std::string r = "M=" + std::to_string(a.M) + " qgemm tile " + std::to_string(best) + " (" + qgemm_tile_name(best) +
                  (chosen ? ", set by UNIRT_QGEMM_TILE" : "") + "; timed";
  for (int i = 0; i < kQGemmTiles; ++i) {
    char b[48];
    std::snprintf(b, sizeof b, " %s%.1f us", i ? "/ " : "", ms[i] * 1000.f);
    r += ms[i] >= 0 ? b : " / -";
  }
  *report = r + ")";
  if (best_us) *best_us = ms[best] * 1000.f;
  return best;
}

int qgemm_autotune(QGemmType t, const QGemmArgs& a, std::string* report) { return qgemm_autotune(t, a, report, nullptr); }

}  // namespace cuda
}  // namespace unirt
