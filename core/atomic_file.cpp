// AtomicFileWriter over POSIX open/write/fsync/rename. The temporary name carries the pid and a
// per-process counter, so concurrent writers (threads or ranks) of one target never collide.
#include "core/atomic_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace zt {

static std::string errno_text() {
  return std::strerror(errno);
}

static std::string directory_of(const std::string& path) {
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

AtomicFileWriter::AtomicFileWriter(std::string path) : path_(std::move(path)) {
  static std::atomic<uint64_t> writer_counter{0};
  temp_path_ = fmt::format("{}.tmp.{}.{}", path_, ::getpid(), writer_counter.fetch_add(1));
  fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    throw std::runtime_error(
        fmt::format("{}: cannot create temporary file {}: {}", path_, temp_path_, errno_text()));
  }
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_path_.c_str());
}

void AtomicFileWriter::fail(const std::string& what) {
  std::string message = fmt::format("{}: {}: {}", path_, what, errno_text());
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ::unlink(temp_path_.c_str());
  committed_ = true;  // nothing left for the destructor to clean up
  throw std::runtime_error(message);
}

void AtomicFileWriter::write(const void* data, size_t bytes) {
  if (fd_ < 0) throw std::logic_error(path_ + ": write after commit or failure");
  const char* cursor = static_cast<const char*>(data);
  while (bytes > 0) {
    ssize_t written = ::write(fd_, cursor, bytes);
    if (written < 0) {
      if (errno == EINTR) continue;
      fail(fmt::format("writing {} bytes at offset {} failed", bytes, bytes_written_));
    }
    cursor += written;
    bytes -= size_t(written);
    bytes_written_ += size_t(written);
  }
}

void AtomicFileWriter::commit() {
  if (fd_ < 0) throw std::logic_error(path_ + ": commit after commit or failure");
  if (::fsync(fd_) != 0) fail("fsync failed");
  if (::close(fd_) != 0) {
    fd_ = -1;
    fail("close failed");
  }
  fd_ = -1;
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0)
    fail("rename from " + temp_path_ + " failed");
  committed_ = true;
  // Without this the rename may be lost on power failure even though the data is on disk.
  int directory_fd = ::open(directory_of(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (directory_fd >= 0) {
    ::fsync(directory_fd);
    ::close(directory_fd);
  }
}

}  // namespace zt
