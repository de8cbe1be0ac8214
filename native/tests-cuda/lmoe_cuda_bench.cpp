// lmoe_cuda_bench - Super-shape forward timings on the GPU, JSON lines on stdout.
// Usage: lmoe_cuda_bench [--tokens 1,2,4,8,16,32,64,256,4096,8192] [--reps 20]
//                        [--backend auto|simt|cutlass128|cutlass256] [--dtype bf16|fp8|nvfp4|w8a8]
//                        [--shape super|nano] [--decode auto|on|off|fused|staged|variants|compare]
//                        [--decode-max 16]
//                        [--stages | --no-stages] [--stage-tokens 1,64,4096,8192] [--trace]
//   --decode compare (default): auto for every T, plus the forced other path for T <= 64 (or
//   <= --decode-max), so the decode/sorted crossover can be read off one run. Each line says
//   which path ran.
//   Stage breakdown of the SORTED path (default run: after the forward timings, for
//   --stage-tokens; --stages: only the breakdown, for --stage-tokens; --no-stages: none): the
//   four entry points lmoe_cuda_router_topk / _dispatch / _experts / _combine timed one at a
//   time on the same inputs (a full chain runs first, so each stage sees real routing), median
//   of --reps calls between CUDA events, one line per (T, stage):
//     {"kind":"stage","T":..,"stage":"router_topk|dispatch|experts|combine", "median_ms", "min_ms",
//      "flops", "bytes", "tflops", "gbps", "share" (of the sum of the four stages)}
//   plus "sum" (the four stages), "forward_sorted" (lmoe_cuda_forward, decode off: the same work
//   in one call) and the diagnostic "experts_1group": the experts stage's CUTLASS grouped GEMMs
//   on the same T*K rows as ONE group (num_experts = 1, expert 0's weights): same FLOPs, no
//   per-expert groups. experts >> experts_1group means the cost is in the grouping (many small
//   groups, per-group TMA descriptor updates, partial M tiles); experts ~ experts_1group means
//   the GEMM kernel itself runs slowly at these shapes. "bytes" counts weights read once (the
//   experts actually used) + activations written and read by the stage's kernels.
// --dtype: the format of every matrix but the router gate (f32): bf16 (default), fp8 (e4m3 with
// per-tensor scales, weight-only), nvfp4 (e2m1 codes, e4m3 block scales, per-tensor scales) or
// w8a8 (fp8 with input scales: the sorted path's FP8 tensor-core GEMMs), all made on the device;
// "bytes_needed" counts the weights in their stored size (block scales included).
// The knobs in effect (lmoe_cuda_tuning: defaults, the environment, then --backend and
// --decode-max) are printed first: {"kind":"tuning","knobs":"experts=auto fc1_tile=256 ..."}.
// --decode sets the decode policy per line: fused / staged force the decode path with that form,
// auto / on / off keep the form in effect (decode_fused).
// Each line: {"kind":"forward"|"stage"|"d2d_copy", ...} with median ms over reps (CUDA events),
// bytes needed (weights actually touched + activations), GB/s and TFLOP/s.
//   "experts_vs_cublaslt" (stage breakdown, T >= 2048): the experts stage and cuBLASLt bf16 GEMMs at
//   its two shapes (FC1: T*K x m x W, FC2: T*K x W x m) and at 8192^3, timed call by call in turn
//   (experts, FC1, FC2, 8192^3, repeated --reps times) so that all of them run at the same clocks;
//   experts TFLOP/s as a share of cuBLASLt's at the same shapes and at 8192^3. cuBLASLt is dlopen'ed
//   (libcublasLt.so.13 on the library path or in $CUDA_HOME/lib64, /usr/local/cuda/lib64): without
//   it the line says why.
//   --trace: after each decode-path forward's timing, one more call (device idle before it) with
//   the block trace on (debug_trace.h): per launch the number of blocks, first start and last end
//   (us from the first block of the call), mean block time, mean wait for its inputs (the PDL wait
//   or the top-K counter, inside the block time), and the working blocks (inputs ready) per 1 us bin
//   ({"kind":"trace", ...}; a table on stderr). Gaps between one launch's end and the next one's
//   start, and bins with few blocks in flight, are where the weight stream stalls.
#include <dlfcn.h>
#include <inttypes.h>

#include <functional>
#include <map>
#include <sstream>
#include <type_traits>

#include "common.h"
#include "debug_trace.h"

#include <cublasLt.h>

using namespace lt;

// Bytes per weight of the non-gate matrices in the --dtype of the run (NVFP4: codes + block scales).
static double g_wbytes = 2.0;
static std::string g_dtype = "bf16";

// The knobs of the run (defaults + environment + --backend, --decode-max), set in main.
static lmoe_cuda_tuning g_knobs;
// g_knobs with this decode policy and (fused >= 0) decode form, for the calls that follow.
static void set_decode(int decode, int fused = -1) {
  lmoe_cuda_tuning t = g_knobs;
  t.decode = decode;
  if (fused >= 0) t.decode_fused = fused;
  CK(lmoe_cuda_set_tuning(&t));
}

