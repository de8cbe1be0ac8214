// FC1 of the experts: D = relu(A . B^T)^2, fused into the CUTLASS epilogue.
#include "grouped_gemm.cuh"

namespace lmoe_cuda {
namespace {
using FusionRelu2 = cutlass::epilogue::fusion::LinCombEltAct<
    gg::ReluSquared, gg::ElementD, gg::ElementAcc, gg::ElementD, gg::ElementAcc>;
using GemmRelu2 = gg::GemmFor<FusionRelu2>::Gemm;
}  // namespace

size_t grouped_gemm_relu2_workspace_bytes(int num_groups, int sm_count) {
  return gg::workspace_bytes<GemmRelu2>(num_groups, sm_count);
}
lmoe_status grouped_gemm_relu2(const GroupedGemmArgs& a) {
  return gg::run<GemmRelu2>(a, "grouped_gemm_relu2");
}
}  // namespace lmoe_cuda
