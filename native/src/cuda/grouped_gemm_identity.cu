// FC2 of the experts (and the SwiGLU up/gate GEMMs, the dense projections): D = A . B^T.
// 128x128 tiles (gg::TileNarrow).
#include "grouped_gemm.cuh"

namespace lmoe_cuda {
namespace {
using Fusion = cutlass::epilogue::fusion::LinearCombination<
    gg::ElementD, gg::ElementAcc, gg::ElementD, gg::ElementAcc>;
using Gemm = gg::GemmFor<Fusion, gg::TileNarrow>::Gemm;
}  // namespace

size_t gg_identity_narrow_ws(int num_groups, int sm_count) {
  return gg::workspace_bytes<Gemm>(num_groups, sm_count);
}
lmoe_status gg_identity_narrow(const GroupedGemmArgs& a) {
  return gg::run<Gemm>(a, "grouped_gemm_identity_narrow");
}
}  // namespace lmoe_cuda