static double median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : (v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]));
}

static std::vector<int64_t> parse_list(const char* s) {
  std::vector<int64_t> v;
  std::stringstream ss(s);
  std::string t;
  while (std::getline(ss, t, ',')) v.push_back(atoll(t.c_str()));
  return v;
}

static const char* trace_tag_name(uint32_t t) {
  switch (t) {
    case TRACE_DENSE_A: return "A_dense";
    case TRACE_TOPK: return "B_topk";
    case TRACE_SDOWN: return "B_sdown";
    case TRACE_FC1: return "C_fc1";
    case TRACE_FC2: return "D_fc2";
    case TRACE_DENSE_E: return "E_wup";
    case TRACE_FC1_STREAM: return "C_fc1_stream";
    case TRACE_FC2_STREAM: return "D_fc2_stream";
    case TRACE_FUSED_ROUTER: return "F_router";
    case TRACE_FUSED_WDOWN: return "F_wdown";
    case TRACE_FUSED_TOPK: return "F_topk";
    case TRACE_FUSED_SUP: return "F_sup";
    case TRACE_FUSED_FC1: return "F_fc1";
    case TRACE_FUSED_SDOWN: return "F_sdown";
    case TRACE_FUSED_FC2: return "F_fc2";
    case TRACE_FUSED_WUP: return "F_wup";
    default: return "other";
  }
}

static void print_trace(const std::vector<DebugTraceRecord>& r, int64_t n, const char* dev, int64_t T,
                        const char* mode);
// One traced call of fwd (see --trace): JSON line on stdout, table on stderr.
template <class F>
static void trace_call(void* s, F fwd, const char* dev, int64_t T, const char* mode) {
  const int64_t cap = 1 << 20;
  DBuf buf(cap * int64_t(sizeof(DebugTraceRecord)), s);
  CK(lmoe_cuda_stream_synchronize(s));
  CK(lmoe_cuda_debug_trace(buf.as<DebugTraceRecord>(), cap));
  fwd();
  int64_t n = 0;
  CK(lmoe_cuda_debug_trace_count(&n));
  CK(lmoe_cuda_debug_trace(nullptr, 0));
  print_trace(buf.download<DebugTraceRecord>(size_t(std::min(n, cap))), n, dev, T, mode);
}

// The summary of one traced call's records (n: records written, maybe more than r holds).
static void print_trace(const std::vector<DebugTraceRecord>& r, int64_t n, const char* dev, int64_t T,
                        const char* mode) {
  if (r.empty()) {
    printf("{\"kind\":\"trace\",\"device\":\"%s\",\"T\":%" PRId64 ",\"decode_mode\":\"%s\",\"blocks\":0}\n",
           dev, T, mode);
    return;
  }
  uint64_t t0 = UINT64_MAX, t1 = 0;
  for (const auto& x : r) { t0 = std::min(t0, x.t0_ns); t1 = std::max(t1, x.t1_ns); }
  const int nbins = int((t1 - t0) / 1000) + 1;
  struct Agg {
    int64_t blocks = 0;
    uint64_t first = UINT64_MAX, last = 0;
    double busy = 0, wait = 0;
    std::vector<double> active;
  };
  std::map<uint32_t, Agg> by;
  for (const auto& x : r) {
    Agg& a = by[x.tag];
    if (a.active.empty()) a.active.assign(nbins, 0.0);
    ++a.blocks;
    a.first = std::min(a.first, x.t0_ns);
    a.last = std::max(a.last, x.t1_ns);
    a.busy += double(x.t1_ns - x.t0_ns);
    a.wait += double(x.ready_ns - x.t0_ns);
    // share of each 1 us bin this block was working (inputs ready)
    for (int b = int((x.ready_ns - t0) / 1000); b <= int((x.t1_ns - t0) / 1000) && b < nbins; ++b) {
      const double lo = std::max<double>(double(x.ready_ns - t0), b * 1000.0);
      const double hi = std::min<double>(double(x.t1_ns - t0), (b + 1) * 1000.0);
      if (hi > lo) a.active[b] += (hi - lo) / 1000.0;
    }
  }
  printf("{\"kind\":\"trace\",\"device\":\"%s\",\"T\":%" PRId64 ",\"decode_mode\":\"%s\",\"records\":%" PRId64
         ",\"span_us\":%.2f,\"bin_us\":1,\"kernels\":[",
         dev, T, mode, n, (t1 - t0) / 1e3);
  fprintf(stderr, "trace T=%" PRId64 " (%s): %.2f us from the first block start to the last block end\n", T, mode,
          (t1 - t0) / 1e3);
  fprintf(stderr, "  %-14s %7s %9s %9s %11s %12s %11s\n", "launch", "blocks", "start_us", "end_us", "mean_blk_us",
          "mean_wait_us", "avg_working");
  bool first = true;
  for (const auto& [tag, a] : by) {
    const double span = (a.last - a.first) / 1e3;
    printf("%s{\"launch\":\"%s\",\"blocks\":%" PRId64 ",\"start_us\":%.2f,\"end_us\":%.2f,\"mean_block_us\":%.3f,"
           "\"mean_wait_us\":%.3f,\"working\":[", first ? "" : ",", trace_tag_name(tag), a.blocks, (a.first - t0) / 1e3,
           (a.last - t0) / 1e3, a.busy / a.blocks / 1e3, a.wait / a.blocks / 1e3);
    for (int b = 0; b < nbins; ++b) printf("%s%.1f", b ? "," : "", a.active[b]);
    printf("]}");
    first = false;
    fprintf(stderr, "  %-14s %7" PRId64 " %9.2f %9.2f %11.3f %12.3f %11.1f\n", trace_tag_name(tag), a.blocks,
            (a.first - t0) / 1e3, (a.last - t0) / 1e3, a.busy / a.blocks / 1e3, a.wait / a.blocks / 1e3,
            span > 0 ? (a.busy - a.wait) / 1e3 / span : 0.0);
  }
  printf("]}\n");
  fflush(stdout);
}

