#include "checkpoint.h"

namespace lmoe {
namespace engine {

namespace {

[[noreturn]] void bad(const std::string& file, const std::string& msg) { invalid(file + ": " + msg); }

void skip_bom(std::string& text) {
  if (text.size() >= 3 && (unsigned char)text[0] == 0xEF && (unsigned char)text[1] == 0xBB &&
      (unsigned char)text[2] == 0xBF)
    text.erase(0, 3);
}

}  // namespace

JValue read_json_object(const CheckpointRoot& root, const std::string& path, int64_t max_bytes) {
  std::string text = read_checkpoint_file(root, path, max_bytes);
  if (!valid_utf8(text.data(), text.size())) bad(path, "not valid UTF-8");
  skip_bom(text);
  JValue v;
  try {
    v = json_parse(text.data(), text.size(), 64, Checkpoint::kMaxConfigValues);
  } catch (const JsonError& e) {
    bad(path, e.what());
  }
  if (v.kind != JValue::OBJECT) bad(path, std::string("expected a JSON object, got ") + json_type_name(&v));
  return v;
}

Checkpoint::Checkpoint(const std::string& dir) {
  root_ = resolve_root(dir);
  config_ = read_json_object(root_, file("config.json"), kMaxConfigBytes);
  const std::string hq = file("hf_quant_config.json");
  if (path_exists(hq)) {
    quant_config_ = read_json_object(root_, hq, kMaxConfigBytes);
    has_quant_config_ = true;
  }
}

void Checkpoint::index(const NameFilter& filter) {
  filter_ = filter;
  const std::string single = file("model.safetensors");
  const std::string index = file("model.safetensors.index.json");
  if (path_exists(single)) {
    shards_.push_back(SafeTensorsFile::open(root_, single, filter));
    shard_paths_.push_back(single);
    for (auto& n : shards_[0]->kept()) weight_map_.emplace(n, 0);
    first_unknown_ = shards_[0]->first_unknown();
    return;
  }
  if (!path_exists(index)) bad(root_.dir, "neither model.safetensors nor model.safetensors.index.json found");
  std::string text = read_checkpoint_file(root_, index, kMaxIndexBytes);
  if (!valid_utf8(text.data(), text.size())) bad(index, "not valid UTF-8");
  skip_bom(text);
  // Streamed: only the entries the filter keeps are stored, whatever the size of the map.
  std::unordered_map<std::string, int> shard_of_name;
  bool have_map = false;
  try {
    JsonReader r(text.data(), text.size());
    if (r.peek() != JValue::OBJECT) bad(index, "expected a JSON object");
    r.begin_object();
    DuplicateKeys top_dups;
    std::string key;
    size_t at = 0;
    while (r.next_member(key, &at)) {
      top_dups.add(key, at);
      if (key != "weight_map") {
        r.skip_value();
        continue;
      }
      if (r.peek() != JValue::OBJECT) bad(index, "weight_map must be an object");
      have_map = true;
      r.begin_object();
      DuplicateKeys dups;
      std::string tensor, shard;
      while (r.next_member(tensor, &at)) {
        dups.add(tensor, at);
        if (r.peek() != JValue::STRING)
          bad(index, "weight_map entry of '" + shorten(tensor) + "' must be a file name");
        shard.clear();
        r.read_string_into(shard);
        const NameUse use = filter ? filter(tensor) : NameUse::kKeep;
        if (use == NameUse::kUnknown && first_unknown_.empty()) first_unknown_ = tensor;
        if (use != NameUse::kKeep) {
          (void)resolve_relative(root_, index, shard);  // every name must be a safe relative path
          continue;
        }
        auto it = shard_of_name.find(shard);
        int s;
        if (it == shard_of_name.end()) {
          std::string p = resolve_relative(root_, index, shard);
          if (!path_exists(p))
            bad(index, "shard '" + shorten(shard) + "' of tensor '" + shorten(tensor) + "' does not exist");
          s = (int)shard_paths_.size();
          shard_paths_.push_back(p);
          shards_.emplace_back();
          shard_of_name.emplace(shard, s);
        } else {
          s = it->second;
        }
        weight_map_.emplace(tensor, s);
      }
      dups.finish(text.data(), text.size(), true);
    }
    r.finish();
    top_dups.finish(text.data(), text.size(), true);
  } catch (const JsonError& e) {
    bad(index, e.what());
  }
  if (!have_map) bad(index, "weight_map must be an object, got absent");
}

TensorView Checkpoint::tensor(const std::string& name) {
  auto it = weight_map_.find(name);
  if (it == weight_map_.end()) bad(root_.dir, "no tensor '" + shorten(name) + "' in checkpoint");
  const int s = it->second;
  if (!shards_[s]) shards_[s] = SafeTensorsFile::open(root_, shard_paths_[s], filter_);
  const SafeTensorsFile& f = *shards_[s];
  const TensorInfo* info = f.find(name);
  if (!info) {
    bad(f.path(), "tensor '" + shorten(name) + "' is listed in model.safetensors.index.json but missing from the shard");
  }
  TensorView t;
  t.name = name;
  t.dtype = info->dtype;
  t.shape = info->shape;
  t.data = f.data_of(*info);
  t.nbytes = info->end - info->begin;
  t.file = f.path();
  return t;
}

int64_t Checkpoint::mapped_bytes() const {
  int64_t b = 0;
  for (auto& s : shards_)
    if (s) b += s->mapped_bytes();
  return b;
}

}  // namespace engine
}  // namespace lmoe
