// Loading one MoE layer's weights: which tensors, in which format each matrix is stored (from the
// quantization config, checked against the tensors), their shapes and scales, and the one pass
// over the router, the correction bias and the latent projections that rejects non-finite values.
// Matrices are used in place from the mapping; only F16 matrices (widened to F32), a non-F32
// correction bias and tensors at an offset their element size does not divide are copied.
#include <cmath>
#include <cstring>

#include "config.h"
#include "layer_state.h"
#include "quant.h"

namespace lmoe {
namespace engine {

namespace {

const char* kSuffixes[] = {"weight", "weight_scale", "weight_scale_2", "input_scale", "bias"};

std::string fmt_shape(const std::vector<int64_t>& s) {
  std::string o = "[";
  for (size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string((long long)s[i]);
  return o + "]";
}

std::string dims(int64_t r, int64_t c) {
  return "[" + std::to_string((long long)r) + ", " + std::to_string((long long)c) + "]";
}

// Expert index written as in "experts.12." (digits, no leading zero), or -1.
int expert_index(const std::string& s, size_t& pos) {
  size_t b = pos;
  while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
  if (pos == b || pos - b > 6 || (s[b] == '0' && pos - b > 1)) return -1;
  return std::atoi(s.substr(b, pos - b).c_str());
}

// The tensors of a MoE mixer: what the index keeps and what it calls unknown.
NameUse classify(const std::string& name, const std::string& prefix, int n_experts) {
  if (name.compare(0, prefix.size(), prefix) != 0) return NameUse::kSkip;
  const std::string rest = name.substr(prefix.size());
  if (rest == "gate.weight" || rest == "gate.e_score_correction_bias" || rest == "gate.bias") return NameUse::kKeep;
  size_t dot = rest.rfind('.');
  if (dot == std::string::npos) return NameUse::kUnknown;
  const std::string module = rest.substr(0, dot), suffix = rest.substr(dot + 1);
  bool suffix_ok = false;
  for (const char* s : kSuffixes) suffix_ok = suffix_ok || suffix == s;
  if (!suffix_ok) return NameUse::kUnknown;
  if (module == "fc1_latent_proj" || module == "fc2_latent_proj" || module == "shared_experts.up_proj" ||
      module == "shared_experts.down_proj" || module == "shared_experts.gate_proj")
    return NameUse::kKeep;
  if (module.compare(0, 8, "experts.") == 0) {
    size_t pos = 8;
    int e = expert_index(module, pos);
    if (e < 0 || e >= n_experts || pos >= module.size() || module[pos] != '.') return NameUse::kUnknown;
    const std::string proj = module.substr(pos + 1);
    if (proj == "up_proj" || proj == "down_proj" || proj == "gate_proj") return NameUse::kKeep;
  }
  return NameUse::kUnknown;
}

bool f32_finite(uint32_t bits) { return (bits & 0x7F800000u) != 0x7F800000u; }

class Loader {
 public:
  Loader(LayerState& L, int layer)
      : L_(L), ck_(*L.ckpt), layer_(layer),
        module_prefix_("backbone.layers." + std::to_string(layer) + ".mixer."),
        quant_(QuantConfig::read(ck_.config(), ck_.file("config.json"), ck_.quant_config(),
                                 ck_.file("hf_quant_config.json"))) {}

  void load(const LayerConfig& lc);

 private:
  bool has(const std::string& name) const { return ck_.has(name); }
  TensorView need(const std::string& name) {
    if (!ck_.has(name)) invalid("checkpoint has no tensor '" + name + "'");
    return ck_.tensor(name);
  }
  void* alloc64(size_t bytes) {
    size_t n = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, n ? n : 64);
    if (!p) throw std::bad_alloc();
    L_.owned.push_back(p);
    L_.memory.converted_bytes += (int64_t)bytes;
    return p;
  }
  // t's bytes in place when `align` divides their address, else a copy.
  const void* in_place(const TensorView& t, size_t align) {
    if ((uintptr_t)t.data % align == 0) {
      L_.memory.in_place_bytes += t.nbytes;
      return t.data;
    }
    void* p = alloc64((size_t)t.nbytes);
    std::memcpy(p, t.data, (size_t)t.nbytes);
    return p;
  }
  const float* to_f32(const TensorView& t, int64_t count);
  void check_finite(const TensorView& t, const char* what);
  float scalar(const std::string& name, bool weight_scale);
  void check_shape(const TensorView& t, int64_t rows, int64_t cols, const char* note = "") {
    if (t.shape.size() != 2 || t.shape[0] != rows || t.shape[1] != cols)
      invalid("weight " + t.name + " has shape " + fmt_shape(t.shape) + ", expected " + dims(rows, cols) + note);
  }
  lmoe_matrix matrix(const std::string& rel, int64_t rows, int64_t cols, bool finite);
  lmoe_matrix plain(const std::string& module, const TensorView& w, int64_t rows, int64_t cols, bool finite);

  LayerState& L_;
  Checkpoint& ck_;
  int layer_;
  std::string module_prefix_;
  QuantConfig quant_;
};

const float* Loader::to_f32(const TensorView& t, int64_t count) {
  float* dst = (float*)alloc64((size_t)count * 4);
  const unsigned char* s = (const unsigned char*)t.data;
  for (int64_t i = 0; i < count; ++i) {
    if (t.dtype == "F32") {
      std::memcpy(&dst[i], s + 4 * i, 4);
    } else if (t.dtype == "BF16") {
      uint16_t b;
      std::memcpy(&b, s + 2 * i, 2);
      uint32_t bits = (uint32_t)b << 16;
      std::memcpy(&dst[i], &bits, 4);
    } else {  // F16, exact in F32
      uint16_t h;
      std::memcpy(&h, s + 2 * i, 2);
      uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
      if (exp == 0) {
        if (man == 0) {
          bits = sign;
        } else {  // subnormal: normalise
          int e = -1;
          do { ++e; man <<= 1; } while ((man & 0x400) == 0);
          bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3FF) << 13);
        }
      } else if (exp == 0x1F) {
        bits = sign | 0x7F800000u | (man << 13);
      } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
      }
      std::memcpy(&dst[i], &bits, 4);
    }
  }
  return dst;
}