// cuBLASLt, dlopen'ed: the bundle does not ship it, the GPU machine's toolkit has it. The GEMM is
// the one of the Java bench's ceiling (CudaBenchCommand.gemmMillis): bf16 in/out, fp32 compute, TN
// (A row-major [m, k], B = a row-major [n, k] weight), heuristic algorithm, 32 MiB workspace.
struct Lt {
  void* so = nullptr;
  std::string why;
  decltype(&cublasLtCreate) create = nullptr;
  decltype(&cublasLtDestroy) destroy = nullptr;
  decltype(&cublasLtMatmulDescCreate) desc_create = nullptr;
  decltype(&cublasLtMatmulDescDestroy) desc_destroy = nullptr;
  decltype(&cublasLtMatmulDescSetAttribute) desc_set = nullptr;
  decltype(&cublasLtMatrixLayoutCreate) layout_create = nullptr;
  decltype(&cublasLtMatrixLayoutDestroy) layout_destroy = nullptr;
  decltype(&cublasLtMatmulPreferenceCreate) pref_create = nullptr;
  decltype(&cublasLtMatmulPreferenceDestroy) pref_destroy = nullptr;
  decltype(&cublasLtMatmulPreferenceSetAttribute) pref_set = nullptr;
  decltype(&cublasLtMatmulAlgoGetHeuristic) heuristic = nullptr;
  decltype(&cublasLtMatmul) matmul = nullptr;
  cublasLtHandle_t handle = nullptr;

  bool load() {
    std::vector<std::string> paths = {"libcublasLt.so.13"};
    if (const char* h = getenv("CUDA_HOME")) paths.push_back(std::string(h) + "/lib64/libcublasLt.so.13");
    paths.push_back("/usr/local/cuda/lib64/libcublasLt.so.13");
    for (const auto& p : paths)
      if ((so = dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL)) != nullptr) break;
    if (!so) { why = std::string("libcublasLt.so.13 not found: ") + dlerror(); return false; }
    bool ok = true;
    auto sym = [&](auto& f, const char* n) {
      f = reinterpret_cast<std::remove_reference_t<decltype(f)>>(dlsym(so, n));
      if (!f) { ok = false; why = std::string("missing symbol ") + n; }
    };
    sym(create, "cublasLtCreate"); sym(destroy, "cublasLtDestroy");
    sym(desc_create, "cublasLtMatmulDescCreate"); sym(desc_destroy, "cublasLtMatmulDescDestroy");
    sym(desc_set, "cublasLtMatmulDescSetAttribute");
    sym(layout_create, "cublasLtMatrixLayoutCreate"); sym(layout_destroy, "cublasLtMatrixLayoutDestroy");
    sym(pref_create, "cublasLtMatmulPreferenceCreate"); sym(pref_destroy, "cublasLtMatmulPreferenceDestroy");
    sym(pref_set, "cublasLtMatmulPreferenceSetAttribute");
    sym(heuristic, "cublasLtMatmulAlgoGetHeuristic"); sym(matmul, "cublasLtMatmul");
    if (ok && create(&handle) != CUBLAS_STATUS_SUCCESS) { ok = false; why = "cublasLtCreate failed"; }
    return ok;
  }

  // One m x n x k GEMM on device buffers a [m, k], b [n, k], d [m, n] (bf16, row-major), ready to run.
  struct Gemm {
    Lt* lt = nullptr;
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t la = nullptr, lb = nullptr, ld = nullptr;
    cublasLtMatmulHeuristicResult_t heur{};
    const void *a = nullptr, *b = nullptr;
    void *d = nullptr, *work = nullptr;
    size_t work_bytes = 0;
    std::string why;
    bool ready = false;
    Gemm() = default;
    Gemm(const Gemm&) = delete;
    Gemm& operator=(const Gemm&) = delete;
    ~Gemm() {
      if (la) lt->layout_destroy(la);
      if (lb) lt->layout_destroy(lb);
      if (ld) lt->layout_destroy(ld);
      if (op) lt->desc_destroy(op);
    }
    void run(void* stream) const {
      const float alpha = 1.f, beta = 0.f;
      if (lt->matmul(lt->handle, op, &alpha, a, la, b, lb, &beta, d, ld, d, ld, &heur.algo, work, work_bytes,
                     static_cast<cudaStream_t>(stream)) != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "cublasLtMatmul failed\n");
        exit(1);
      }
    }
  };
  // Column-major view: A stored k x m (transposed by the op), B k x n, D m x n.
  bool prepare(Gemm& g, int64_t m, int64_t n, int64_t k, const void* a, const void* b, void* d, void* work,
               size_t work_bytes) {
    g.lt = this; g.a = a; g.b = b; g.d = d; g.work = work; g.work_bytes = work_bytes;
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cublasLtMatmulPreference_t pref = nullptr;
    int found = 0;
    const bool ok =
        desc_create(&g.op, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS &&
        desc_set(g.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta) == CUBLAS_STATUS_SUCCESS &&
        desc_set(g.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb) == CUBLAS_STATUS_SUCCESS &&
        layout_create(&g.la, CUDA_R_16BF, uint64_t(k), uint64_t(m), k) == CUBLAS_STATUS_SUCCESS &&
        layout_create(&g.lb, CUDA_R_16BF, uint64_t(k), uint64_t(n), k) == CUBLAS_STATUS_SUCCESS &&
        layout_create(&g.ld, CUDA_R_16BF, uint64_t(m), uint64_t(n), m) == CUBLAS_STATUS_SUCCESS &&
        pref_create(&pref) == CUBLAS_STATUS_SUCCESS &&
        pref_set(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &work_bytes, sizeof work_bytes) ==
            CUBLAS_STATUS_SUCCESS &&
        heuristic(handle, g.op, g.la, g.lb, g.ld, g.ld, pref, 1, &g.heur, &found) == CUBLAS_STATUS_SUCCESS &&
        found > 0;
    if (pref) pref_destroy(pref);
    if (!ok) g.why = "cuBLASLt setup or heuristic failed for " + std::to_string(m) + "x" + std::to_string(n) +
                     "x" + std::to_string(k);
    g.ready = ok;
    return ok;
  }
};

