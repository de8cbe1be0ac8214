// tuning.cu - the knobs of the CUDA backend: compiled-in defaults, the environment (read here
// and nowhere else in this library, once), lmoe_cuda_set_tuning, and their one-line form.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mutex>

#include "common.cuh"
#include "tuning.cuh"

namespace lmoe_cuda {
namespace {

// Defaults. Decode knobs from bench/bundle/tune.sh on an H200
// (bench/results/gpu/2026-11-26-bundle-h200-run4): no pre-wait prefetch (it competed with the
// demand loads for L2), ~4 FC2 blocks per SM, FC1/FC2 registers sized for 2 blocks per SM, the
// five chained launches. Decode threshold: measured on an H200 at the Super shape (decode vs
// sorted, ms, once the sorted path's dense projections ran on CUTLASS): T=16 0.93 vs 0.99,
// T=32 2.34 vs 2.11, T=64 4.01 vs 2.38 -> decode up to T = 16. The streamed kernels and the
// 128x192 FC1 tiles are opt-in: not yet measured on a GPU.
constexpr Tuning kDefaults = {
    /*experts=*/LMOE_CUDA_EXPERTS_AUTO,
    /*fc1_tile=*/256,
    /*decode=*/LMOE_CUDA_DECODE_AUTO,
    /*decode_max_tokens=*/16,
    /*decode_fused=*/0,
    /*pdl=*/1,
    /*prefetch_kb=*/0,
    /*fc2_blocks_per_sm=*/4,
    /*min_blocks=*/2,
    /*stream=*/0,
    /*stream_dense=*/0,
};

const char* const kExpertsNames[] = {"auto", "simt", "narrow", "wide"};
const char* const kDecodeNames[] = {"auto", "on", "off"};

int env_int(const char* name, int dflt) {
  const char* v = getenv(name);
  return (v && *v) ? atoi(v) : dflt;
}
// A name from names[0..n) or its index; dflt when unset or unknown.
int env_choice(const char* name, const char* const* names, int n, int dflt) {
  const char* v = getenv(name);
  if (!v || !*v) return dflt;
  for (int i = 0; i < n; ++i)
    if (strcmp(v, names[i]) == 0) return i;
  const int i = atoi(v);
  return (i >= 0 && i < n && v[0] >= '0' && v[0] <= '9') ? i : dflt;
}

// The defaults with the environment's overrides, each mapped into its range the way the knob
// has always read it (LMOE_CUDA_DEC_MINB: 2, else 3; the stream stages: 0, else 4 below 8, else 8).
Tuning from_environment() {
  Tuning t = kDefaults;
  t.experts = env_choice("LMOE_CUDA_EXPERTS", kExpertsNames, 4, t.experts);
  t.fc1_tile = env_int("LMOE_CUDA_FC1_TILE", t.fc1_tile) == 192 ? 192 : 256;
  t.decode = env_choice("LMOE_CUDA_DECODE", kDecodeNames, 3, t.decode);
  t.decode_max_tokens = env_int("LMOE_CUDA_DECODE_MAX_TOKENS", t.decode_max_tokens);
  if (t.decode_max_tokens < 0) t.decode_max_tokens = 0;
  t.decode_fused = env_int("LMOE_CUDA_DECODE_FUSED", t.decode_fused) != 0;
  t.pdl = env_int("LMOE_CUDA_PDL", t.pdl) != 0;
  t.prefetch_kb = env_int("LMOE_CUDA_PREFETCH_KB", t.prefetch_kb);
  if (t.prefetch_kb < 0) t.prefetch_kb = 0;
  if (t.prefetch_kb > 65536) t.prefetch_kb = 65536;
  t.fc2_blocks_per_sm = env_int("LMOE_CUDA_FC2_BLOCKS", t.fc2_blocks_per_sm);
  if (t.fc2_blocks_per_sm < 1) t.fc2_blocks_per_sm = 1;
  if (t.fc2_blocks_per_sm > 1024) t.fc2_blocks_per_sm = 1024;
  t.min_blocks = env_int("LMOE_CUDA_DEC_MINB", t.min_blocks) == 2 ? 2 : 3;
  const auto stages = [](int v) { return v <= 0 ? 0 : v < 8 ? 4 : 8; };
  t.stream = stages(env_int("LMOE_CUDA_DEC_STREAM", t.stream));
  t.stream_dense = stages(env_int("LMOE_CUDA_DEC_STREAM_DENSE", t.stream_dense));
  return t;
}

std::mutex g_mu;
bool g_ready = false;
Tuning g_tuning;

lmoe_status check(const Tuning& t) {
  const auto bad = [](const char* field, int v) {
    return set_error(LMOE_ERR_INVALID_ARGUMENT, "tuning: %s = %d out of range", field, v);
  };
  if (t.experts < LMOE_CUDA_EXPERTS_AUTO || t.experts > LMOE_CUDA_EXPERTS_CUTLASS_WIDE)
    return bad("experts", t.experts);
  if (t.fc1_tile != 256 && t.fc1_tile != 192) return bad("fc1_tile", t.fc1_tile);
  if (t.decode < LMOE_CUDA_DECODE_AUTO || t.decode > LMOE_CUDA_DECODE_OFF)
    return bad("decode", t.decode);
  if (t.decode_max_tokens < 0) return bad("decode_max_tokens", t.decode_max_tokens);
  if (t.decode_fused != 0 && t.decode_fused != 1) return bad("decode_fused", t.decode_fused);
  if (t.pdl != 0 && t.pdl != 1) return bad("pdl", t.pdl);
  if (t.prefetch_kb < 0 || t.prefetch_kb > 65536) return bad("prefetch_kb", t.prefetch_kb);
  if (t.fc2_blocks_per_sm < 1 || t.fc2_blocks_per_sm > 1024)
    return bad("fc2_blocks_per_sm", t.fc2_blocks_per_sm);
  if (t.min_blocks != 2 && t.min_blocks != 3) return bad("min_blocks", t.min_blocks);
  if (t.stream != 0 && t.stream != 4 && t.stream != 8) return bad("stream", t.stream);
  if (t.stream_dense != 0 && t.stream_dense != 4 && t.stream_dense != 8)
    return bad("stream_dense", t.stream_dense);
  return LMOE_OK;
}

}  // namespace

Tuning tuning() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_ready) {
    g_tuning = from_environment();
    g_ready = true;
  }
  return g_tuning;
}

}  // namespace lmoe_cuda

