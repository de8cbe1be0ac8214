// The engine ABI's zero-copy inputs and its one exported output: a DLPack tensor or an Arrow C
// Data FixedSizeList<float32>[d] read in place as x [T, d] (every field checked before a byte is
// read; errors are EngineErrors naming the argument), and the Arrow array the library hands out.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "latentmoe_engine.h"

namespace lmoe {
namespace engine {

// The rows of a DLPack tensor [T, d] f32 (NULL when T == 0); *T receives T.
const float* dl_data(const DLManagedTensorVersioned* m, const char* fn, const char* what, int64_t d, int64_t* T,
                     bool writable);

// The rows of an Arrow FixedSizeList<float32>[d] (NULL when T == 0); *T receives T and
// *tensor_ext whether x carries the arrow.fixed_shape_tensor extension.
const float* arrow_data(const ArrowArray* a, const ArrowSchema* s, const char* fn, int64_t d, int64_t* T,
                        bool* tensor_ext);

// An output FixedSizeList<float32>[d] of length T (values 64-byte aligned) built before the
// forward call writes values(); export_to hands it to the caller, who then owns it. Freed here
// when never exported.
class ArrowOutput {
 public:
  ArrowOutput(int64_t T, int64_t d, bool tensor_ext);
  ~ArrowOutput();
  ArrowOutput(const ArrowOutput&) = delete;
  ArrowOutput& operator=(const ArrowOutput&) = delete;
  float* values();
  void export_to(ArrowArray* out, ArrowSchema* out_schema);

 private:
  struct Parts;
  std::unique_ptr<Parts> p_;
};

}  // namespace engine
}  // namespace lmoe
