// The CUTLASS kernels behind quant_gemm.h, one template per (8-bit type, tile, epilogue). Included
// only by quant_gemm_int8.cu and quant_gemm_fp8.cu, so each compiles its own instantiations.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <string>
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
// (One hand-written visitor node doing the same with the int32 -> float and float -> int8
// conversions through float bit patterns, to spare the quarter-rate I2F/F2I, ran 10-15% slower
// on UniFormer-S's fc1 layers: this epilogue is issue-bound, not conversion-bound.)
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

// Float16 output with the residual and an 8-bit copy (a CBlock's conv2: x + conv2(...) is both
// the residual stream and, quantized, the next fc1's input). Z = alpha[n] * acc + bias[n] + C,
// rounded to float16 (D), and its codes at inv_scale (the auxiliary output, stored by TMA like D):
// the codes of D as stored, by the fused producers' rule (backend/quantize_rule.h: times the
// reciprocal scale, rounded to nearest even and saturated by the converter).
struct ResidualNode : fusion::Sm90VisitorImpl<> {
  using fusion::Sm90VisitorImpl<>::Sm90VisitorImpl;
  struct ConsumerStoreCallbacks : fusion::EmptyConsumerStoreCallbacks {
    template <class ElementAcc, int N>
    CUTLASS_DEVICE cutlass::Array<float, N> visit(cutlass::Array<ElementAcc, N> const& acc, int, int, int,
                                                  cutlass::Array<float, N> const& alpha, cutlass::Array<float, N> const& bias,
                                                  cutlass::Array<float, N> const& c) {
      cutlass::Array<float, N> z;
      CUTLASS_PRAGMA_UNROLL
      for (int i = 0; i < N; ++i) z[i] = __half2float(__float2half_rn(fmaf(alpha[i], static_cast<float>(acc[i]), bias[i]) + c[i]));
      return z;
    }
  };
  template <bool ReferenceSrc, class... Args>
  CUTLASS_DEVICE auto get_consumer_store_callbacks(fusion::ConsumerStoreArgs<Args...> const&) {
    return ConsumerStoreCallbacks();
  }
};

// The DAG's last node: D is its first input (the second, the auxiliary store's pass-through, only
// orders the store before it).
struct FirstAsHalfNode : fusion::Sm90VisitorImpl<> {
  using fusion::Sm90VisitorImpl<>::Sm90VisitorImpl;
  struct ConsumerStoreCallbacks : fusion::EmptyConsumerStoreCallbacks {
    template <class ElementAcc, int N>
    CUTLASS_DEVICE cutlass::Array<cutlass::half_t, N> visit(cutlass::Array<ElementAcc, N> const&, int, int, int,
                                                            cutlass::Array<float, N> const& z, cutlass::Array<float, N> const&) {
      return cutlass::NumericArrayConverter<cutlass::half_t, float, N, cutlass::FloatRoundStyle::round_to_nearest>{}(z);
    }
  };
  template <bool ReferenceSrc, class... Args>
  CUTLASS_DEVICE auto get_consumer_store_callbacks(fusion::ConsumerStoreArgs<Args...> const&) {
    return ConsumerStoreCallbacks();
  }
};

template <class Tile, class ElementAux, class EpiSchedule>
struct ResidualWithCodes {
  using Desc = cutlass::epilogue::collective::detail::EpilogueDescriptor<Tile, cutlass::epilogue::collective::EpilogueTileAuto,
                                                                         cutlass::half_t, cutlass::half_t, EpiSchedule>;
  using AuxDesc = cutlass::epilogue::collective::detail::AuxStoreDescriptor<Desc, cutlass::layout::RowMajor, ElementAux>;
  using Row = fusion::Sm90RowBroadcast<0, Tile, float, float, Stride<_0, _1, int64_t>>;
  using Store = fusion::Sm90AuxStore<AuxDesc::Stages, typename Desc::EpilogueTile, ElementAux, cutlass::FloatRoundStyle::round_to_nearest,
                                     typename AuxDesc::Stride, typename AuxDesc::SmemLayoutAtom, typename AuxDesc::CopyOpR2S>;
  using Scale = fusion::Sm90Compute<cutlass::multiplies, float, float, cutlass::FloatRoundStyle::round_to_nearest>;
  // 0 alpha, 1 bias, 2 C, 3 Z(0, 1, 2), 4 inv_scale, 5 Z * inv_scale, 6 store(5), 7 D(3, 6)
  using Edges = cute::tuple<cute::seq<>, cute::seq<>, cute::seq<>, cute::seq<0, 1, 2>, cute::seq<>, cute::seq<3, 4>, cute::seq<5>,
                            cute::seq<3, 6>>;
  using Tree = fusion::Sm90TopologicalVisitor<float, Edges, Row, Row, fusion::Sm90SrcFetch<cutlass::half_t>, ResidualNode,
                                              fusion::Sm90ScalarBroadcast<float>, Scale, Store, FirstAsHalfNode>;
};

// The epilogue kinds: float16 D (+ residual), 8-bit D (GELU + requantize), float16 D + residual
// with an 8-bit copy.
enum class Epi { Half, Codes, HalfAndCodes };

