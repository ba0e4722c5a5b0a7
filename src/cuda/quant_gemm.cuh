// The CUTLASS kernels behind quant_gemm.h, one template per (8-bit type, tile, epilogue). Included
// only by quant_gemm_int8.cu and quant_gemm_fp8.cu, so each compiles its own instantiations.
#pragma once
#include "cute/tensor.hpp"
#include "cutlass/cutlass.h"
#include "cutlass/epilogue/collective/collective_builder.hpp"
#include "cutlass/epilogue/fusion/operations.hpp"
#include "cutlass/epilogue/fusion/sm90_callbacks_tma_warpspecialized.hpp"
#include "cutlass/epilogue/thread/activation.h"
#include "cutlass/gemm/collective/collective_builder.hpp"
#include "cutlass/gemm/device/gemm_universal_adapter.h"
#include "cutlass/gemm/kernel/gemm_universal.hpp"
#include "cuda/quant_gemm.h"
#include "ir/graph.h"

namespace unirt {
namespace cuda {
namespace qgemm {

using namespace cute;
namespace fusion = cutlass::epilogue::fusion;

// Z = alpha[n] * acc + bias[n]; then act(Z) * inv_scale rounded (saturating) to the 8-bit type.
template <class Tile, class ElementD, template <class> class Act>
using QuantizedOut = fusion::Sm90EVT<
    fusion::Sm90Compute<cutlass::multiplies, ElementD, float, cutlass::FloatRoundStyle::round_to_nearest>,
    fusion::Sm90ScalarBroadcast<float>,
    fusion::Sm90EVT<fusion::Sm90Compute<Act, float, float, cutlass::FloatRoundStyle::round_to_nearest>,
                    fusion::Sm90EVT<fusion::Sm90Compute<cutlass::homogeneous_multiply_add, float, float,
                                                        cutlass::FloatRoundStyle::round_to_nearest>,
                                    fusion::Sm90RowBroadcast<0, Tile, float, float, Stride<_0, _1, int64_t>>,
                                    fusion::Sm90AccFetch,
                                    fusion::Sm90RowBroadcast<0, Tile, float, float, Stride<_0, _1, int64_t>>>>>;

// ElementAB: int8_t or cutlass::float_e4m3_t. Out8: D of ElementAB with GELU, else float16 D
// with the residual as C (beta 1, or 0 when absent: C is then never read).
// Schedule: KernelTmaWarpSpecializedCooperative (two consumer warpgroups share a 128-row tile) or
// ...Pingpong (each warpgroup its own tile, one's epilogue overlapping the other's MMAs: what
// short-K layers with heavy epilogues want). The epilogue schedule follows.
template <class ElementAB, class Tile, bool Out8, bool Pingpong>
struct Kernel {
  using MainSchedule = std::conditional_t<Pingpong, cutlass::gemm::KernelTmaWarpSpecializedPingpong,
                                          cutlass::gemm::KernelTmaWarpSpecializedCooperative>;
  using EpiSchedule = std::conditional_t<Pingpong, cutlass::epilogue::TmaWarpSpecialized, cutlass::epilogue::TmaWarpSpecializedCooperative>;
  using Acc = std::conditional_t<std::is_same_v<ElementAB, int8_t>, int32_t, float>;
  using ElementD = std::conditional_t<Out8, ElementAB, cutlass::half_t>;
  using ElementC = std::conditional_t<Out8, void, cutlass::half_t>;
  using Fusion = std::conditional_t<
      Out8, QuantizedOut<Tile, ElementD, cutlass::epilogue::thread::GELU_taylor>,
      fusion::PerColLinCombPerColBiasEltAct<cutlass::epilogue::thread::Identity, cutlass::half_t, float, float,
                                            cutlass::half_t, float>>;
  static constexpr int kAlignD = 16 / sizeof(ElementD);
  using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, Tile, cute::Shape<_1, _1, _1>, cutlass::epilogue::collective::EpilogueTileAuto,
      Acc, float, ElementC, cutlass::layout::RowMajor, kAlignD, ElementD, cutlass::layout::RowMajor, kAlignD,
      EpiSchedule, Fusion>::CollectiveOp;
  using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, ElementAB, cutlass::layout::RowMajor, 16, ElementAB,
      cutlass::layout::ColumnMajor, 16, Acc, Tile, cute::Shape<_1, _1, _1>,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(sizeof(typename Epilogue::SharedStorage))>,
      MainSchedule>::CollectiveOp;
  using GemmKernel = cutlass::gemm::kernel::GemmUniversal<cute::Shape<int, int, int, int>, Mainloop, Epilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<GemmKernel>;

