#include "files.h"

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "json.h"

namespace lmoe {
namespace engine {

void fail(lmoe_status s, const std::string& msg) { throw EngineError(s, msg); }

namespace {

// Lexical normalisation of an absolute path: "." and empty components dropped, ".." pops.
std::string normalize_abs(const std::string& p) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i <= p.size()) {
    size_t j = p.find('/', i);
    if (j == std::string::npos) j = p.size();
    std::string c = p.substr(i, j - i);
    if (c == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!c.empty() && c != ".") {
      parts.push_back(c);
    }
    i = j + 1;
  }
  std::string out;
  for (auto& c : parts) out += "/" + c;
  return out.empty() ? "/" : out;
}

std::string real_path(const std::string& p) {
  char* r = ::realpath(p.c_str(), nullptr);
  if (!r) return std::string();
  std::string out(r);
  std::free(r);
  return out;
}

std::string parent_of(const std::string& p) {
  size_t k = p.rfind('/');
  return k == 0 || k == std::string::npos ? "/" : p.substr(0, k);
}

std::string base_of(const std::string& p) {
  size_t k = p.rfind('/');
  return k == std::string::npos ? p : p.substr(k + 1);
}

bool inside(const std::string& path, const std::string& root) {
  if (root.empty()) return false;
  if (root == "/") return true;
  return path == root || (path.size() > root.size() && path.compare(0, root.size(), root) == 0 &&
                          path[root.size()] == '/');
}

}  // namespace

CheckpointRoot resolve_root(const std::string& dir) {
  CheckpointRoot r;
  if (!dir.empty() && dir[0] == '/') {
    r.dir = normalize_abs(dir);
  } else {
    char buf[PATH_MAX];
    if (!::getcwd(buf, sizeof buf)) invalid("cannot resolve the working directory");
    r.dir = normalize_abs(std::string(buf) + "/" + dir);
  }
  struct stat st;
  if (::stat(r.dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) invalid(r.dir + ": not a checkpoint directory");
  r.real = real_path(r.dir);
  if (r.real.empty()) invalid(r.dir + ": cannot resolve the directory: " + std::strerror(errno));
  const std::string parent = parent_of(r.real);
  if (base_of(parent) == "snapshots") {
    std::string blobs = real_path(parent_of(parent) + "/blobs");
    if (!blobs.empty() && ::stat(blobs.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) r.blobs = blobs;
  }
  return r;
}

bool path_exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

CheckpointFile::~CheckpointFile() {
  if (fd >= 0) ::close(fd);
}

void open_checkpoint_file(const CheckpointRoot& root, const std::string& path, CheckpointFile& out) {
  std::string real = real_path(path);
  if (real.empty()) {
    if (errno == ENOENT) {
      struct stat st;
      invalid(path + (::lstat(path.c_str(), &st) == 0 ? ": is a symbolic link to a missing file" : ": file not found"));
    }
    invalid(path + ": cannot resolve: " + std::strerror(errno));
  }
  if (!inside(real, root.real) && !inside(real, root.blobs)) {
    invalid(path + ": resolves to " + real + ", outside the checkpoint directory " + root.real +
            (root.blobs.empty() ? "" : " (and its hub cache blobs " + root.blobs + ")") +
            "; only files inside it are read");
  }
  // O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then rejects everything that is
  // not a regular file before any read.
  int fd = ::open(real.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) invalid(path + ": cannot open: " + std::strerror(errno));
  out.fd = fd;
  struct stat st;
  if (::fstat(fd, &st) != 0) invalid(path + ": cannot stat: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) {
    const char* what = S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISDIR(st.st_mode) ? "a directory"
                     : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device" : S_ISSOCK(st.st_mode) ? "a socket"
                     : "not a regular file";
    invalid(path + ": is " + std::string(what) + "; only regular files are read");
  }
  // Regular files never block; plain reads from here on.
  int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  out.size = (int64_t)st.st_size;
}

std::string read_checkpoint_file(const CheckpointRoot& root, const std::string& path, int64_t max_bytes) {
  CheckpointFile f;
  open_checkpoint_file(root, path, f);
  if (f.size > max_bytes) {
    invalid(path + ": " + std::to_string((long long)f.size) + " bytes exceeds the limit of " +
            std::to_string((long long)max_bytes));
  }
  std::string text((size_t)f.size, '\0');
  size_t got = 0;
  while (got < text.size()) {
    ssize_t r = ::read(f.fd, &text[got], text.size() - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) invalid(path + ": cannot read: " + std::strerror(errno));
    if (r == 0) break;
    got += (size_t)r;
  }
  text.resize(got);
  return text;
}

std::string resolve_relative(const CheckpointRoot& root, const std::string& index_path,
                             const std::string& name) {
  const char* problem = nullptr;
  std::string rel;
  if (name.empty() || name.find('\0') != std::string::npos || name.find('\\') != std::string::npos) {
    problem = "is not a plain relative file name";
  } else if (name[0] == '/') {
    problem = "is an absolute path";
  } else {
    std::vector<std::string> parts;
    size_t i = 0;
    while (i <= name.size() && !problem) {
      size_t j = name.find('/', i);
      if (j == std::string::npos) j = name.size();
      std::string c = name.substr(i, j - i);
      if (c == "..") {
        if (parts.empty()) problem = "escapes the checkpoint directory";
        else parts.pop_back();
      } else if (!c.empty() && c != ".") {
        parts.push_back(c);
      }
      i = j + 1;
    }
    if (!problem && parts.empty()) problem = "escapes the checkpoint directory";
    for (auto& c : parts) rel += "/" + c;
  }
  if (problem) {
    std::string esc;
    for (char c : name.size() > 200 ? name.substr(0, 200) + "..." : name)
      esc += c == '\0' ? std::string("\\0") : std::string(1, c);
    invalid(index_path + ": shard file name '" + shorten(esc, 220) + "' " + problem);
  }
  return (root.dir == "/" ? "" : root.dir) + rel;
}

}  // namespace engine
}  // namespace lmoe
