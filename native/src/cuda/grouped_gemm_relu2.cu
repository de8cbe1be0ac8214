// FC1 of the experts: D = relu(A . B^T)^2, fused into the CUTLASS epilogue.
// 128x128 tiles (gg::TileNarrow).
#include "grouped_gemm.cuh"

namespace lmoe_cuda {
namespace {
using Fusion = cutlass::epilogue::fusion::LinCombEltAct<
    gg::ReluSquared, gg::ElementD, gg::ElementAcc, gg::ElementD, gg::ElementAcc>;
using Gemm = gg::GemmFor<Fusion, gg::TileNarrow>::Gemm;
}  // namespace

size_t gg_relu2_narrow_ws(int num_groups, int sm_count) {
  return gg::workspace_bytes<Gemm>(num_groups, sm_count);
}
lmoe_status gg_relu2_narrow(const GroupedGemmArgs& a) {
  return gg::run<Gemm>(a, "grouped_gemm_relu2_narrow");
}
}  // namespace lmoe_cuda
