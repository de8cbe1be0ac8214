// W8A8 FC1 of the experts (FP8 matrices with input scales): D = relu(alpha_e * A . B^T)^2, A and B
// e4m3, alpha_e = input scale x weight scale of expert e. 128x128x128 tiles (gg::TileFp8).
#include "grouped_gemm.cuh"

namespace lmoe_cuda {
namespace {
using Fusion = cutlass::epilogue::fusion::LinCombEltAct<
    gg::ReluSquared, gg::ElementD, gg::ElementAcc, gg::ElementD, gg::ElementAcc>;
using Gemm = gg::GemmFor<Fusion, gg::TileFp8, gg::ElementFp8, gg::ElementFp8>::Gemm;
}  // namespace

size_t gg_fp8_relu2_ws(int num_groups, int sm_count) {
  return gg::workspace_bytes<Gemm>(num_groups, sm_count);
}
lmoe_status gg_fp8_relu2(const GroupedGemmArgs& a) {
  return gg::run<Gemm>(a, "grouped_gemm_fp8_relu2");
}
}  // namespace lmoe_cuda
