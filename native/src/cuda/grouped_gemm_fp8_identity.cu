// W8A8 GEMMs without a fused activation (FC2, the SiLU / SwiGLU FC1s, the dense projections):
// D = alpha_e * A . B^T, A and B e4m3. 128x128x128 tiles (gg::TileFp8).
#include "grouped_gemm.cuh"

namespace lmoe_cuda {
namespace {
using Fusion = cutlass::epilogue::fusion::LinearCombination<
    gg::ElementD, gg::ElementAcc, gg::ElementD, gg::ElementAcc>;
using Gemm = gg::GemmFor<Fusion, gg::TileFp8, gg::ElementFp8, gg::ElementFp8>::Gemm;
}  // namespace

size_t gg_fp8_identity_ws(int num_groups, int sm_count) {
  return gg::workspace_bytes<Gemm>(num_groups, sm_count);
}
lmoe_status gg_fp8_identity(const GroupedGemmArgs& a) {
  return gg::run<Gemm>(a, "grouped_gemm_fp8_identity");
}
}  // namespace lmoe_cuda
