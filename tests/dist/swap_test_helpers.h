// What the swap tests share: a scratch folder removed afterwards, random bytes, the engines
// this machine can run (io_uring only where the kernel allows it) and a small tmpfs for a full
// disk (where this process may mount one).
#pragma once

#include <doctest/doctest.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <csignal>
#include <cstddef>
#include <exception>
#include <functional>
#include <thread>

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

// A memory filesystem (tmpfs with `options` such as "size=1m", or ramfs, which refuses O_DIRECT)
// mounted on a fresh scratch folder while this lives; mounted() is false where this process may
// not mount (not root, or a container without CAP_SYS_ADMIN).
class SmallTmpfs {
 public:
  explicit SmallTmpfs(const std::string& options, const char* type = "tmpfs") {
    mounted_ = ::mount(type, folder_.path().c_str(), type, 0, options.c_str()) == 0;
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

// Runs `body` on a thread of its own on which the system call `number` fails with EPERM (as
// io_uring_setup does in containers whose seccomp profile forbids io_uring). The filter stays
// with that thread and the threads it starts; the rest of the process is unaffected. Returns
// false where no filter can be set.
inline bool run_with_system_call_refused(long number, const std::function<void()>& body) {
  bool filtered = false;
  std::exception_ptr failure;
  std::thread thread([&] {
    sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(number), 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog program{static_cast<unsigned short>(sizeof(filter) / sizeof(filter[0])), filter};
    filtered = ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
               ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) == 0;
    if (!filtered) return;
    try {
      body();
    } catch (...) {
      failure = std::current_exception();
    }
  });
  thread.join();
  if (failure) std::rethrow_exception(failure);
  return filtered;
}

// Whether this process may mount a memory filesystem (tried once, on a scratch folder): the
// cases that need one are skipped, and counted so, where it may not.
inline bool may_mount_memory_filesystems() {
  static const bool allowed = [] {
    char pattern[] = "/tmp/zerotrain_mount_probe_XXXXXX";
    if (mkdtemp(pattern) == nullptr) return false;
    bool mounted = ::mount("tmpfs", pattern, "tmpfs", 0, "size=64k") == 0;
    if (mounted) ::umount(pattern);
    ::rmdir(pattern);
    return mounted;
  }();
  return allowed;
}

// Whether a thread may install a seccomp filter (the io_uring refusal needs one).
inline bool may_filter_system_calls() {
  static const bool allowed = run_with_system_call_refused(__NR_io_uring_setup, [] {});
  return allowed;
}

}  // namespace zt::testing