  static typename Gemm::Arguments arguments(const QGemmArgs& q) {
    const int M = static_cast<int>(q.M), N = static_cast<int>(q.N), K = static_cast<int>(q.K);
    using SA = typename GemmKernel::StrideA;
    using SB = typename GemmKernel::StrideB;
    using SC = typename GemmKernel::StrideC;
    using SD = typename GemmKernel::StrideD;
    const auto* a = static_cast<const ElementAB*>(q.a);
    const auto* b = static_cast<const ElementAB*>(q.b);
    auto* d = static_cast<ElementD*>(q.d);
    typename Gemm::Arguments args;
    args.mode = cutlass::gemm::GemmUniversalMode::kGemm;
    args.problem_shape = {M, N, K, 1};
    args.mainloop.ptr_A = a;
    args.mainloop.dA = SA{int64_t(K), _1{}, int64_t(M) * K};
    args.mainloop.ptr_B = b;
    args.mainloop.dB = SB{int64_t(K), _1{}, int64_t(N) * K};
    args.epilogue.dC = SC{int64_t(N), _1{}, int64_t(M) * N};
    args.epilogue.ptr_D = d;
    args.epilogue.dD = SD{int64_t(N), _1{}, int64_t(M) * N};
    auto& f = args.epilogue.thread;
    if constexpr (Out8) {
      args.epilogue.ptr_C = nullptr;
      // {inv_scale, {{alpha, acc, bias, fma}, act}, multiply}
      f = {{{q.inv_out_scale}, {}, {}},
           {{{q.alpha, 0.f, {}}, {}, {q.bias, 0.f, {}}, {}}, {}},
           {}};
    } else {
      // No residual: beta = 0 and C is never loaded (D stands in for its descriptor).
      args.epilogue.ptr_C = q.residual ? reinterpret_cast<const cutlass::half_t*>(q.residual) : reinterpret_cast<const cutlass::half_t*>(d);
      f.alpha_ptr = q.alpha;
      f.dAlpha = {_0{}, true, 0};
      f.beta = q.residual ? 1.f : 0.f;
      f.bias_ptr = q.bias;
    }
    return args;
  }

  static void prepare(const QGemmArgs& q) {
    typename Gemm::Arguments args = arguments(q);
    if (Gemm::can_implement(args) != cutlass::Status::kSuccess)
      throw Error("CUTLASS cannot run this 8-bit GEMM (" + std::to_string(q.M) + "x" + std::to_string(q.N) + "x" + std::to_string(q.K) + ")");
    const int smem = static_cast<int>(sizeof(typename GemmKernel::SharedStorage));
    if (smem >= (48 << 10)) {
      const cudaError_t e = cudaFuncSetAttribute(cutlass::device_kernel<GemmKernel>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
      if (e != cudaSuccess) throw Error(std::string("8-bit GEMM: cudaFuncSetAttribute: ") + cudaGetErrorString(e));
    }
  }

  // Parameters (TMA descriptors) are encoded on the host per call; the persistent tile scheduler
  // of a plain GEMM needs no workspace.
  static void run(const QGemmArgs& q, cudaStream_t s) {
    typename Gemm::Arguments args = arguments(q);
    if (GemmKernel::get_workspace_size(args) != 0) throw Error("8-bit GEMM: unexpected workspace request");
    typename GemmKernel::Params params = GemmKernel::to_underlying_arguments(args, nullptr);
    const cutlass::Status st = Gemm::run(params, s);
    if (st != cutlass::Status::kSuccess) throw Error(std::string("8-bit GEMM launch: ") + cutlassGetStatusString(st));
  }
};

// The candidates a layer's prepare() times (quant_gemm.cpp names them, kQGemmTiles): cooperative
// 128x128x128, pingpong 64x128x128, pingpong 64x64x128 (64-channel layers), pingpong 64x128x64
// (K = 64 layers: no half-empty K tile).
template <class ElementAB, bool Out8, class F>
void with_tile(int tile, F&& f) {
  using namespace cute;
  switch (tile) {
    case 0: f(Kernel<ElementAB, cute::Shape<_128, _128, _128>, Out8, false>{}); break;
    case 1: f(Kernel<ElementAB, cute::Shape<_64, _128, _128>, Out8, true>{}); break;
    case 2: f(Kernel<ElementAB, cute::Shape<_64, _64, _128>, Out8, true>{}); break;
    case 3: f(Kernel<ElementAB, cute::Shape<_64, _128, _64>, Out8, true>{}); break;
    default: throw Error("8-bit GEMM: no tile " + std::to_string(tile));
  }
}
template <class ElementAB>
void prepare_for(const QGemmArgs& q, int tile) {
  auto f = [&](auto k) { decltype(k)::prepare(q); };
  if (q.out8) with_tile<ElementAB, true>(tile, f);
  else with_tile<ElementAB, false>(tile, f);
}
template <class ElementAB>
void run_for(const QGemmArgs& q, int tile, cudaStream_t s) {
  auto f = [&](auto k) { decltype(k)::run(q, s); };
  if (q.out8) with_tile<ElementAB, true>(tile, f);
  else with_tile<ElementAB, false>(tile, f);
}

}  // namespace qgemm
}  // namespace cuda
}  // namespace unirt
