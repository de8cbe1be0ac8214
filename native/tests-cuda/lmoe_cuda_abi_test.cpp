// lmoe_cuda_abi_test - the layer's weight descriptors (lmoe_cuda_matrix) and the path choice of
// latentmoe_cuda.h, no GPU needed: lmoe_cuda_validate and lmoe_cuda_forward_path read no device
// memory, and lmoe_cuda_forward rejects a misaligned activation of a quantized layer before it
// touches the device. The pointers are host addresses standing in for device ones (never read).
// Closing line: "N passed, N failed".
#include "common.h"

using namespace lt;

namespace {

alignas(256) unsigned char g_fake[1 << 16];  // stand-in "device" memory, never read
const void* fake(int slot) { return g_fake + 256 * slot; }
const float* fake_f(int slot) { return reinterpret_cast<const float*>(fake(slot)); }
const uint8_t* fake_u8(int slot) { return reinterpret_cast<const uint8_t*>(fake(slot)); }

lmoe_config cfg(int act = LMOE_ACT_RELU2, int d = 256, int l = 64, int m = 96, int ms = 128) {
  lmoe_config c{};
  c.hidden_size = d;
  c.latent_size = l;
  c.num_experts = 16;
  c.top_k = 4;
  c.expert_intermediate_size = m;
  c.shared_intermediate_size = ms;
  c.activation = act;
  c.scoring = LMOE_SCORING_SIGMOID;
  c.norm_topk_prob = 1;
  c.routed_scaling_factor = 2.5f;
  return c;
}

lmoe_cuda_matrix fp8(int slot, bool w8a8 = false) {
  lmoe_cuda_matrix m = dmat(fake(slot));
  m.format = LMOE_WFMT_FP8_E4M3;
  m.scales = fake_f(slot + 100);
  if (w8a8) m.input_scales = fake_f(slot + 150);
  return m;
}
lmoe_cuda_matrix nvfp4(int slot) {
  lmoe_cuda_matrix m = dmat(fake(slot));
  m.format = LMOE_WFMT_NVFP4;
  m.block_scales = fake_u8(slot + 50);
  m.scales = fake_f(slot + 100);
  return m;
}

// A BF16 layer for c (every matrix the activation needs).
lmoe_cuda_weights bf16_layer(const lmoe_config& c) {
  lmoe_cuda_weights w{};
  const bool swiglu = c.activation == LMOE_ACT_SWIGLU;
  w.gate = dmat(fake(1), LMOE_WFMT_F32);
  w.gate_bias = fake_f(2);
  if (c.latent_size > 0) {
    w.latent_down = dmat(fake(3));
    w.latent_up = dmat(fake(4));
  }
  w.expert_up = dmat(fake(5));
  if (swiglu) w.expert_gate = dmat(fake(6));
  w.expert_down = dmat(fake(7));
  if (c.shared_intermediate_size > 0) {
    w.shared_up = dmat(fake(8));
    if (swiglu) w.shared_gate = dmat(fake(9));
    w.shared_down = dmat(fake(10));
  }
  return w;
}

// status and that the message names `what`
void expect(lmoe_status got, lmoe_status want, const char* what, const char* name) {
  const bool named = what == nullptr || strstr(lmoe_cuda_last_error(), what) != nullptr;
  char buf[512];
  snprintf(buf, sizeof buf, "got %d (want %d), message \"%s\" (should name %s)", int(got), int(want),
           lmoe_cuda_last_error(), what ? what : "-");
  check(got == want && named, name, buf);
}

void test_valid_layers() {
  for (int act : {LMOE_ACT_RELU2, LMOE_ACT_SWIGLU, LMOE_ACT_SILU}) {
    const lmoe_config c = cfg(act);
    lmoe_cuda_weights w = bf16_layer(c);
    char name[96];
    snprintf(name, sizeof name, "valid: bf16 layer, activation %d", act);
    expect(lmoe_cuda_validate(&c, &w), LMOE_OK, nullptr, name);
    // quantized experts and dense matrices, mixed formats
    w.expert_up = fp8(5);
    w.expert_down = nvfp4(7);
    if (act == LMOE_ACT_SWIGLU) w.expert_gate = fp8(6);
    w.latent_down = nvfp4(3);
    w.shared_down = fp8(10);
    snprintf(name, sizeof name, "valid: FP8 / NVFP4 / BF16 mix, activation %d", act);
    expect(lmoe_cuda_validate(&c, &w), LMOE_OK, nullptr, name);
    check(lmoe_cuda_forward_workspace_bytes(&c, 1) > 0 && lmoe_cuda_forward_workspace_bytes(&c, 3000) > 0,
          "valid: workspace sizes");
  }
  // a standard MoE (no latent), BF16 gate
  lmoe_config c = cfg(LMOE_ACT_RELU2, 128, 0, 64, 0);
  lmoe_cuda_weights w = bf16_layer(c);
  w.gate.format = LMOE_WFMT_BF16;
  w.expert_up = fp8(5, true);
  w.expert_down = fp8(7, true);
  expect(lmoe_cuda_validate(&c, &w), LMOE_OK, nullptr, "valid: standard MoE, W8A8 experts");
}

// Decode where it applies: relu2 and SiLU, BF16 or quantized weights; never with SwiGLU or a W8A8
// matrix (the sorted path runs those).
void test_paths() {
  lmoe_cuda_tuning base{}, t{};
  CK(lmoe_cuda_get_tuning(&base));
  t = base;
  t.decode = LMOE_CUDA_DECODE_AUTO;
  t.decode_max_tokens = 16;
  CK(lmoe_cuda_set_tuning(&t));
  const void* x = fake(20);
  struct Case { const char* name; int act; int quant; int t1_path; };  // quant: 0 bf16, 1 fp8/nvfp4, 2 W8A8
  const Case cases[] = {
      {"path: relu2 bf16", LMOE_ACT_RELU2, 0, LMOE_CUDA_PATH_DECODE},
      {"path: silu bf16", LMOE_ACT_SILU, 0, LMOE_CUDA_PATH_DECODE},
      {"path: swiglu bf16", LMOE_ACT_SWIGLU, 0, LMOE_CUDA_PATH_SORTED},
      {"path: relu2 fp8/nvfp4", LMOE_ACT_RELU2, 1, LMOE_CUDA_PATH_DECODE},
      {"path: silu fp8/nvfp4", LMOE_ACT_SILU, 1, LMOE_CUDA_PATH_DECODE},
      {"path: relu2 W8A8", LMOE_ACT_RELU2, 2, LMOE_CUDA_PATH_SORTED},
  };
  for (const Case& k : cases) {
    const lmoe_config c = cfg(k.act);
    lmoe_cuda_weights w = bf16_layer(c);
    if (k.quant) {
      w.expert_up = fp8(5, k.quant == 2);
      w.expert_down = k.quant == 2 ? fp8(7, true) : nvfp4(7);
      w.shared_up = nvfp4(8);
    }
    const int p1 = lmoe_cuda_forward_path(&c, &w, x, 1), p100 = lmoe_cuda_forward_path(&c, &w, x, 100);
    char buf[128];
    snprintf(buf, sizeof buf, "T=1 -> %d (want %d), T=100 -> %d: %s", p1, k.t1_path, p100, lmoe_cuda_last_error());
    check(p1 == k.t1_path && p100 == LMOE_CUDA_PATH_SORTED, k.name, buf);
  }
  // decode forced on: still sorted for W8A8
  t.decode = LMOE_CUDA_DECODE_ON;
  CK(lmoe_cuda_set_tuning(&t));
  lmoe_config c = cfg(LMOE_ACT_RELU2);
  lmoe_cuda_weights w = bf16_layer(c);
  w.latent_up = fp8(4, true);
  check(lmoe_cuda_forward_path(&c, &w, x, 1) == LMOE_CUDA_PATH_SORTED, "path: decode on, a W8A8 matrix -> sorted");
  CK(lmoe_cuda_set_tuning(&base));
}

void test_errors() {
  const lmoe_config c = cfg();
  const lmoe_cuda_weights ok = bf16_layer(c);
  lmoe_cuda_weights w;
  w = ok; w.expert_up.format = LMOE_WFMT_F32;
  expect(lmoe_cuda_validate(&c, &w), LMOE_ERR_UNSUPPORTED, "expert_up", "errors: F32 expert weights unsupported");
  w = ok; w.latent_up.format = LMOE_WFMT_F32;
  expect(lmoe_cuda_validate(&c, &w), LMOE_ERR_UNSUPPORTED, "latent_up", "errors: F32 latent_up unsupported");
  w = ok; w.gate = fp8(1);
  expect(lmoe_cuda_validate(&c, &w), LMOE_ERR_INVALID_ARGUMENT, "gate", "errors: FP8 gate");
  w = ok; w.shared_down.format = 7;
  expect(lmoe_cuda_validate(&c, &w), LMOE_ERR_INVALID_ARGUMENT, "shared_down", "errors: unknown format");
  w = ok; w.shared_up.reserved = 1;
  expect(lmoe_cuda_validate(&c, &w), LMOE_ERR_INVALID_ARGUMENT, "shared_up", "errors: reserved != 0");
  w = ok; w.expert_down = fp8(7); w.expert_down.scales = nullptr;
  expect(lmoe_cuda_validate(&c, &w), LMOE_ERR_INVALID_ARGUMENT, "expert_down", "errors: FP8 without scales");
  w = ok; w.expert_down.scales = fake_f(30);
  expect(lmoe_cuda_validate(&c, &w), LMOE_ERR_INVALID_ARGUMENT, "expert_down", "errors: BF16 with scales");
  w = ok; w.latent_down = nvfp4(3); w.latent_down.block_scales = nullptr;
  expect(lmoe_cuda_validate(&c, &w), LMOE_ERR_INVALID_ARGUMENT, "latent_down", "errors: NVFP4 without block scales");
  w = ok; w.latent_down = fp8(3); w.latent_down.block_scales = fake_u8(31);
  expect(lmoe_cuda_validate(&c, &w), LMOE_ERR_INVALID_ARGUMENT, "latent_down", "errors: FP8 with block scales");
  w = ok; w.expert_up = nvfp4(5); w.expert_up.input_scales = fake_f(32);
  expect(lmoe_cuda_validate(&c, &w), LMOE_ERR_UNSUPPORTED, "NVFP4", "errors: NVFP4 with input scales (no W4A4 on sm_90)");
  w = ok; w.expert_up.input_scales = fake_f(32);
  expect(lmoe_cuda_validate(&c, &w), LMOE_ERR_INVALID_ARGUMENT, "expert_up", "errors: BF16 with input scales");
  w = ok; w.expert_up = fp8(5); w.expert_up.data = g_fake + 256 * 5 + 8;
  expect(lmoe_cuda_validate(&c, &w), LMOE_ERR_UNSUPPORTED, "aligned", "errors: misaligned FP8 data");
  w = ok; w.latent_down = dmat(nullptr);
  expect(lmoe_cuda_validate(&c, &w), LMOE_ERR_INVALID_ARGUMENT, "latent_down", "errors: latent_down absent");
  w = ok; w.shared_down = dmat(nullptr);
  expect(lmoe_cuda_validate(&c, &w), LMOE_ERR_INVALID_ARGUMENT, "shared_down", "errors: shared_down absent");
  {  // quantized layers need every dimension a multiple of 32
    const lmoe_config c48 = cfg(LMOE_ACT_RELU2, 256, 64, 48, 128);
    w = bf16_layer(c48);
    expect(lmoe_cuda_validate(&c48, &w), LMOE_OK, nullptr, "errors: m = 48 fine with bf16");
    w.shared_up = fp8(8);
    expect(lmoe_cuda_validate(&c48, &w), LMOE_ERR_UNSUPPORTED, "expert_intermediate_size",
           "errors: m = 48 with an FP8 matrix");
  }
  lmoe_config bad = c;
  bad.activation = 3;
  expect(lmoe_cuda_validate(&bad, &ok), LMOE_ERR_INVALID_ARGUMENT, "activation", "errors: activation 3");
  bad = c;
  bad.precision = 2;
  expect(lmoe_cuda_validate(&bad, &ok), LMOE_ERR_INVALID_ARGUMENT, "precision", "errors: precision 2");
  // a quantized layer's activations must be 16-byte aligned: refused before any device work
  w = ok;
  w.expert_up = fp8(5);
  const void* x_odd = g_fake + 256 * 20 + 2;
  int32_t ids[4];
  float wts[4];
  lmoe_status st = lmoe_cuda_forward(&c, &w, x_odd, 1, ids, wts, const_cast<void*>(fake(40)), 1 << 20,
                                     const_cast<void*>(fake(60)), nullptr);
  expect(st, LMOE_ERR_UNSUPPORTED, "x", "errors: misaligned x with FP8 weights");
}

}  // namespace

int main() {
  test_valid_layers();
  test_paths();
  test_errors();
  printf("%d passed, %d failed\n", g_pass, g_fail);
  return g_fail == 0 ? 0 : 1;
}
