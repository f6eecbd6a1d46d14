// What the swap tests share: a scratch folder removed afterwards, random bytes, the engines
// this machine can run (io_uring only where the kernel allows it) and a small tmpfs for a full
// disk (where this process may mount one).
#pragma once

#include <doctest/doctest.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/resource.h>

#include <csignal>

#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "dist/offload/async_file_io.h"

namespace zt::testing {

class ScratchFolder {
 public:
  ScratchFolder() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "zerotrain_swap_test_XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~ScratchFolder() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScratchFolder(const ScratchFolder&) = delete;
  ScratchFolder& operator=(const ScratchFolder&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline std::vector<uint8_t> random_bytes(int64_t count, uint32_t seed) {
  std::mt19937 generator(seed);
  std::vector<uint8_t> bytes(static_cast<size_t>(count));
  for (uint8_t& byte : bytes) byte = uint8_t(generator());
  return bytes;
}

// The engines to test here: the thread pool always, io_uring where the kernel allows it (a
// refused io_uring is tested by forcing the thread pool, the path such kernels take).
inline std::vector<offload::IoEngineChoice> engines_here() {
  std::vector<offload::IoEngineChoice> engines{offload::IoEngineChoice::thread_pool};
  if (offload::io_uring_available()) engines.push_back(offload::IoEngineChoice::io_uring);
  return engines;
}

inline std::string engine_name(offload::IoEngineChoice choice) {
  return choice == offload::IoEngineChoice::io_uring ? "io_uring" : "thread pool";
}

// A tmpfs of `size` mounted on a fresh scratch folder while this lives; mounted() is false
// where this process may not mount (not root, or a container without CAP_SYS_ADMIN).
class SmallTmpfs {
 public:
  explicit SmallTmpfs(const std::string& options) {
    mounted_ = ::mount("tmpfs", folder_.path().c_str(), "tmpfs", 0, options.c_str()) == 0;
  }
  ~SmallTmpfs() {
    if (mounted_) ::umount(folder_.path().c_str());
  }
  bool mounted() const { return mounted_; }
  const std::string& path() const { return folder_.path(); }

 private:
  ScratchFolder folder_;
  bool mounted_ = false;
};

// Lowers this process's file size limit while it lives (bytes < 0: leaves it), with SIGXFSZ
// ignored so that a write past it fails with EFBIG instead of ending the process.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(int64_t bytes) : active_(bytes >= 0) {
    if (!active_) return;
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved_) == 0);
    previous_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit lowered = saved_;
    lowered.rlim_cur = rlim_t(bytes);
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &lowered) == 0);
  }
  ~FileSizeLimit() {
    if (!active_) return;
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, previous_handler_);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

 private:
  bool active_;
  rlimit saved_{};
  void (*previous_handler_)(int) = nullptr;
};

}  // namespace zt::testing
