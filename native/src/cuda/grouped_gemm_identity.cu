// FC2 of the experts (and the SwiGLU up/gate GEMMs): D = A . B^T.
#include "grouped_gemm.cuh"

namespace lmoe_cuda {
namespace {
using FusionIdentity = cutlass::epilogue::fusion::LinearCombination<
    gg::ElementD, gg::ElementAcc, gg::ElementD, gg::ElementAcc>;
using GemmIdentity = gg::GemmFor<FusionIdentity>::Gemm;
}  // namespace

size_t grouped_gemm_identity_workspace_bytes(int num_groups, int sm_count) {
  return gg::workspace_bytes<GemmIdentity>(num_groups, sm_count);
}
lmoe_status grouped_gemm_identity(const GroupedGemmArgs& a) {
  return gg::run<GemmIdentity>(a, "grouped_gemm_identity");
}
}  // namespace lmoe_cuda