// ElementAB: int8_t or cutlass::float_e4m3_t. Epi::Codes: D of ElementAB with GELU; Epi::Half:
// float16 D with the residual as C (beta 1, or 0 when absent: C is then never read);
// Epi::HalfAndCodes: float16 D with the residual and the 8-bit copy.
// Schedule: KernelTmaWarpSpecializedCooperative (two consumer warpgroups share a 128-row tile) or
// ...Pingpong (each warpgroup its own tile, one's epilogue overlapping the other's MMAs: what
// short-K layers with heavy epilogues want). The epilogue schedule follows.
template <class ElementAB, class Tile, Epi E, bool Pingpong>
struct Kernel {
  static constexpr bool Out8 = E == Epi::Codes;
  using MainSchedule = std::conditional_t<Pingpong, cutlass::gemm::KernelTmaWarpSpecializedPingpong,
                                          cutlass::gemm::KernelTmaWarpSpecializedCooperative>;
  using EpiSchedule = std::conditional_t<Pingpong, cutlass::epilogue::TmaWarpSpecialized, cutlass::epilogue::TmaWarpSpecializedCooperative>;
  using Acc = std::conditional_t<std::is_same_v<ElementAB, int8_t>, int32_t, float>;
  using ElementD = std::conditional_t<Out8, ElementAB, cutlass::half_t>;
  using ElementC = std::conditional_t<Out8, void, cutlass::half_t>;
  using Fusion = std::conditional_t<
      Out8, QuantizedOut<Tile, ElementD, cutlass::epilogue::thread::GELU_taylor>,
      std::conditional_t<E == Epi::HalfAndCodes, typename ResidualWithCodes<Tile, ElementAB, EpiSchedule>::Tree,
                         fusion::PerColLinCombPerColBiasEltAct<cutlass::epilogue::thread::Identity, cutlass::half_t, float, float,
                                                               cutlass::half_t, float>>>;
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
    } else if constexpr (E == Epi::HalfAndCodes) {
      args.epilogue.ptr_C = reinterpret_cast<const cutlass::half_t*>(q.residual);
      // {alpha, bias, C, Z, inv_scale, multiply, store, D}
      using SAux = typename ResidualWithCodes<Tile, ElementAB, EpiSchedule>::AuxDesc::Stride;
      f = {{q.alpha, 0.f, {}}, {q.bias, 0.f, {}}, {}, {}, {{q.aux_inv_scale}}, {}, {static_cast<ElementAB*>(q.aux), SAux{int64_t(N), _1{}, int64_t(M) * N}}, {}};
    } else {
      // No residual: beta = 0 and C is never loaded (D stands in for its descriptor).
      args.epilogue.ptr_C = q.has_residual ? reinterpret_cast<const cutlass::half_t*>(q.residual) : reinterpret_cast<const cutlass::half_t*>(d);
      f.alpha_ptr = q.alpha;
      f.dAlpha = {_0{}, true, 0};
      f.beta = q.has_residual ? 1.f : 0.f;
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
    // A programmatic dependent launch: the GEMM's blocks become resident and set up (barriers,
    // TMA descriptor prefetch) while the kernel before it drains; its loads wait on that grid
    // (CUTLASS_ENABLE_GDC_FOR_SM90). UNIRT_QGEMM_PDL=0 launches it plainly.
    static const bool pdl = [] {
      const char* e = std::getenv("UNIRT_QGEMM_PDL");
      return !(e && std::string(e) == "0");
    }();
    const cutlass::Status st = Gemm::run(params, s, nullptr, pdl);
    if (st != cutlass::Status::kSuccess) {
      // What the launch asked for against what the function allows (CUTLASS reports only "Error
      // Internal"; it has consumed the CUDA error).
      cudaFuncAttributes fa{};
      cudaFuncGetAttributes(&fa, cutlass::device_kernel<GemmKernel>);
      const dim3 grid = GemmKernel::get_grid_shape(params), block = GemmKernel::get_block_shape();
      char b[320];
      std::snprintf(b, sizeof b, "8-bit GEMM launch: %s (grid %ux%ux%u, block %u, shared memory %d of %d bytes allowed, %zu bytes of parameters)",
                    cutlassGetStatusString(st), grid.x, grid.y, grid.z, block.x, int(GemmKernel::SharedStorageSize),
                    fa.maxDynamicSharedSizeBytes, sizeof(params));
      throw Error(b);
    }
  }
};

// The candidates a layer's prepare() times (quant_gemm.cpp names them, kQGemmTiles): cooperative
// 128x128x128, pingpong 64x128x128, pingpong 64x64x128 (64-channel layers), pingpong 64x128x64
// (K = 64 layers: no half-empty K tile).
template <class ElementAB, Epi E, class F>
void with_tile(int tile, F&& f) {
  using namespace cute;
  switch (tile) {
    case 0: f(Kernel<ElementAB, cute::Shape<_128, _128, _128>, E, false>{}); break;
    case 1: f(Kernel<ElementAB, cute::Shape<_64, _128, _128>, E, true>{}); break;
    case 2: f(Kernel<ElementAB, cute::Shape<_64, _64, _128>, E, true>{}); break;
    case 3: f(Kernel<ElementAB, cute::Shape<_64, _128, _64>, E, true>{}); break;
    default: throw Error("8-bit GEMM: no tile " + std::to_string(tile));
  }
}
template <class ElementAB, class F>
void with_kernel(const QGemmArgs& q, int tile, F&& f) {
  if (q.out8) with_tile<ElementAB, Epi::Codes>(tile, f);
  else if (q.has_aux) with_tile<ElementAB, Epi::HalfAndCodes>(tile, f);
  else with_tile<ElementAB, Epi::Half>(tile, f);
}
template <class ElementAB>
void prepare_for(const QGemmArgs& q, int tile) {
  with_kernel<ElementAB>(q, tile, [&](auto k) { decltype(k)::prepare(q); });
}
template <class ElementAB>
void run_for(const QGemmArgs& q, int tile, cudaStream_t s) {
  with_kernel<ElementAB>(q, tile, [&](auto k) { decltype(k)::run(q, s); });
}

}  // namespace qgemm
}  // namespace cuda
}  // namespace unirt
