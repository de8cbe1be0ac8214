#include "interop.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "files.h"
#include "json.h"

namespace lmoe {
namespace engine {

namespace {

std::string num(long long v) { return std::to_string(v); }

}  // namespace

// ------------------------------------------------------------------ DLPack

const float* dl_data(const DLManagedTensorVersioned* m, const char* fn, const char* what, int64_t d,
                     int64_t* T, bool writable) {
  std::string w = std::string(fn) + ": " + what;
  if (!m) invalid(w + " is NULL");
  if (m->version.major != DLPACK_MAJOR_VERSION)
    invalid(w + ": DLPack major version " + num(m->version.major) + " is not supported (1 expected)");
  if (writable && (m->flags & DLPACK_FLAG_BITMASK_READ_ONLY)) invalid(w + " is read-only");
  const DLTensor& t = m->dl_tensor;
  if (t.device.device_type != kDLCPU && t.device.device_type != kDLCUDAHost)
    invalid(w + " is on device type " + num((int)t.device.device_type) +
            "; only host memory (kDLCPU, kDLCUDAHost) is supported");
  if (t.dtype.code != kDLFloat || t.dtype.bits != 32 || t.dtype.lanes != 1)
    invalid(w + " has dtype (code " + num(t.dtype.code) + ", bits " + num(t.dtype.bits) + ", lanes " +
            num(t.dtype.lanes) + "); float32 is required");
  if (t.ndim != 2) invalid(w + " has " + num(t.ndim) + " dimensions; [T, d] is required");
  if (!t.shape) invalid(w + " has a NULL shape");
  const int64_t rows = t.shape[0], cols = t.shape[1];
  if (rows < 0 || cols != d)
    invalid(w + " has shape [" + num(rows) + ", " + num(cols) + "], expected [T, " + num(d) + "]");
  if (t.strides && rows > 0) {  // an empty tensor's strides mean nothing (numpy 2.4 reports 0s)
    bool ok = (t.strides[1] == 1 || cols <= 1) && (t.strides[0] == cols || rows <= 1);
    if (!ok)
      invalid(w + " has strides [" + num(t.strides[0]) + ", " + num(t.strides[1]) + "]; C-contiguous is required");
  }
  *T = rows;
  if (rows == 0) return nullptr;
  if (!t.data) invalid(w + " has NULL data");
  if (t.byte_offset > (uint64_t)INTPTR_MAX) invalid(w + " has an invalid byte_offset");
  const char* p = (const char*)t.data + t.byte_offset;
  if ((uintptr_t)p % 4) invalid(w + " data is not 4-byte aligned");
  return (const float*)p;
}

// ------------------------------------------------------------------ Arrow input

namespace {

struct Metadata {
  bool present = false;
  std::string ext_name, ext_meta;
};

Metadata read_metadata(const char* md, const std::string& w) {
  Metadata out;
  if (!md) return out;
  auto rd = [](const char* p) { int32_t v; std::memcpy(&v, p, 4); return v; };
  int32_t n = rd(md);
  if (n < 0 || n > 4096) invalid(w + ": schema metadata has an invalid pair count " + num(n));
  const char* p = md + 4;
  for (int32_t i = 0; i < n; ++i) {
    int32_t kl = rd(p);
    if (kl < 0 || kl > (1 << 20)) invalid(w + ": schema metadata has an invalid key length");
    std::string k(p + 4, (size_t)kl);
    p += 4 + kl;
    int32_t vl = rd(p);
    if (vl < 0 || vl > (1 << 24)) invalid(w + ": schema metadata has an invalid value length");
    std::string v(p + 4, (size_t)vl);
    p += 4 + vl;
    if (k == "ARROW:extension:name") { out.present = true; out.ext_name = v; }
    else if (k == "ARROW:extension:metadata") out.ext_meta = v;
  }
  return out;
}

bool any_null(const void* bitmap, int64_t from, int64_t count) {
  const unsigned char* b = (const unsigned char*)bitmap;
  for (int64_t i = from; i < from + count; ++i)
    if (!((b[i >> 3] >> (i & 7)) & 1)) return true;
  return false;
}

// null_count is -1 (unknown) or >= 0; a positive count needs a validity bitmap; rows [from,
// from + count) must all be valid (nulls outside the slice do not matter).
void check_nulls(const ArrowArray* a, const std::string& where, int64_t from, int64_t count, const char* what) {
  const int64_t nc = a->null_count;
  if (nc == 0) return;
  if (nc < -1) invalid(where + " has null_count " + num(nc) + " (must be -1 or >= 0)");
  const void* bitmap = a->buffers[0];
  if (!bitmap) {
    if (nc > 0) invalid(where + " has null_count " + num(nc) + " but no validity bitmap");
    return;  // -1 without a bitmap: no nulls
  }
  if (count > 0 && any_null(bitmap, from, count))
    invalid(where + " has null " + what + "; nulls are not supported");
}

void check_buffers(const ArrowArray* a, const std::string& where, int64_t want) {
  if (a->n_buffers != want)
    invalid(where + " must have " + num(want) + (want == 1 ? " buffer (validity), got " : " buffers (validity, values), got ") +
            num(a->n_buffers));
  if (!a->buffers) invalid(where + " has a NULL buffers array");
}

}  // namespace

const float* arrow_data(const ArrowArray* a, const ArrowSchema* s, const char* fn, int64_t d, int64_t* T,
                        bool* tensor_ext) {
  std::string w = std::string(fn) + ": x";
  if (!a) invalid(w + " is NULL");
  if (!s) invalid(w + "_schema is NULL");
  if (!a->release) invalid(w + " is released");
  if (!s->release) invalid(w + "_schema is released");
  if (!s->format) invalid(w + "_schema has a NULL format");
  std::string want = "+w:" + num(d);
  if (std::strncmp(s->format, want.c_str(), want.size() + 1) != 0) {
    char shown[40];
    std::snprintf(shown, sizeof shown, "%.32s", s->format);
    invalid(w + " has Arrow format '" + shown + "'; FixedSizeList<float32>[" + num(d) + "] ('" + want +
            "' with child 'f') is required");
  }
  if (s->dictionary) invalid(w + " is dictionary-encoded");
  if (s->n_children != 1 || !s->children || !s->children[0] || !s->children[0]->format)
    invalid(w + "_schema must have exactly one child");
  const ArrowSchema* cs = s->children[0];
  if (!cs->release) invalid(w + "_schema's child is released");
  if (std::strcmp(cs->format, "f") != 0 || cs->dictionary) {
    char shown[40];
    std::snprintf(shown, sizeof shown, "%.32s", cs->format);
    invalid(w + " has list values of Arrow format '" + shown + "'; float32 ('f') is required");
  }
  Metadata md = read_metadata(s->metadata, w);
  *tensor_ext = false;
  if (md.present) {
    if (md.ext_name != "arrow.fixed_shape_tensor")
      invalid(w + " has the unsupported extension type '" + shorten(md.ext_name, 64) + "'");
    JValue j;
    try {
      j = json_parse(md.ext_meta.data(), md.ext_meta.size());
    } catch (const JsonError& e) {
      invalid(w + ": arrow.fixed_shape_tensor metadata: " + e.what());
    }
    const JValue* sh = j.get("shape");
    const JValue* perm = j.get("permutation");
    bool ok = sh && sh->kind == JValue::ARRAY && sh->arr.size() == 1 && sh->arr[0].kind == JValue::INT &&
              sh->arr[0].i == d;
    bool perm_ok = !perm || perm->kind == JValue::NUL ||
                   (perm->kind == JValue::ARRAY && perm->arr.size() == 1 && perm->arr[0].kind == JValue::INT &&
                    perm->arr[0].i == 0);
    if (!ok || !perm_ok) invalid(w + ": arrow.fixed_shape_tensor must have shape [" + num(d) + "]");
    *tensor_ext = true;
  }
  if (a->length < 0 || a->offset < 0) invalid(w + " has a negative length or offset");
  check_buffers(a, w, 1);
  if (a->n_children != 1 || !a->children || !a->children[0]) invalid(w + " must have exactly one child array");
  if (a->dictionary) invalid(w + " has a dictionary");
  const ArrowArray* c = a->children[0];
  const std::string cw = w + "'s child";
  if (!c->release) invalid(w + " has a released child array");
  check_buffers(c, cw, 2);
  if (c->n_children != 0) invalid(cw + " must have no children");
  if (c->length < 0 || c->offset < 0) invalid(cw + " has a negative length or offset");
  int64_t rows_end, need;
  if (__builtin_add_overflow(a->offset, a->length, &rows_end) || __builtin_mul_overflow(rows_end, d, &need))
    invalid(w + " offset/length overflow");
  if (c->length < need)
    invalid(cw + " has " + num(c->length) + " values, fewer than the " + num(need) + " the list array needs");
  check_nulls(a, w, a->offset, a->length, "rows");
  int64_t first;
  if (__builtin_mul_overflow(a->offset, d, &first) || __builtin_add_overflow(first, c->offset, &first))
    invalid(w + " offset overflow");
  check_nulls(c, cw, first, a->length * d, "values");
  *T = a->length;
  if (a->length == 0) return nullptr;
  if (!c->buffers[1]) invalid(cw + " has a NULL values buffer");
  const float* p = (const float*)c->buffers[1] + first;
  if ((uintptr_t)p % 4) invalid(w + " values are not 4-byte aligned");
  return p;
}

// ------------------------------------------------------------------ Arrow output

namespace {

struct OutChild {  // owned by the child array (it may be moved out and released on its own)
  float* values = nullptr;
  const void* buffers[2] = {nullptr, nullptr};
};
struct OutParent {
  const void* buffers[1] = {nullptr};
  ArrowArray child{};
  ArrowArray* children[1] = {nullptr};
};
struct OutSchema {
  std::string format, metadata;
  ArrowSchema child{};
  ArrowSchema* children[1] = {nullptr};
};

void release_child_array(ArrowArray* a) {
  if (!a || !a->release) return;
  OutChild* c = (OutChild*)a->private_data;
  std::free(c->values);
  delete c;
  a->release = nullptr;
}

void release_parent_array(ArrowArray* a) {
  if (!a || !a->release) return;
  OutParent* p = (OutParent*)a->private_data;
  for (int64_t i = 0; i < a->n_children; ++i)
    if (a->children[i] && a->children[i]->release) a->children[i]->release(a->children[i]);
  delete p;
  a->release = nullptr;
}

void release_child_schema(ArrowSchema* s) {
  if (s) s->release = nullptr;
}

void release_parent_schema(ArrowSchema* s) {
  if (!s || !s->release) return;
  OutSchema* p = (OutSchema*)s->private_data;
  for (int64_t i = 0; i < s->n_children; ++i)
    if (s->children[i] && s->children[i]->release) s->children[i]->release(s->children[i]);
  delete p;
  s->release = nullptr;
}

void put_i32(std::string& s, int32_t v) { s.append((const char*)&v, 4); }

}  // namespace

struct ArrowOutput::Parts {
  int64_t T = 0, d = 0;
  bool ext = false;
  std::unique_ptr<OutChild> child{new OutChild()};
  std::unique_ptr<OutParent> parent{new OutParent()};
  std::unique_ptr<OutSchema> schema{new OutSchema()};
};

ArrowOutput::ArrowOutput(int64_t T, int64_t d, bool tensor_ext) : p_(new Parts()) {
  p_->T = T;
  p_->d = d;
  p_->ext = tensor_ext;
  size_t bytes = ((size_t)T * (size_t)d * 4 + 63) / 64 * 64;
  p_->child->values = (float*)std::aligned_alloc(64, bytes ? bytes : 64);
  if (!p_->child->values) throw std::bad_alloc();
}

ArrowOutput::~ArrowOutput() {
  if (p_ && p_->child) std::free(p_->child->values);
}

float* ArrowOutput::values() { return p_->child->values; }

void ArrowOutput::export_to(ArrowArray* out, ArrowSchema* out_schema) {
  const int64_t T = p_->T, d = p_->d;
  OutSchema* os = p_->schema.get();
  os->format = "+w:" + num(d);
  if (p_->ext) {
    std::string meta = "{\"shape\":[" + num(d) + "]}";
    const std::string k1 = "ARROW:extension:name", v1 = "arrow.fixed_shape_tensor", k2 = "ARROW:extension:metadata";
    put_i32(os->metadata, 2);
    put_i32(os->metadata, (int32_t)k1.size()); os->metadata += k1;
    put_i32(os->metadata, (int32_t)v1.size()); os->metadata += v1;
    put_i32(os->metadata, (int32_t)k2.size()); os->metadata += k2;
    put_i32(os->metadata, (int32_t)meta.size()); os->metadata += meta;
  }
  OutChild* oc = p_->child.get();
  OutParent* op = p_->parent.get();
  oc->buffers[1] = oc->values;
  ArrowArray& ca = op->child;
  ca.length = T * d; ca.null_count = 0; ca.offset = 0; ca.n_buffers = 2; ca.n_children = 0;
  ca.buffers = oc->buffers; ca.children = nullptr; ca.dictionary = nullptr;
  ca.release = release_child_array; ca.private_data = oc;
  op->children[0] = &op->child;
  ArrowArray pa{};
  pa.length = T; pa.null_count = 0; pa.offset = 0; pa.n_buffers = 1; pa.n_children = 1;
  pa.buffers = op->buffers; pa.children = op->children; pa.dictionary = nullptr;
  pa.release = release_parent_array; pa.private_data = op;
  ArrowSchema& cs = os->child;
  cs.format = "f"; cs.name = "item"; cs.metadata = nullptr; cs.flags = ARROW_FLAG_NULLABLE;
  cs.n_children = 0; cs.children = nullptr; cs.dictionary = nullptr;
  cs.release = release_child_schema; cs.private_data = nullptr;
  os->children[0] = &os->child;
  ArrowSchema ps{};
  ps.format = os->format.c_str(); ps.name = ""; ps.metadata = p_->ext ? os->metadata.data() : nullptr;
  ps.flags = ARROW_FLAG_NULLABLE; ps.n_children = 1; ps.children = os->children; ps.dictionary = nullptr;
  ps.release = release_parent_schema; ps.private_data = os;
  // Ownership moves to the caller's structs.
  p_->child.release();
  p_->parent.release();
  p_->schema.release();
  *out = pa;
  *out_schema = ps;
}

}  // namespace engine
}  // namespace lmoe
