// grouped_gemm.cuh - CUTLASS 4.x sm90 pointer-array grouped GEMM (TMA, warp-specialized,
// cooperative) for the MoE experts. Included by exactly one .cu per epilogue, so that each
// translation unit instantiates one kernel (they are expensive to compile).
//
// Problem per group e: M = rows of expert e (device-only, from offsets), N = n, K = k.
// A row-major [M, K] (tokens), B column-major [K, N] == the expert weight row-major [n, k],
// D row-major [M, N]. No C operand (ElementC = void). Group count is host-known; the per-group
// shapes, pointers and strides are written on the device by setup_kernel, so there is no host
// synchronisation (host_problem_shapes = nullptr).
#pragma once

#include "grouped_gemm_api.cuh"

#include "cute/tensor.hpp"
#include "cutlass/cutlass.h"
#include "cutlass/epilogue/collective/collective_builder.hpp"
#include "cutlass/epilogue/thread/activation.h"
#include "cutlass/epilogue/fusion/operations.hpp"
#include "cutlass/gemm/collective/collective_builder.hpp"
#include "cutlass/gemm/device/gemm_universal_adapter.h"
#include "cutlass/gemm/dispatch_policy.hpp"
#include "cutlass/gemm/group_array_problem_shape.hpp"
#include "cutlass/gemm/kernel/gemm_universal.hpp"
#include "cutlass/util/packed_stride.hpp"

namespace lmoe_cuda {
namespace gg {

using namespace cute;

// relu(v)^2 as an epilogue activation; NaN propagates as in torch (v < 0 ? 0 : v keeps it).
template <class T>
struct ReluSquared {
  static const bool kIsHeavy = false;
  CUTLASS_HOST_DEVICE T operator()(T const& v) const {
    T r = v < T(0) ? T(0) : v;
    return r * r;
  }
};
template <class T, int N>
struct ReluSquared<cutlass::Array<T, N>> {
  static const bool kIsHeavy = false;
  CUTLASS_HOST_DEVICE cutlass::Array<T, N> operator()(cutlass::Array<T, N> const& v) const {
    cutlass::Array<T, N> out;
    ReluSquared<T> f;
    CUTLASS_PRAGMA_UNROLL
    for (int i = 0; i < N; ++i) out[i] = f(v[i]);
    return out;
  }
};

using ProblemShape = cutlass::gemm::GroupProblemShape<Shape<int, int, int>>;
using ElementA = cutlass::bfloat16_t;
using ElementB = cutlass::bfloat16_t;
using ElementD = cutlass::bfloat16_t;
using ElementAcc = float;
using LayoutA = cutlass::layout::RowMajor;
using LayoutB = cutlass::layout::ColumnMajor;
using LayoutD = cutlass::layout::RowMajor;
constexpr int kAlign = 8;  // 16 bytes of bf16
// FP8 W8A8 (grouped_gemm_fp8_*.cu): e4m3 operands, 16 of them per 16 bytes.
using ElementFp8 = cutlass::float_e4m3_t;


// Tile configurations, chosen per token bucket (experts.cu, dense_tc.cu): a 128x128 tile for few rows per
// expert, a 128x256 tile with a 1x2 cluster (the two CTAs share the token tile through TMA
// multicast) for prefill, where each expert holds hundreds of rows.
struct TileNarrow {
  using TileShape = Shape<_128, _128, _64>;
  using ClusterShape = Shape<_1, _1, _1>;
  using KernelSchedule = cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative;
  using EpilogueSchedule = cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative;
};
struct TileWide {
  using TileShape = Shape<_128, _256, _64>;
  using ClusterShape = Shape<_1, _2, _1>;
  using KernelSchedule = cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative;
  using EpilogueSchedule = cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative;
};
// 128x192 (1x2 cluster), FC1 only, opt-in (LMOE_CUDA_FC1_TILE=192): the grouped scheduler pads
// each group's column tiles to the cluster, and 192 divides the Super FC1 width (2688) evenly.
struct TileN192 {
  using TileShape = Shape<_128, _192, _64>;
  using ClusterShape = Shape<_1, _2, _1>;
  using KernelSchedule = cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative;
  using EpilogueSchedule = cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative;
};
// (A 64x256 ping-pong tile for FC1 ran at 387 TFLOP/s against 521 for TileWide at T = 8192 on
// an H200: bench/results/gpu/2026-11-26-bundle-h200-run4/tune.txt.)
// FP8 (W8A8): 128x128 with a K tile of 128 bytes, cooperative; the FP8 mainloop of the non-fast-
// accumulation schedule promotes the tensor-core partial sums into f32 registers periodically.
struct TileFp8 {
  using TileShape = Shape<_128, _128, _128>;
  using ClusterShape = Shape<_1, _1, _1>;
  using KernelSchedule = cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperative;
  using EpilogueSchedule = cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative;
};

// EA / EB: the operand types (bf16, or e4m3 for W8A8); D is bf16 either way.
template <class FusionOp, class Tile, class EA = ElementA, class EB = ElementB>
struct GemmFor {
  static constexpr int kAlignA = 128 / cutlass::sizeof_bits<EA>::value;
  static constexpr int kAlignB = 128 / cutlass::sizeof_bits<EB>::value;
  using TileShape = typename Tile::TileShape;
  using ClusterShape = typename Tile::ClusterShape;
  using KernelSchedule = typename Tile::KernelSchedule;
  using EpilogueSchedule = typename Tile::EpilogueSchedule;
  using CollectiveEpilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, ElementAcc, ElementAcc,
      void, LayoutD*, kAlign,      // no C
      ElementD, LayoutD*, kAlign,  // D
      EpilogueSchedule, FusionOp>::CollectiveOp;