// One pass over a matrix or vector stored as F32, BF16, F16 or F8_E4M3 (codes 0x7F / 0xFF are NaN).
void Loader::check_finite(const TensorView& t, const char* what) {
  const unsigned char* p = (const unsigned char*)t.data;
  int64_t bad = -1;
  if (t.dtype == "F32") {
    for (int64_t i = 0; i < t.nbytes / 4 && bad < 0; ++i) {
      uint32_t b;
      std::memcpy(&b, p + 4 * i, 4);
      if (!f32_finite(b)) bad = i;
    }
  } else if (t.dtype == "BF16" || t.dtype == "F16") {
    const uint16_t mask = t.dtype == "BF16" ? 0x7F80 : 0x7C00;
    for (int64_t i = 0; i < t.nbytes / 2 && bad < 0; ++i) {
      uint16_t b;
      std::memcpy(&b, p + 2 * i, 2);
      if ((b & mask) == mask) bad = i;
    }
  } else if (t.dtype == "F8_E4M3") {
    for (int64_t i = 0; i < t.nbytes && bad < 0; ++i)
      if ((p[i] & 0x7F) == 0x7F) bad = i;
  }
  if (bad >= 0) {
    std::string at = "element " + std::to_string((long long)bad);
    if (t.shape.size() == 2 && t.shape[1] > 0)
      at = "[" + std::to_string((long long)(bad / t.shape[1])) + ", " + std::to_string((long long)(bad % t.shape[1])) + "]";
    invalid(t.name + " (" + what + ") holds a NaN or infinite value at " + at +
            "; the router, its correction bias and the latent projections are checked at load");
  }
}