// One call of fn between a pair of events on s: its GPU time in ms.
static float event_ms(void* s, void* e0, void* e1, const std::function<void()>& fn) {
  CK(lmoe_cuda_event_record(e0, s));
  fn();
  CK(lmoe_cuda_event_record(e1, s));
  CK(lmoe_cuda_event_synchronize(e1));
  float v = 0;
  CK(lmoe_cuda_event_elapsed_ms(e0, e1, &v));
  return v;
}

struct Timing {
  double med, min;
};
// `reps` calls of fn, each between its own pair of events on s (after 2 warm-up calls).
template <class F>
static Timing time_calls(void* s, void* e0, void* e1, int reps, F fn) {
  for (int i = 0; i < 2; ++i) fn();
  std::vector<float> t;
  for (int r = 0; r < reps; ++r) t.push_back(event_ms(s, e0, e1, fn));
  return {median(t), double(*std::min_element(t.begin(), t.end()))};
}

// The experts stage against cuBLASLt at its shapes and at 8192^3, call by call in turn (see the
// header comment): {"kind":"experts_vs_cublaslt", ...} or {"kind":"experts_vs_cublaslt_skipped"}.
static void experts_vs_cublaslt(const lmoe_config& c, int64_t T, int64_t nused, int reps, void* s, void* e0,
                                void* e1, const char* dev, const char* shape,
                                const std::function<void()>& experts) {
  // never destroyed: a static destructor would run cublasLtDestroy after the CUDA context is gone
  static Lt& lt = *new Lt;
  static bool tried = false, loaded = false;
  if (!tried) { tried = true; loaded = lt.load(); }
  auto skip = [&](const std::string& why) {
    printf("{\"kind\":\"experts_vs_cublaslt_skipped\",\"device\":\"%s\",\"T\":%" PRId64 ",\"reason\":\"%s\"}\n",
           dev, T, why.c_str());
    fflush(stdout);
  };
  if (!loaded) return skip(lt.why);
  if (c.activation != LMOE_ACT_RELU2) return skip("SwiGLU experts run three GEMMs; compared for relu2 only");
  const int64_t M = T * c.top_k, W = width(c), m = c.expert_intermediate_size, D = 8192;
  const int64_t big = std::max(W, m);
  const size_t work_bytes = size_t(32) << 20;
  // A and D serve the expert shapes (M x big) and the 8192^3 GEMM (D x D): the larger of the two
  const int64_t ad = std::max(M * big, D * D);
  DBuf a(ad * 2, s), bw(std::max(big * big, D * D) * 2, s), dd(ad * 2, s), work(int64_t(work_bytes), s);
  CK(lmoe_cuda_fill_uniform(a.p, LMOE_DTYPE_BF16, ad, 11, -1.f, 1.f, s));
  CK(lmoe_cuda_fill_uniform(bw.p, LMOE_DTYPE_BF16, bw.bytes / 2, 12, -0.05f, 0.05f, s));
  CK(lmoe_cuda_stream_synchronize(s));
  Lt::Gemm fc1, fc2, dense;
  if (!lt.prepare(fc1, M, m, W, a.p, bw.p, dd.p, work.p, work_bytes)) return skip(fc1.why);
  if (!lt.prepare(fc2, M, W, m, a.p, bw.p, dd.p, work.p, work_bytes)) return skip(fc2.why);
  if (!lt.prepare(dense, D, D, D, a.p, bw.p, dd.p, work.p, work_bytes)) return skip(dense.why);
  std::vector<float> te, t1, t2, td;
  for (int r = -2; r < reps; ++r) {  // two untimed rounds first
    const float a_ = event_ms(s, e0, e1, experts), b_ = event_ms(s, e0, e1, [&] { fc1.run(s); }),
                c_ = event_ms(s, e0, e1, [&] { fc2.run(s); }), d_ = event_ms(s, e0, e1, [&] { dense.run(s); });
    if (r < 0) continue;
    te.push_back(a_); t1.push_back(b_); t2.push_back(c_); td.push_back(d_);
  }
  const double fl = 2.0 * M * m * W, fe = 2.0 * fl, fd = 2.0 * D * D * D;
  const double me = median(te), m1 = median(t1), m2 = median(t2), md = median(td);
  const double tf_e = fe / (me * 1e-3) / 1e12, tf_s = fe / ((m1 + m2) * 1e-3) / 1e12, tf_d = fd / (md * 1e-3) / 1e12;
  printf("{\"kind\":\"experts_vs_cublaslt\",\"device\":\"%s\",\"shape\":\"%s\",\"T\":%" PRId64
         ",\"reps\":%d,\"experts_used\":%" PRId64 ",\"experts_ms\":%.4f,\"experts_tflops\":%.2f,"
         "\"cublaslt_fc1_ms\":%.4f,\"cublaslt_fc2_ms\":%.4f,\"cublaslt_shapes_tflops\":%.2f,"
         "\"cublaslt_8192_ms\":%.4f,\"cublaslt_8192_tflops\":%.2f,\"share_of_shapes\":%.4f,"
         "\"share_of_8192\":%.4f}\n",
         dev, shape, T, reps, nused, me, tf_e, m1, m2, tf_s, md, tf_d, tf_e / tf_s, tf_e / tf_d);
  fflush(stdout);
}

