// FC1 of the experts: D = relu(A . B^T)^2, fused into the CUTLASS epilogue.
// 128x192 tiles, 1x2 cluster (gg::TileN192): the Super FC1 width 2688 is 14 x 192, where 128x256
// tiles need 11 columns, padded to 12 for the cluster pair (3072 columns computed, 12.5% waste).
#include "grouped_gemm.cuh"

namespace lmoe_cuda {
namespace {
using Fusion = cutlass::epilogue::fusion::LinCombEltAct<
    gg::ReluSquared, gg::ElementD, gg::ElementAcc, gg::ElementD, gg::ElementAcc>;
using Gemm = gg::GemmFor<Fusion, gg::TileN192>::Gemm;
}  // namespace

size_t gg_relu2_n192_ws(int num_groups, int sm_count) {
  return gg::workspace_bytes<Gemm>(num_groups, sm_count);
}
lmoe_status gg_relu2_n192(const GroupedGemmArgs& a) {
  return gg::run<Gemm>(a, "grouped_gemm_relu2_n192");
}
}  // namespace lmoe_cuda