// A per-tensor scale: F32, shape [] or [1], finite; weight scales > 0, input scales >= 0.
float Loader::scalar(const std::string& name, bool weight_scale) {
  TensorView t = need(name);
  const bool shape_ok = t.shape.empty() || (t.shape.size() == 1 && t.shape[0] == 1);
  if (t.dtype != "F32" || !shape_ok)
    invalid(name + " must be an F32 scalar (shape [] or [1]), got " + shorten(t.dtype, 16) + fmt_shape(t.shape));
  float v;
  std::memcpy(&v, t.data, 4);
  if (!std::isfinite(v)) invalid(name + " is " + (std::isnan(v) ? "NaN" : "infinite") + "; scales must be finite");
  if (weight_scale && !(v > 0.0f)) invalid(name + " is " + std::to_string(v) + "; weight scales must be > 0");
  if (!weight_scale && v < 0.0f) invalid(name + " is " + std::to_string(v) + "; input scales must be >= 0");
  return v;
}

lmoe_matrix Loader::plain(const std::string& module, const TensorView& w, int64_t rows, int64_t cols, bool finite) {
  lmoe_matrix m{};
  m.scale = 1.0f;
  check_shape(w, rows, cols);
  if (finite) check_finite(w, module.c_str());
  if (w.dtype == "F32") {
    m.format = LMOE_WFMT_F32;
    m.data = in_place(w, 4);
  } else if (w.dtype == "BF16") {
    m.format = LMOE_WFMT_BF16;
    m.data = in_place(w, 2);
  } else if (w.dtype == "F16") {  // no F16 kernel: widened once, exactly
    m.format = LMOE_WFMT_F32;
    m.data = to_f32(w, rows * cols);
  } else {
    invalid("weight " + w.name + " has unsupported dtype " + shorten(w.dtype, 16) + " (F32, BF16, F16)");
  }
  return m;
}

