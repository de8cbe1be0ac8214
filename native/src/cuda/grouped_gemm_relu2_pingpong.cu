// FC1 of the experts: D = relu(A . B^T)^2, fused into the CUTLASS epilogue.
// 64x256 ping-pong tiles, 1x2 cluster (gg::TilePingpong).
#include "grouped_gemm.cuh"

namespace lmoe_cuda {
namespace {
using Fusion = cutlass::epilogue::fusion::LinCombEltAct<
    gg::ReluSquared, gg::ElementD, gg::ElementAcc, gg::ElementD, gg::ElementAcc>;
using Gemm = gg::GemmFor<Fusion, gg::TilePingpong>::Gemm;
}  // namespace

size_t gg_relu2_pingpong_ws(int num_groups, int sm_count) {
  return gg::workspace_bytes<Gemm>(num_groups, sm_count);
}
lmoe_status gg_relu2_pingpong(const GroupedGemmArgs& a) {
  return gg::run<Gemm>(a, "grouped_gemm_relu2_pingpong");
}
}  // namespace lmoe_cuda
