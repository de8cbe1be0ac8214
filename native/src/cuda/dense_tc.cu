// dense_tc.cu - the dense projections as one-group CUTLASS GEMMs on the tensor cores (layer.cuh),
// the tile choice per token bucket shared with the experts, and dense_proj (any weight format).
#include <algorithm>
#include <climits>
#include <mutex>

#include "layer.cuh"
#include "simt.cuh"

namespace lmoe_cuda {

bool device_is_sm90() {
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) { (void)cudaGetLastError(); return false; }
  static std::mutex mu;
  static int8_t ok_cache[64];  // 0 unknown, 1 yes, -1 no
  if (dev < 0 || dev >= 64) return false;
  std::lock_guard<std::mutex> lock(mu);
  if (ok_cache[dev] == 0) {
    int major = 0, minor = 0;
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
    (void)cudaGetLastError();
    ok_cache[dev] = (major == 9 && minor == 0) ? 1 : -1;
  }
  return ok_cache[dev] == 1;
}

int64_t dense_tc_ws() {
  const int sm = sm_count_or_default();
  const size_t a = grouped_gemm_relu2_workspace_bytes(1, sm), b = grouped_gemm_identity_workspace_bytes(1, sm);
  return aup(2 * 4) + aup(int64_t(a > b ? a : b));
}
bool dense_tc_ok(const Tuning& tn, int64_t T, std::initializer_list<const void*> ptrs,
                 std::initializer_list<int64_t> dims) {
  if (T < kDenseTcMinT || T > INT_MAX || tn.experts == LMOE_CUDA_EXPERTS_SIMT) return false;
  for (const void* p : ptrs)
    if (!p || !aligned16(p)) return false;
  for (int64_t d : dims)
    if (d % 8) return false;
  return device_is_sm90();
}

GgTile fc1_wide_tile(const Tuning& tn) {
  return tn.fc1_tile == 192 ? GG_TILE_128x192 : GG_TILE_128x256;
}
bool wide_tiles(const Tuning& tn, int64_t rows_per_group, int64_t min_rows) {
  const int b = tn.experts;
  if (b == LMOE_CUDA_EXPERTS_CUTLASS_WIDE) return true;
  if (b == LMOE_CUDA_EXPERTS_CUTLASS_NARROW) return false;
  return rows_per_group >= min_rows;
}

__global__ void set_offsets2_kernel(int32_t* o, int rows) {
  o[0] = 0;
  o[1] = rows;
}

lmoe_status dense_tc_setup(const Tuning& tn, DenseTc& d, void* region, int64_t T, cudaStream_t s) {
  LMOE_TRY(current_sm_count(&d.sm, &d.dev));
  d.offs = static_cast<int32_t*>(region);
  d.gws = static_cast<char*>(region) + aup(2 * 4);
  d.gws_bytes = size_t(dense_tc_ws() - aup(2 * 4));
  d.tile = wide_tiles(tn, T, kWideMinTokensDense) ? GG_TILE_128x256 : GG_TILE_128x128;
  set_offsets2_kernel<<<1, 1, 0, s>>>(d.offs, int(T));
  LMOE_CU_LAUNCH("set_offsets2");
  return LMOE_OK;
}
lmoe_status dense_tc_gemm(const DenseTc& d, bool relu2_act, const bf16* A, const bf16* B,
                          bf16* D, int n, int k, cudaStream_t s) {
  GroupedGemmArgs a{};
  a.num_groups = 1;
  a.offsets = d.offs;
  a.A = A;
  a.B = B;
  a.D = D;
  a.n = n;
  a.k = k;
  a.sm_count = d.sm;
  a.device = d.dev;
  a.workspace = d.gws;
  a.workspace_bytes = d.gws_bytes;
  a.stream = s;
  a.tile = d.tile;
  return relu2_act ? grouped_gemm_relu2(a) : grouped_gemm_identity(a);
}

// ---------------------------------------------------------------- dense projections
int64_t dense_proj_ws(const lmoe_config* c, int64_t T) {
  const int64_t kmax = std::max<int64_t>({c->hidden_size, expert_width(c), c->shared_intermediate_size});
  const int64_t q = mat_gemm_ws(1, T, kmax);
  const int64_t t = T >= kDenseTcMinT ? dense_tc_ws() - aup(2 * 4) : 0;
  return aup(2 * 4) + std::max(q, t);
}

__global__ void offsets2_kernel(int32_t* o, int rows) {
  o[0] = 0;
  o[1] = rows;
}

lmoe_status dense_proj_setup(const Tuning& tn, DenseProj& p, void* region, const lmoe_config* c,
                             int64_t T, bool tc_ok, cudaStream_t s) {
  p.T = T;
  p.tc_ok = tc_ok && T >= kDenseTcMinT;
  p.offs = static_cast<int32_t*>(region);
  if (p.tc_ok) {
    LMOE_TRY(dense_tc_setup(tn, p.tc, region, T, s));  // the same {0, T} at the region's start
  } else {
    offsets2_kernel<<<1, 1, 0, s>>>(p.offs, int(T));
    LMOE_CU_LAUNCH("offsets2");
  }
  p.qws = static_cast<char*>(region) + aup(2 * 4);
  p.qws_bytes = dense_proj_ws(c, T) - aup(2 * 4);
  return LMOE_OK;
}

lmoe_status dense_proj(const Tuning& tn, const DenseProj& p, const lmoe_cuda_matrix& B, const bf16* A,
                       int k, bf16* D, int n, int act, cudaStream_t s) {
  if (is_quantized(B)) {
    MatGemm g{};
    g.B = &B;
    g.G = 1;
    g.offsets = p.offs;
    g.rows = p.T;
    g.A = A;
    g.k = k;
    g.D = D;
    g.n = n;
    g.act = act;
    return mat_gemm(tn, g, p.qws, p.qws_bytes, s);
  }
  if (p.tc_ok) {
    LMOE_TRY(dense_tc_gemm(p.tc, act == ACT_RELU2, A, bf16_data(B), D, n, k, s));
    return act == ACT_SILU ? silu_inplace(D, p.T * n, s) : LMOE_OK;
  }
  const int T = int(p.T);
  switch (act) {
    case ACT_RELU2: return gemm_nt(A, k, bf16_data(B), k, T, n, k, EpiStore<bf16, ACT_RELU2>{D, n}, s);
    case ACT_SILU: return gemm_nt(A, k, bf16_data(B), k, T, n, k, EpiStore<bf16, ACT_SILU>{D, n}, s);
    default: return gemm_nt(A, k, bf16_data(B), k, T, n, k, EpiStore<bf16, ACT_NONE>{D, n}, s);
  }
}

}  // namespace lmoe_cuda