// Stage breakdown of the sorted path at T tokens (see the header comment).
static void run_stages(const lmoe_config& c, const lmoe_cuda_weights& w, int64_t T, int reps, void* s,
                       void* e0, void* e1, const char* dev, const char* shape) {
  const int64_t d = c.hidden_size, l = c.latent_size, N = c.num_experts, K = c.top_k;
  const int64_t m = c.expert_intermediate_size, ms = c.shared_intermediate_size, W = width(c);
  const int64_t TK = T * K;
  const bool swiglu = c.activation == LMOE_ACT_SWIGLU;
  DBuf x(T * d * 2, s), out(T * d * 2, s), ids(TK * 4, s), wt(TK * 4, s), offs((N + 1) * 4, s),
      rows(TK * 4, s), lat(TK * W * 2, s), yo(TK * W * 2, s), yo1(TK * W * 2, s), offs1(2 * 4, s);
  CK(lmoe_cuda_fill_uniform(x.p, LMOE_DTYPE_BF16, T * d, 100 + T, -1.f, 1.f, s));
  lmoe_config c1 = c;  // the experts' GEMMs as one group: T*K rows, expert 0's weights
  c1.num_experts = 1;
  c1.top_k = 1;
  const int64_t wsr = lmoe_cuda_router_workspace_bytes(&c, T), wsd = lmoe_cuda_dispatch_workspace_bytes(&c, T),
                wse = lmoe_cuda_experts_workspace_bytes(&c, T), wsc = lmoe_cuda_combine_workspace_bytes(&c, T),
                wse1 = lmoe_cuda_experts_workspace_bytes(&c1, TK), wsf = lmoe_cuda_forward_workspace_bytes(&c, T);
  if (wsr < 0 || wsd < 0 || wse < 0 || wsc < 0 || wse1 < 0 || wsf < 0) {
    fprintf(stderr, "stage workspace query failed: %s\n", lmoe_cuda_last_error());
    exit(1);
  }
  const int64_t wsb = std::max({wsr, wsd, wse, wsc, wse1, wsf});
  DBuf ws(wsb, s);
  std::vector<int32_t> o1 = {0, int32_t(TK)};
  offs1.upload(o1);
  auto router = [&] {
    CK(lmoe_cuda_router_topk(&c, &w, x.p, T, ids.as<int32_t>(), wt.as<float>(), ws.p, wsb, s));
  };
  auto dispatch = [&] {
    CK(lmoe_cuda_dispatch(&c, &w, x.p, T, ids.as<int32_t>(), offs.as<int32_t>(), rows.as<int32_t>(), lat.p,
                          ws.p, wsb, s));
  };
  auto experts = [&] {
    CK(lmoe_cuda_experts(&c, &w, T, offs.as<int32_t>(), lat.p, yo.p, ws.p, wsb, s));
  };
  auto combine = [&] {
    CK(lmoe_cuda_combine(&c, &w, x.p, T, wt.as<float>(), rows.as<int32_t>(), yo.p, ws.p, wsb, out.p, s));
  };
  auto experts1 = [&] {
    CK(lmoe_cuda_experts(&c1, &w, TK, offs1.as<int32_t>(), lat.p, yo1.p, ws.p, wsb, s));
  };
  auto forward = [&] {
    CK(lmoe_cuda_forward(&c, &w, x.p, T, ids.as<int32_t>(), wt.as<float>(), ws.p, wsb, out.p, s));
  };
  // one full chain first: real routing, offsets and rows for the stages that read them
  router();
  dispatch();
  experts();
  combine();
  std::vector<int32_t> hid = ids.download<int32_t>(size_t(TK));
  std::vector<char> used(size_t(N), 0);
  for (int32_t e : hid) if (e >= 0 && e < N) used[size_t(e)] = 1;
  int64_t nused = 0;
  for (char u : used) nused += u;

  const double gate_b = w.gate.format == LMOE_WFMT_F32 ? 4.0 : 2.0, fc1n = swiglu ? 2.0 : 1.0, wb = g_wbytes;
  struct St { const char* name; Timing t; double flops, bytes; };
  std::vector<St> st;
  st.push_back({"router_topk", time_calls(s, e0, e1, reps, router), 2.0 * T * N * d,
                T * d * 2.0 + N * d * gate_b + 2.0 * T * N * 4 + TK * 8.0});
  st.push_back({"dispatch", time_calls(s, e0, e1, reps, dispatch), l > 0 ? 2.0 * T * l * d : 0.0,
                T * d * 2.0 + (l > 0 ? l * d * wb + 2.0 * T * l * 2 : 0.0) + TK * W * 2.0 + TK * 8.0});
  st.push_back({"experts", time_calls(s, e0, e1, reps, experts), 2.0 * TK * (fc1n + 1.0) * m * W,
                nused * (fc1n + 1.0) * m * W * wb + TK * W * 2.0 * 2 + TK * m * 2.0 * 2 * fc1n});
  st.push_back({"combine", time_calls(s, e0, e1, reps, combine),
                2.0 * TK * W + 2.0 * T * (l > 0 ? double(W) * d : 0.0) + 2.0 * T * (fc1n + 1.0) * ms * d,
                TK * W * 2.0 + TK * 8.0 + (l > 0 ? d * l * wb + 2.0 * T * W * 2 : 0.0) +
                    (ms > 0 ? (fc1n + 1.0) * ms * d * wb + T * d * 2.0 + 2.0 * T * ms * 2 * fc1n + 2.0 * T * d * 2 : 0.0) +
                    T * d * 2.0});
  double sum_ms = 0, sum_min = 0, sum_fl = 0, sum_by = 0;
  for (const St& x_ : st) {
    sum_ms += x_.t.med; sum_min += x_.t.min; sum_fl += x_.flops; sum_by += x_.bytes;
  }
  set_decode(LMOE_CUDA_DECODE_OFF);
  const Timing tf = time_calls(s, e0, e1, reps, forward);
  CK(lmoe_cuda_set_tuning(&g_knobs));
  st.push_back({"sum", {sum_ms, sum_min}, sum_fl, sum_by});
  st.push_back({"forward_sorted", tf, sum_fl, sum_by});
  st.push_back({"experts_1group", time_calls(s, e0, e1, reps, experts1), st[2].flops,
                (fc1n + 1.0) * m * W * wb + TK * W * 2.0 * 2 + TK * m * 2.0 * 2 * fc1n});
  if (T >= 2048) experts_vs_cublaslt(c, T, nused, reps, s, e0, e1, dev, shape, experts);
  for (const St& x_ : st) {
    printf("{\"kind\":\"stage\",\"device\":\"%s\",\"shape\":\"%s\",\"dtype\":\"%s\",\"path\":\"sorted\",\"T\":%" PRId64
           ",\"stage\":\"%s\",\"reps\":%d,\"median_ms\":%.4f,\"min_ms\":%.4f,\"flops\":%.0f,\"bytes\":%.0f,"
           "\"tflops\":%.2f,\"gbps\":%.1f,\"share\":%.3f,\"experts_used\":%" PRId64 "}\n",
           dev, shape, g_dtype.c_str(), T, x_.name, reps, x_.t.med, x_.t.min, x_.flops, x_.bytes,
           x_.flops / (x_.t.med * 1e-3) / 1e12, x_.bytes / (x_.t.med * 1e-3) / 1e9,
           sum_ms > 0 ? x_.t.med / sum_ms : 0.0, nused);
  }
  fflush(stdout);
}