  using CollectiveMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp,
      EA, LayoutA*, kAlignA, EB, LayoutB*, kAlignB, ElementAcc,
      TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<
          static_cast<int>(sizeof(typename CollectiveEpilogue::SharedStorage))>,
      KernelSchedule>::CollectiveOp;

  using Kernel = cutlass::gemm::kernel::GemmUniversal<ProblemShape, CollectiveMainloop,
                                                      CollectiveEpilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
};

// Device-side per-group arrays, carved from the workspace front.
template <class Gemm>
struct GroupArrays {
  using ElementA = typename Gemm::ElementA;
  using ElementB = typename Gemm::ElementB;
  using StrideA = typename Gemm::GemmKernel::InternalStrideA;
  using StrideB = typename Gemm::GemmKernel::InternalStrideB;
  using StrideD = typename Gemm::GemmKernel::InternalStrideD;
  using Shape3 = typename ProblemShape::UnderlyingProblemShape;
  Shape3* shapes;
  const ElementA** ptr_a;
  const ElementB** ptr_b;
  ElementD** ptr_d;
  StrideA* stride_a;
  StrideB* stride_b;
  StrideD* stride_d;
  void* cutlass_ws;

  static size_t arrays_bytes(int g) {
    size_t b = 0;
    b += align_up(sizeof(Shape3) * g, 256);
    b += 3 * align_up(sizeof(void*) * g, 256);
    b += align_up(sizeof(StrideA) * g, 256);
    b += align_up(sizeof(StrideB) * g, 256);
    b += align_up(sizeof(StrideD) * g, 256);
    return b;
  }
  static GroupArrays carve(void* ws, int g) {
    char* p = static_cast<char*>(ws);
    GroupArrays r;
    r.shapes = reinterpret_cast<Shape3*>(p); p += align_up(sizeof(Shape3) * g, 256);
    r.ptr_a = reinterpret_cast<const ElementA**>(p); p += align_up(sizeof(void*) * g, 256);
    r.ptr_b = reinterpret_cast<const ElementB**>(p); p += align_up(sizeof(void*) * g, 256);
    r.ptr_d = reinterpret_cast<ElementD**>(p); p += align_up(sizeof(void*) * g, 256);
    r.stride_a = reinterpret_cast<StrideA*>(p); p += align_up(sizeof(StrideA) * g, 256);
    r.stride_b = reinterpret_cast<StrideB*>(p); p += align_up(sizeof(StrideB) * g, 256);
    r.stride_d = reinterpret_cast<StrideD*>(p); p += align_up(sizeof(StrideD) * g, 256);
    r.cutlass_ws = p;
    return r;
  }
};

template <class Gemm>
__global__ void setup_kernel(GroupArrays<Gemm> arr, int g, const int32_t* __restrict__ offsets,
                             const typename Gemm::ElementA* A, const typename Gemm::ElementB* B,
                             ElementD* D, int n, int k) {
  using GA = GroupArrays<Gemm>;
  int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= g) return;
  int r0 = offsets[e];
  int rows = offsets[e + 1] - r0;
  arr.shapes[e] = make_shape(rows, n, k);
  arr.ptr_a[e] = A + static_cast<int64_t>(r0) * k;
  arr.ptr_b[e] = B + static_cast<int64_t>(e) * n * k;
  arr.ptr_d[e] = D + static_cast<int64_t>(r0) * n;
  arr.stride_a[e] = cutlass::make_cute_packed_stride(typename GA::StrideA{}, make_shape(rows, k, 1));
  arr.stride_b[e] = cutlass::make_cute_packed_stride(typename GA::StrideB{}, make_shape(n, k, 1));
  arr.stride_d[e] = cutlass::make_cute_packed_stride(typename GA::StrideD{}, make_shape(rows, n, 1));
}

// alpha: NULL (1), or a device array [g] of per-group factors (W8A8: input x weight scale), read
// by the epilogue as alpha_ptr[group * dAlpha_L].
template <class Gemm>
typename Gemm::Arguments make_arguments(const GroupArrays<Gemm>& arr, int g, int device,
                                        int sm_count, const float* alpha = nullptr) {
  cutlass::KernelHardwareInfo hw;
  hw.device_id = device;
  hw.sm_count = sm_count;
  typename Gemm::Arguments args;
  decltype(args.epilogue.thread) fusion{};
  fusion.alpha = 1.0f;
  fusion.beta = 0.0f;
  fusion.alpha_ptr = alpha;
  fusion.beta_ptr = nullptr;
  fusion.alpha_ptr_array = nullptr;
  fusion.beta_ptr_array = nullptr;
  fusion.dAlpha = {_0{}, _0{}, alpha ? 1 : 0};
  fusion.dBeta = {_0{}, _0{}, 0};
  args = typename Gemm::Arguments{
      cutlass::gemm::GemmUniversalMode::kGrouped,
      {g, arr.shapes, nullptr},
      {arr.ptr_a, arr.stride_a, arr.ptr_b, arr.stride_b},
      {fusion, nullptr, nullptr, arr.ptr_d, arr.stride_d},
      hw};
  return args;
}

template <class Gemm>
size_t workspace_bytes(int g, int sm_count) {
  GroupArrays<Gemm> fake{};
  typename Gemm::Arguments args = make_arguments<Gemm>(fake, g, 0, sm_count);
  size_t cw = Gemm::get_workspace_size(args);
  return GroupArrays<Gemm>::arrays_bytes(g) + align_up(cw, 256) + 4096;  // + margin
}

template <class Gemm>
lmoe_status run(const GroupedGemmArgs& a, const char* name) {
  if (a.num_groups <= 0) return set_error(LMOE_ERR_INTERNAL, "%s: no groups", name);
  const size_t need = workspace_bytes<Gemm>(a.num_groups, a.sm_count);
  if (a.workspace_bytes < need)
    return set_error(LMOE_ERR_INTERNAL, "%s: workspace %zu < %zu bytes", name,
                     a.workspace_bytes, need);
  GroupArrays<Gemm> arr = GroupArrays<Gemm>::carve(a.workspace, a.num_groups);
  const int threads = 128;
  setup_kernel<Gemm><<<(a.num_groups + threads - 1) / threads, threads, 0, a.stream>>>(
      arr, a.num_groups, a.offsets, reinterpret_cast<const typename Gemm::ElementA*>(a.A),
      reinterpret_cast<const typename Gemm::ElementB*>(a.B), reinterpret_cast<ElementD*>(a.D), a.n, a.k);
  LMOE_CU_LAUNCH("grouped gemm setup");

  typename Gemm::Arguments args = make_arguments<Gemm>(arr, a.num_groups, a.device, a.sm_count, a.alpha);
  Gemm gemm;
  cutlass::Status st = gemm.can_implement(args);
  if (st != cutlass::Status::kSuccess)
    return set_error(LMOE_ERR_UNSUPPORTED, "%s: CUTLASS can_implement: %s", name,
                     cutlass::cutlassGetStatusString(st));
  st = gemm.initialize(args, arr.cutlass_ws, a.stream);
  if (st != cutlass::Status::kSuccess)
    return set_error(LMOE_ERR_CUDA, "%s: CUTLASS initialize: %s (%s)", name,
                     cutlass::cutlassGetStatusString(st), cudaGetErrorString(cudaGetLastError()));
  st = gemm.run(a.stream);
  if (st != cutlass::Status::kSuccess)
    return set_error(LMOE_ERR_CUDA, "%s: CUTLASS run: %s (%s)", name,
                     cutlass::cutlassGetStatusString(st), cudaGetErrorString(cudaGetLastError()));
  LMOE_CU_LAUNCH("grouped gemm");
  return LMOE_OK;
}

}  // namespace gg
}  // namespace lmoe_cuda