lmoe_matrix Loader::matrix(const std::string& rel, int64_t rows, int64_t cols, bool finite) {
  const std::string module = module_prefix_ + rel;
  const QuantAlgo algo = quant_.algo_of(module);
  TensorView w = need(module + ".weight");
  const bool has_ws = has(module + ".weight_scale"), has_ws2 = has(module + ".weight_scale_2");
  const std::string says = quant_.any() ? quant_.source() : "the checkpoint has no quantization config";
  if (algo == QuantAlgo::kNone) {
    if (w.dtype == "F8_E4M3" || w.dtype == "F8_E5M2" || w.dtype == "U8") {
      invalid("weight " + w.name + " is " + w.dtype + " but " + says +
              (quant_.any() ? " leaves " + module + " unquantized" : " (hf_quant_config.json or config.json quantization_config)"));
    }
    if (has_ws || has_ws2)
      invalid(module + " has weight scales but " + says + (quant_.any() ? " leaves it unquantized" : ""));
    return plain(module, w, rows, cols, finite);
  }
  lmoe_matrix m{};
  if (algo == QuantAlgo::kFp8) {
    if (w.dtype == "F8_E5M2")
      invalid("weight " + w.name + " is F8_E5M2; FP8 weights must be F8_E4M3 (" + quant_.source() + ")");
    if (w.dtype != "F8_E4M3")
      invalid("weight " + w.name + " is " + shorten(w.dtype, 16) + " but " + quant_.source() + " stores " + module +
              " as FP8 (an F8_E4M3 weight with an F32 weight_scale)");
    check_shape(w, rows, cols);
    if (!has_ws) invalid("FP8 module " + module + " has no weight_scale tensor");
    if (has_ws2) invalid("FP8 module " + module + " has a weight_scale_2 tensor (NVFP4?); " + quant_.source() + " says FP8");
    if (finite) check_finite(w, module.c_str());
    m.format = LMOE_WFMT_FP8_E4M3;
    m.data = in_place(w, 1);
    m.scale = scalar(module + ".weight_scale", true);
  } else {
    if (cols % 16 != 0)
      invalid("NVFP4 module " + module + " has " + std::to_string((long long)cols) +
              " input features, not a multiple of the block size 16");
    if (w.dtype != "U8")
      invalid("weight " + w.name + " is " + shorten(w.dtype, 16) + " but " + quant_.source() + " stores " + module +
              " as NVFP4 (U8 [out, in/2], two e2m1 values per byte)");
    if (w.shape.size() != 2 || w.shape[0] != rows)
      invalid("weight " + w.name + " has shape " + fmt_shape(w.shape) + ", expected " + dims(rows, cols / 2) + " (packed e2m1)");
    if (w.shape[1] != cols / 2)
      invalid("weight " + w.name + " has packed width " + std::to_string((long long)w.shape[1]) +
              "; NVFP4 packs two values per byte, so it must be in/2 = " + std::to_string((long long)(cols / 2)));
    if (!has_ws) invalid("NVFP4 module " + module + " has no weight_scale tensor (e4m3 block scales)");
    if (!has_ws2) invalid("NVFP4 module " + module + " has no weight_scale_2 tensor (the per-tensor scale)");
    TensorView bs = need(module + ".weight_scale");
    if (bs.dtype != "F8_E4M3")
      invalid(bs.name + " is " + shorten(bs.dtype, 16) + "; NVFP4 block scales must be F8_E4M3 " + dims(rows, cols / 16));
    if (bs.shape.size() != 2 || bs.shape[0] != rows || bs.shape[1] != cols / 16)
      invalid(bs.name + " has shape " + fmt_shape(bs.shape) + ", expected " + dims(rows, cols / 16) +
              " (one e4m3 scale per 16 inputs)");
    const unsigned char* b = (const unsigned char*)bs.data;
    for (int64_t i = 0; i < bs.nbytes; ++i) {
      const bool nan = (b[i] & 0x7F) == 0x7F, negative = (b[i] & 0x80) && b[i] != 0x80;
      if (nan || negative)
        invalid(bs.name + " holds a " + (nan ? "NaN" : "negative") + " block scale at " +
                dims(i / (cols / 16), i % (cols / 16)) + "; block scales must be finite and >= 0");
    }
    m.format = LMOE_WFMT_NVFP4;
    m.data = in_place(w, 1);
    m.block_scales = (const uint8_t*)in_place(bs, 1);
    m.scale = scalar(module + ".weight_scale_2", true);
  }
  m.input_scale = has(module + ".input_scale") ? scalar(module + ".input_scale", false) : 0.0f;
  return m;
}