int main(int argc, char** argv) {
  std::vector<int64_t> tokens = {1, 2, 4, 8, 16, 32, 64, 256, 4096, 8192};
  std::vector<int64_t> stage_tokens = {1, 64, 4096, 8192};
  std::string decode = "compare";
  int decode_max = 16;
  int stages = 1;  // 0 none, 1 after the forward timings, 2 only the stages
  bool trace = false;
  int reps = 20;
  int backend = LMOE_CUDA_EXPERTS_AUTO;
  std::string shape = "super";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--tokens" && i + 1 < argc) {
      tokens = parse_list(argv[++i]);
    } else if (a == "--stage-tokens" && i + 1 < argc) {
      stage_tokens = parse_list(argv[++i]);
    } else if (a == "--stages") {
      stages = 2;
    } else if (a == "--no-stages") {
      stages = 0;
    } else if (a == "--trace") {
      trace = true;
    } else if (a == "--reps" && i + 1 < argc) {
      reps = atoi(argv[++i]);
    } else if (a == "--backend" && i + 1 < argc) {
      backend = backend_of(argv[++i]);
    } else if (a == "--shape" && i + 1 < argc) {
      shape = argv[++i];
    } else if (a == "--decode" && i + 1 < argc) {
      decode = argv[++i];
    } else if (a == "--decode-max" && i + 1 < argc) {
      decode_max = atoi(argv[++i]);
    } else if (a == "--dtype" && i + 1 < argc) {
      g_dtype = argv[++i];
      if (g_dtype != "bf16" && g_dtype != "fp8" && g_dtype != "nvfp4" && g_dtype != "w8a8") {
        fprintf(stderr, "--dtype: bf16, fp8, nvfp4 or w8a8, got %s\n", g_dtype.c_str());
        return 2;
      }
    }
  }
  g_wbytes = g_dtype == "bf16" ? 2.0 : g_dtype == "nvfp4" ? 0.5 + 1.0 / 16 : 1.0;
  std::string why = gpu_unavailable_reason();
  if (!why.empty()) {
    printf("{\"kind\":\"skipped\",\"reason\":\"%s\"}\n", why.c_str());
    return 0;
  }
  lmoe_config c = super_config();
  if (shape == "nano") {  // Nemotron-3-Nano-like standard MoE (assumed shape)
    c.hidden_size = 2688; c.latent_size = 0; c.num_experts = 128; c.top_k = 6;
    c.expert_intermediate_size = 1856; c.shared_intermediate_size = 3712; c.routed_scaling_factor = 2.5f;
  }
  CK(lmoe_cuda_get_tuning(&g_knobs));
  g_knobs.experts = backend;
  g_knobs.decode_max_tokens = decode_max;
  CK(lmoe_cuda_set_tuning(&g_knobs));
  char name[256] = "";
  int32_t sms = 0;
  int64_t mem = 0;
  CK(lmoe_cuda_device_info(0, nullptr, nullptr, &sms, &mem, name, sizeof name));
  void* s = nullptr;
  CK(lmoe_cuda_stream_create(&s));
  void *e0, *e1;
  CK(lmoe_cuda_event_create(&e0));
  CK(lmoe_cuda_event_create(&e1));

  const int64_t d = c.hidden_size, l = c.latent_size, N = c.num_experts, K = c.top_k;
  const int64_t m = c.expert_intermediate_size, ms = c.shared_intermediate_size, W = width(c);
  DBuf gate(N * d * 4, s), bias(N * 4, s);
  CK(lmoe_cuda_fill_uniform(gate.p, LMOE_DTYPE_F32, N * d, 1, -0.02f, 0.02f, s));
  CK(lmoe_cuda_fill_uniform(bias.p, LMOE_DTYPE_F32, N, 2, -0.05f, 0.05f, s));
  std::vector<DBuf> wbufs;
  wbufs.reserve(32);
  auto make = [&](int64_t groups, int64_t rows, int64_t cols, uint64_t seed, float amp) {
    return device_matrix(g_dtype, groups, rows, cols, seed, amp, wbufs, s);
  };
  lmoe_cuda_weights w{};
  w.gate = dmat(gate.p, LMOE_WFMT_F32);
  w.gate_bias = bias.as<float>();
  if (l > 0) {
    w.latent_down = make(1, l, d, 3, 0.016f);
    w.latent_up = make(1, d, l, 4, 0.03f);
  }
  w.expert_up = make(N, m, W, 5, 0.06f);
  w.expert_down = make(N, W, m, 6, 0.02f);
  if (ms > 0) {
    w.shared_up = make(1, ms, d, 7, 0.03f);
    w.shared_down = make(1, d, ms, 8, 0.014f);
  }
  CK(lmoe_cuda_validate(&c, &w));

  // device-to-device copy bandwidth probe (same run)
  {
    const int64_t bytes = int64_t(1) << 30;
    DBuf a(bytes, s), b(bytes, s);
    CK(lmoe_cuda_memset_async(a.p, 1, bytes, s));
    std::vector<float> t;
    for (int r = 0; r < 10; ++r) {
      CK(lmoe_cuda_event_record(e0, s));
      CK(lmoe_cuda_memcpy_d2d_async(b.p, a.p, bytes, s));
      CK(lmoe_cuda_event_record(e1, s));
      CK(lmoe_cuda_event_synchronize(e1));
      float ms_ = 0;
      CK(lmoe_cuda_event_elapsed_ms(e0, e1, &ms_));
      t.push_back(ms_);
    }
    double med = median(t);
    printf("{\"kind\":\"d2d_copy\",\"device\":\"%s\",\"bytes\":%" PRId64 ",\"median_ms\":%.4f,\"gbps_rw\":%.1f}\n",
           name, bytes, med, 2.0 * bytes / (med * 1e-3) / 1e9);
  }

  {
    char tune[512] = "";
    CK(lmoe_cuda_tuning_string(&g_knobs, tune, sizeof tune));
    printf("{\"kind\":\"tuning\",\"device\":\"%s\",\"knobs\":\"%s\"}\n", name, tune);
  }
  for (int64_t T : stages == 2 ? std::vector<int64_t>{} : tokens) {
    DBuf x(T * d * 2, s), out(T * d * 2, s), ids(T * K * 4, s), wt(T * K * 4, s);
    CK(lmoe_cuda_fill_uniform(x.p, LMOE_DTYPE_BF16, T * d, 100 + T, -1.f, 1.f, s));
    int64_t fws = lmoe_cuda_forward_workspace_bytes(&c, T);
    if (fws < 0) { fprintf(stderr, "ws query failed: %s\n", lmoe_cuda_last_error()); return 1; }
    DBuf ws(fws, s);
    struct Mode { int decode, fused; const char* name; };  // fused -1: the form in effect
    const Mode m_auto{LMOE_CUDA_DECODE_AUTO, -1, "auto"}, m_on{LMOE_CUDA_DECODE_ON, -1, "on"},
        m_off{LMOE_CUDA_DECODE_OFF, -1, "off"}, m_fused{LMOE_CUDA_DECODE_ON, 1, "fused"},
        m_staged{LMOE_CUDA_DECODE_ON, 0, "staged"};
    std::vector<Mode> modes;
    if (decode == "on") modes = {m_on};
    else if (decode == "off") modes = {m_off};
    else if (decode == "auto") modes = {m_auto};
    else if (decode == "fused") modes = {m_fused};
    else if (decode == "staged") modes = {m_staged};
    else if (decode == "variants") modes = {m_fused, m_staged};
    else {
      modes = {m_auto};
      if (T <= std::max(64, decode_max)) modes.push_back(T <= decode_max ? m_off : m_on);
    }
    for (const Mode& mode : modes) {
      set_decode(mode.decode, mode.fused);
      const int path = lmoe_cuda_forward_path(&c, &w, x.p, T);
      auto fwd = [&] {
        CK(lmoe_cuda_forward(&c, &w, x.p, T, ids.as<int32_t>(), wt.as<float>(), ws.p, fws, out.p, s));
      };
      for (int i = 0; i < 3; ++i) fwd();
      std::vector<float> t;
      for (int r = 0; r < reps; ++r) t.push_back(event_ms(s, e0, e1, fwd));
      double med = median(t);
      // experts actually used
      std::vector<int32_t> hid = ids.download<int32_t>(T * K);
      std::vector<char> used(N, 0);
      for (int32_t e : hid) if (e >= 0 && e < N) used[e] = 1;
      int64_t nused = 0;
      for (char u : used) nused += u;
      const double wbytes = double(N * d * 4) + (double(2 * l * d) + double(nused) * (2.0 * m * W) +
                                                 double(2 * ms * d)) * g_wbytes;
      const double abytes = double(T * d * 2) * 2 + double(T * K * W * 2) * 4 + double(T * K * m * 2) * 2;
      const double flops = 2.0 * T * (double(N * d) + 2.0 * l * d + double(K) * 2.0 * m * W + 2.0 * ms * d);
      const char* mname = mode.name;
      printf("{\"kind\":\"forward\",\"device\":\"%s\",\"shape\":\"%s\",\"dtype\":\"%s\",\"backend\":\"%s\",\"decode_mode\":\"%s\","
             "\"path\":\"%s\",\"T\":%" PRId64
             ",\"reps\":%d,\"median_ms\":%.4f,\"min_ms\":%.4f,\"experts_used\":%" PRId64
             ",\"bytes_needed\":%.0f,\"gbps\":%.1f,\"tflops\":%.2f,\"workspace_bytes\":%" PRId64 "}\n",
             name, shape.c_str(), g_dtype.c_str(), backend_name(backend), mname,
             path == LMOE_CUDA_PATH_DECODE ? "decode" : "sorted", T, reps, med,
             double(*std::min_element(t.begin(), t.end())), nused, wbytes + abytes,
             (wbytes + abytes) / (med * 1e-3) / 1e9, flops / (med * 1e-3) / 1e12, fws);
      fflush(stdout);
      if (trace && path == LMOE_CUDA_PATH_DECODE) trace_call(s, fwd, name, T, mname);
    }
    CK(lmoe_cuda_set_tuning(&g_knobs));
  }
  if (stages > 0)
    for (int64_t T : stage_tokens)
      if (T >= 1) run_stages(c, w, T, reps, s, e0, e1, name, shape.c_str());
  CK(lmoe_cuda_stream_synchronize(s));
  return 0;
}