using namespace lmoe_cuda;

LMOE_CUDA_API lmoe_status lmoe_cuda_tuning_defaults(lmoe_cuda_tuning* t) {
  clear_error();
  if (!t) return set_error(LMOE_ERR_INVALID_ARGUMENT, "tuning is NULL");
  *t = kDefaults;
  return LMOE_OK;
}

LMOE_CUDA_API lmoe_status lmoe_cuda_get_tuning(lmoe_cuda_tuning* t) {
  clear_error();
  if (!t) return set_error(LMOE_ERR_INVALID_ARGUMENT, "tuning is NULL");
  *t = tuning();
  return LMOE_OK;
}

LMOE_CUDA_API lmoe_status lmoe_cuda_set_tuning(const lmoe_cuda_tuning* t) {
  clear_error();
  if (!t) return set_error(LMOE_ERR_INVALID_ARGUMENT, "tuning is NULL");
  LMOE_TRY(check(*t));
  std::lock_guard<std::mutex> lock(g_mu);
  g_tuning = *t;
  g_ready = true;
  return LMOE_OK;
}

LMOE_CUDA_API lmoe_status lmoe_cuda_tuning_string(const lmoe_cuda_tuning* t, char* buf,
                                                  int64_t size) {
  clear_error();
  if (!t) return set_error(LMOE_ERR_INVALID_ARGUMENT, "tuning is NULL");
  if (!buf || size <= 0) return set_error(LMOE_ERR_INVALID_ARGUMENT, "tuning string: no buffer");
  LMOE_TRY(check(*t));
  snprintf(buf, size_t(size),
           "experts=%s fc1_tile=%d decode=%s decode_max_tokens=%d decode_fused=%d pdl=%d "
           "prefetch_kb=%d fc2_blocks=%d minb=%d stream=%d stream_dense=%d",
           kExpertsNames[t->experts], t->fc1_tile, kDecodeNames[t->decode], t->decode_max_tokens,
           t->decode_fused, t->pdl, t->prefetch_kb, t->fc2_blocks_per_sm, t->min_blocks, t->stream,
           t->stream_dense);
  return LMOE_OK;
}
