// All-or-nothing file writing: bytes go to a unique temporary file in the target's directory,
// which is fsynced and renamed over the target on commit(). Readers therefore see either the
// old file or the complete new one, never a torn write; an abandoned writer removes its temp.
#pragma once

#include <cstddef>
#include <string>

namespace zt {

class AtomicFileWriter {
 public:
  // Creates the temporary file; throws std::runtime_error naming `path` if it cannot.
  explicit AtomicFileWriter(std::string path);
  // Removes the temporary file unless commit() succeeded.
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t bytes);
  // fsync, close, rename into place, then fsync the directory so the rename itself is durable.
  void commit();

  const std::string& path() const { return path_; }
  size_t bytes_written() const { return bytes_written_; }

 private:
  [[noreturn]] void fail(const std::string& what);

  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  size_t bytes_written_ = 0;
  bool committed_ = false;
};

}  // namespace zt
