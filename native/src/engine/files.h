// How the engine reaches a checkpoint's files: only regular files (a FIFO, device or directory
// named config.json or model.safetensors is an error, never a hang: files are opened with
// O_NONBLOCK and checked with fstat before a byte is read), and only files whose real path (all
// symbolic links resolved) lies inside the checkpoint directory's real path, or, when that
// directory is a Hugging Face hub snapshot (<repo>/snapshots/<revision>), inside <repo>/blobs,
// where the hub keeps the files its snapshot links point to. Messages name paths, never bytes
// read from a file.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "latentmoe.h"

namespace lmoe {
namespace engine {

// A failure to report through lmoe_last_error with its status.
struct EngineError : std::runtime_error {
  lmoe_status status;
  EngineError(lmoe_status s, const std::string& m) : std::runtime_error(m), status(s) {}
};

[[noreturn]] void fail(lmoe_status s, const std::string& msg);
[[noreturn]] inline void invalid(const std::string& m) { fail(LMOE_ERR_INVALID_ARGUMENT, m); }

// The checkpoint directory: as given (absolute, lexically normalised) and where its files may
// resolve to.
struct CheckpointRoot {
  std::string dir;    // absolute, normalised; paths of its files are built from it
  std::string real;   // realpath(dir)
  std::string blobs;  // realpath(<repo>/blobs) for a hub snapshot, else empty
};

// Resolves dir (relative to the working directory when not absolute); it must be a directory.
CheckpointRoot resolve_root(const std::string& dir);

// True when something (a file, FIFO, dangling link, ...) is at path.
bool path_exists(const std::string& path);

// An open read-only file of the checkpoint; closes on destruction.
struct CheckpointFile {
  int fd = -1;
  int64_t size = 0;
  CheckpointFile() = default;
  CheckpointFile(const CheckpointFile&) = delete;
  CheckpointFile& operator=(const CheckpointFile&) = delete;
  ~CheckpointFile();
};

// Opens path (a file of root) under the policy above; errors name path.
void open_checkpoint_file(const CheckpointRoot& root, const std::string& path, CheckpointFile& out);

// Reads a whole file of at most max_bytes opened under the policy.
std::string read_checkpoint_file(const CheckpointRoot& root, const std::string& path, int64_t max_bytes);

// A relative file name from an index (shard names): no absolute paths, no escape by "..".
std::string resolve_relative(const CheckpointRoot& root, const std::string& index_path,
                             const std::string& name);

}  // namespace engine
}  // namespace lmoe
