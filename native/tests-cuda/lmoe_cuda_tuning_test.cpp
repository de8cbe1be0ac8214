// lmoe_cuda_tuning_test - the CUDA backend's knob struct (lmoe_cuda_tuning), no GPU needed.
// Usage: lmoe_cuda_tuning_test [env]
//   (none): the compiled-in defaults, validation (a bad field is named and changes nothing),
//           set/get of every field, the one-line form
//   env:    the environment's overrides, as ctest sets them (CMakeLists.txt)
// Closing line: "N passed, N failed".
#include "common.h"

using namespace lt;

static constexpr int kDecodeMax = 16;  // the default decode_max_tokens

// The knob struct without a GPU: the defaults, validation (a bad field changes nothing), set/get,
// the one-line form; ends with the knobs it found (defaults + environment) in effect again.
static void test_tuning() {
  lmoe_cuda_tuning d{}, t{}, u{};
  lmoe_cuda_tuning g_base{};
  CK(lmoe_cuda_get_tuning(&g_base));
  CK(lmoe_cuda_tuning_defaults(&d));
  check(d.experts == LMOE_CUDA_EXPERTS_AUTO && d.fc1_tile == 256 && d.decode == LMOE_CUDA_DECODE_AUTO &&
            d.decode_max_tokens == kDecodeMax && d.decode_fused == 0 && d.pdl == 1 && d.prefetch_kb == 0 &&
            d.fc2_blocks_per_sm == 4 && d.min_blocks == 2 && d.stream == 0 && d.stream_dense == 0,
        "tuning: compiled-in defaults");
  check(lmoe_cuda_tuning_defaults(nullptr) == LMOE_ERR_INVALID_ARGUMENT &&
            lmoe_cuda_get_tuning(nullptr) == LMOE_ERR_INVALID_ARGUMENT &&
            lmoe_cuda_set_tuning(nullptr) == LMOE_ERR_INVALID_ARGUMENT,
        "tuning: NULL struct");
  // one bad field at a time: rejected, named, nothing changed
  struct Bad { const char* field; void (*apply)(lmoe_cuda_tuning&); };
  const Bad bad[] = {
      {"experts", [](lmoe_cuda_tuning& x) { x.experts = LMOE_CUDA_EXPERTS_CUTLASS_WIDE + 1; }},
      {"experts", [](lmoe_cuda_tuning& x) { x.experts = -1; }},
      {"fc1_tile", [](lmoe_cuda_tuning& x) { x.fc1_tile = 128; }},
      {"decode", [](lmoe_cuda_tuning& x) { x.decode = LMOE_CUDA_DECODE_OFF + 1; }},
      {"decode", [](lmoe_cuda_tuning& x) { x.decode = -1; }},
      {"decode_max_tokens", [](lmoe_cuda_tuning& x) { x.decode_max_tokens = -1; }},
      {"decode_fused", [](lmoe_cuda_tuning& x) { x.decode_fused = 2; }},
      {"pdl", [](lmoe_cuda_tuning& x) { x.pdl = -1; }},
      {"prefetch_kb", [](lmoe_cuda_tuning& x) { x.prefetch_kb = -1; }},
      {"fc2_blocks_per_sm", [](lmoe_cuda_tuning& x) { x.fc2_blocks_per_sm = 0; }},
      {"min_blocks", [](lmoe_cuda_tuning& x) { x.min_blocks = 4; }},
      {"stream", [](lmoe_cuda_tuning& x) { x.stream = 5; }},
      {"stream_dense", [](lmoe_cuda_tuning& x) { x.stream_dense = 2; }},
  };
  for (const Bad& b : bad) {
    t = d;
    b.apply(t);
    const lmoe_status st = lmoe_cuda_set_tuning(&t);
    const bool named = strstr(lmoe_cuda_last_error(), b.field) != nullptr;
    CK(lmoe_cuda_get_tuning(&u));
    char what[96];
    snprintf(what, sizeof what, "tuning: bad %s rejected, named, nothing changed", b.field);
    check(st == LMOE_ERR_INVALID_ARGUMENT && named && memcmp(&u, &g_base, sizeof u) == 0, what);
  }
  // every field round-trips
  t = d;
  t.experts = LMOE_CUDA_EXPERTS_SIMT; t.fc1_tile = 192; t.decode = LMOE_CUDA_DECODE_ON; t.decode_max_tokens = 3;
  t.decode_fused = 1; t.pdl = 0; t.prefetch_kb = 32; t.fc2_blocks_per_sm = 8; t.min_blocks = 3; t.stream = 8;
  t.stream_dense = 4;
  CK(lmoe_cuda_set_tuning(&t));
  CK(lmoe_cuda_get_tuning(&u));
  check(memcmp(&u, &t, sizeof u) == 0, "tuning: set then get");
  char line[512];
  CK(lmoe_cuda_tuning_string(&t, line, sizeof line));
  check(strcmp(line, "experts=simt fc1_tile=192 decode=on decode_max_tokens=3 decode_fused=1 pdl=0 "
                     "prefetch_kb=32 fc2_blocks=8 minb=3 stream=8 stream_dense=4") == 0,
        "tuning: string", line);
  char small[8];
  check(lmoe_cuda_tuning_string(&t, small, sizeof small) == LMOE_OK && strlen(small) == sizeof small - 1,
        "tuning: string truncates to the buffer");
  check(lmoe_cuda_tuning_string(&t, nullptr, 8) == LMOE_ERR_INVALID_ARGUMENT &&
            lmoe_cuda_tuning_string(&t, small, 0) == LMOE_ERR_INVALID_ARGUMENT,
        "tuning: string without a buffer");
  CK(lmoe_cuda_set_tuning(&g_base));
  CK(lmoe_cuda_get_tuning(&u));
  check(memcmp(&u, &g_base, sizeof u) == 0, "tuning: restored");
}

// ctest runs `lmoe_cuda_tuning_test env` with LMOE_CUDA_EXPERTS=wide LMOE_CUDA_FC1_TILE=192 LMOE_CUDA_DECODE=off
// LMOE_CUDA_DECODE_MAX_TOKENS=7 LMOE_CUDA_DECODE_FUSED=1 LMOE_CUDA_PDL=0 LMOE_CUDA_PREFETCH_KB=-3
// LMOE_CUDA_FC2_BLOCKS=0 LMOE_CUDA_DEC_MINB=5 LMOE_CUDA_DEC_STREAM=5 LMOE_CUDA_DEC_STREAM_DENSE=9:
// each knob as the library has always mapped it into its range.
static void test_tuning_env() {
  lmoe_cuda_tuning t{};
  CK(lmoe_cuda_get_tuning(&t));
  char line[512];
  CK(lmoe_cuda_tuning_string(&t, line, sizeof line));
  printf("tuning from the environment: %s\n", line);
  check(strcmp(line, "experts=wide fc1_tile=192 decode=off decode_max_tokens=7 decode_fused=1 pdl=0 "
                     "prefetch_kb=0 fc2_blocks=1 minb=3 stream=4 stream_dense=8") == 0,
        "tuning-env: the environment's knobs", line);
}

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "env") test_tuning_env();
  else test_tuning();
  printf("%d passed, %d failed\n", g_pass, g_fail);
  return g_fail == 0 ? 0 : 1;
}