void Loader::load(const LayerConfig& lc) {
  lmoe_config c = lc.cfg;
  const int n = c.num_experts;
  const bool latent = c.latent_size > 0, shared = c.shared_intermediate_size > 0;
  const std::string& p = module_prefix_;
  ck_.index([&](const std::string& name) { return classify(name, p, n); });

  if (!has(p + "gate.weight")) {
    std::string other = ck_.first_unknown();
    invalid("checkpoint has no tensor '" + p + "gate.weight'" +
            (other.empty() ? "" : " (layer " + std::to_string(layer_) + " holds " + shorten(other, 120) +
                                      ": not a MoE layer?)"));
  }
  if (!ck_.first_unknown().empty()) {
    invalid("tensor '" + shorten(ck_.first_unknown(), 160) +
            "' is not one this library reads in a MoE layer (gate, fc1/fc2_latent_proj, experts.{0.." +
            std::to_string(n - 1) + "}.{up,down,gate}_proj, shared_experts.{up,down,gate}_proj with "
            "weight / weight_scale / weight_scale_2 / input_scale); refusing rather than ignoring it");
  }
  // Biases: transformers' mlp_bias; refused (see config.cpp) also when config.json does not say so.
  for (const char* b : {"gate.bias", "fc1_latent_proj.bias", "fc2_latent_proj.bias", "shared_experts.up_proj.bias",
                        "shared_experts.down_proj.bias", "shared_experts.gate_proj.bias", "experts.0.up_proj.bias",
                        "experts.0.down_proj.bias", "experts.0.gate_proj.bias"}) {
    if (has(p + b))
      fail(LMOE_ERR_UNSUPPORTED, "tensor '" + p + b + "' is a bias (mlp_bias); this library applies no biases in "
                                 "the MoE layer and refuses the checkpoint rather than computing another layer");
  }
  for (int e = 1; e < n; ++e)
    for (const char* proj : {"up_proj", "down_proj", "gate_proj"})
      if (has(p + "experts." + std::to_string(e) + "." + proj + ".bias"))
        fail(LMOE_ERR_UNSUPPORTED, "tensor '" + p + "experts." + std::to_string(e) + "." + proj +
                                       ".bias' is a bias; this library applies no biases in the MoE layer");

  // Gated (SwiGLU) only where the checkpoint has gate_proj tensors; transformers' nemotron_h
  // "silu" is the non-gated down(silu(up z)).
  const bool gated = has(p + "experts.0.gate_proj.weight");
  if (gated && lc.act == "relu2")
    invalid("tensor '" + p + "experts.0.gate_proj.weight' is a gate projection but mlp_hidden_act is relu2 (non-gated)");
  if (!gated && lc.act == "swiglu")
    invalid("mlp_hidden_act is swiglu but the checkpoint has no '" + p + "experts.0.gate_proj.weight'");
  if (lc.act != "relu2") c.activation = gated ? LMOE_ACT_SWIGLU : LMOE_ACT_SILU;
  for (int e = 0; e < n; ++e) {
    const std::string g = p + "experts." + std::to_string(e) + ".gate_proj.weight";
    if (!gated && has(g)) invalid("tensor '" + g + "' is a gate projection but experts.0 has none");
  }
  if (shared && !gated && has(p + "shared_experts.gate_proj.weight"))
    invalid("tensor '" + p + "shared_experts.gate_proj.weight' is a gate projection but the routed experts have none");
  if (!shared) {
    for (const char* s : {"shared_experts.up_proj.weight", "shared_experts.down_proj.weight"})
      if (has(p + s))
        invalid("tensor '" + p + s + "' exists but moe_shared_expert_intermediate_size is 0");
  }
  if (!latent && (has(p + "fc1_latent_proj.weight") || has(p + "fc2_latent_proj.weight")))
    invalid("tensor '" + p + "fc1_latent_proj.weight' exists but moe_latent_size is unset (standard MoE)");

  // The modules quantized_layers names in this layer must exist.
  const std::string layer_prefix = "backbone.layers." + std::to_string(layer_) + ".";
  quant_.check_named_modules(layer_prefix, [&](const std::string& m) {
    if (m + "." == layer_prefix || m + "." == p) return true;  // the whole layer / mixer
    std::string rest = m.compare(0, p.size(), p) == 0 ? m.substr(p.size()) : std::string();
    if (rest.empty()) return false;
    if (latent && (rest == "fc1_latent_proj" || rest == "fc2_latent_proj")) return true;
    if (shared && (rest == "shared_experts" || rest == "shared_experts.up_proj" || rest == "shared_experts.down_proj" ||
                   (gated && rest == "shared_experts.gate_proj")))
      return true;
    if (rest == "experts") return true;
    if (rest.compare(0, 8, "experts.") == 0) {
      size_t pos = 8;
      int e = expert_index(rest, pos);
      if (e < 0 || e >= n) return false;
      if (pos == rest.size()) return true;
      const std::string proj = rest.substr(pos);
      return proj == ".up_proj" || proj == ".down_proj" || (gated && proj == ".gate_proj");
    }
    return false;
  });

  const int64_t d = c.hidden_size, l = c.latent_size, m = c.expert_intermediate_size;
  const int64_t w = latent ? l : d, ms = c.shared_intermediate_size;
  lmoe_weights& W = L_.w;

  // Router: never quantized (not a linear module in ModelOpt's sense); checked finite.
  TensorView gate = need(p + "gate.weight");
  if (gate.dtype != "F32" && gate.dtype != "BF16" && gate.dtype != "F16")
    invalid("weight " + gate.name + " is " + shorten(gate.dtype, 16) + "; the router must be F32, BF16 or F16");
  W.gate = plain(p + "gate", gate, n, d, true);
  L_.gate_dtype = W.gate.format == LMOE_WFMT_BF16 ? LMOE_DTYPE_BF16 : LMOE_DTYPE_F32;
  if (has(p + "gate.e_score_correction_bias")) {
    TensorView bias = need(p + "gate.e_score_correction_bias");
    std::vector<int64_t> shape = bias.shape;
    if (shape.size() == 2 && shape[0] == 1) shape = {shape[1]};
    if ((bias.dtype != "F32" && bias.dtype != "BF16" && bias.dtype != "F16") || shape.size() != 1 || shape[0] != n)
      invalid("gate.e_score_correction_bias must be F32 [" + std::to_string(n) + "], got " + shorten(bias.dtype, 16) +
              fmt_shape(bias.shape));
    check_finite(bias, "router correction bias");
    W.gate_bias = bias.dtype == "F32" ? (const float*)in_place(bias, 4) : to_f32(bias, n);
  }
  if (latent) {
    W.latent_down = matrix("fc1_latent_proj", l, d, true);
    W.latent_up = matrix("fc2_latent_proj", d, l, true);
  }
  L_.up.resize(n);
  L_.down.resize(n);
  if (gated) L_.gate.resize(n);
  for (int e = 0; e < n; ++e) {
    const std::string ep = "experts." + std::to_string(e) + ".";
    L_.up[e] = matrix(ep + "up_proj", m, w, false);
    L_.down[e] = matrix(ep + "down_proj", w, m, false);
    if (gated) L_.gate[e] = matrix(ep + "gate_proj", m, w, false);
  }
  W.expert_up = L_.up.data();
  W.expert_down = L_.down.data();
  W.expert_gate = gated ? L_.gate.data() : nullptr;
  if (shared) {
    W.shared_up = matrix("shared_experts.up_proj", ms, d, false);
    W.shared_down = matrix("shared_experts.down_proj", d, ms, false);
    if (gated) W.shared_gate = matrix("shared_experts.gate_proj", ms, d, false);
  }
  switch (L_.up[0].format) {
    case LMOE_WFMT_BF16: L_.expert_dtype = LMOE_DTYPE_BF16; break;
    case LMOE_WFMT_FP8_E4M3: L_.expert_dtype = LMOE_DTYPE_F8_E4M3; break;
    case LMOE_WFMT_NVFP4: L_.expert_dtype = LMOE_DTYPE_U8; break;
    default: L_.expert_dtype = LMOE_DTYPE_F32;
  }
  L_.cfg = c;
  L_.memory.weight_bytes = L_.memory.in_place_bytes + L_.memory.converted_bytes;
  L_.memory.mapped_bytes = ck_.mapped_bytes();
}

}  // namespace

lmoe_config read_layer_config(const std::string& dir, int layer) {
  Checkpoint ck(dir);
  LayerConfig lc = parse_layer_config(ck.config(), ck.file("config.json"), layer);
  const std::string p = "backbone.layers." + std::to_string(layer) + ".mixer.";
  const int n = lc.cfg.num_experts;
  ck.index([&](const std::string& name) { return classify(name, p, n); });
  if (lc.act != "relu2") lc.cfg.activation = ck.has(p + "experts.0.gate_proj.weight") ? LMOE_ACT_SWIGLU : LMOE_ACT_SILU;
  return lc.cfg;
}

void load_layer(LayerState& L, const std::string& dir, int layer) {
  L.ckpt.reset(new Checkpoint(dir));
  LayerConfig lc = parse_layer_config(L.ckpt->config(), L.ckpt->file("config.json"), layer);
  Loader(L, layer).load(lc);
}

}  // namespace engine
}  // namespace lmoe
