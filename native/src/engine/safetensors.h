// A memory-mapped safetensors file: an 8-byte little-endian header length N, N bytes of UTF-8
// JSON, the data region. The whole header is validated at open (N fits the file and is at most
// 100 MiB; the JSON is an object; __metadata__, when present, maps strings to strings; every other
// entry has a string dtype, a shape of non-negative integers and data_offsets [begin, end] with
// begin <= end <= data size and end - begin == numel * element size for every dtype safetensors
// knows; keys are unique), but it is read with the pull parser and only the entries the caller
// asks for are kept, so memory does not grow with the number of entries (a 100 MiB header of tiny
// entries costs a sorted array of 16 bytes per entry for the duplicate check, then nothing).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "files.h"

namespace lmoe {
namespace engine {

struct TensorInfo {
  std::string dtype;           // as written in the header
  std::vector<int64_t> shape;  // as written ([] for a scalar)
  int64_t begin = 0, end = 0;  // relative to the data region
};

// What the caller wants from a tensor name: keep it, ignore it, or remember it as unexpected.
enum class NameUse { kSkip, kKeep, kUnknown };
using NameFilter = std::function<NameUse(const std::string&)>;

class SafeTensorsFile {
 public:
  static constexpr int64_t kMaxHeaderBytes = 100LL * 1024 * 1024;
  static std::unique_ptr<SafeTensorsFile> open(const CheckpointRoot& root, const std::string& path,
                                               const NameFilter& filter);
  ~SafeTensorsFile();
  SafeTensorsFile(const SafeTensorsFile&) = delete;
  SafeTensorsFile& operator=(const SafeTensorsFile&) = delete;

  const TensorInfo* find(const std::string& name) const;
  const char* data_of(const TensorInfo& t) const { return base_ + data_offset_ + t.begin; }
  const std::string& path() const { return path_; }
  int64_t mapped_bytes() const { return (int64_t)size_; }
  // The kept names, in header order.
  const std::vector<std::string>& kept() const { return kept_order_; }
  // The first name the filter called unknown ("" when none).
  const std::string& first_unknown() const { return first_unknown_; }

 private:
  SafeTensorsFile() = default;
  std::string path_;
  const char* base_ = nullptr;
  size_t size_ = 0;
  int64_t data_offset_ = 0;
  std::unordered_map<std::string, TensorInfo> tensors_;
  std::vector<std::string> kept_order_;
  std::string first_unknown_;
};

// Bits per element of a safetensors dtype name (0 when unknown).
int dtype_bits(const std::string& dtype);

}  // namespace engine
}  // namespace lmoe
