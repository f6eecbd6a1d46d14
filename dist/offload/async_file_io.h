// Asynchronous reads and writes of large transfers between aligned host memory and files, cut
// into aio.block_size blocks and spread over aio.intra_op_parallelism workers with up to
// aio.queue_depth blocks in flight each. Two engines behind one interface: io_uring, and where
// io_uring_queue_init is refused (containers often forbid it) blocking pread/pwrite on a thread
// pool. Invariant: a job's buffer stays valid and untouched by its owner until wait() returned.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "dist/config.h"

namespace zt::offload {

enum class IoDirection { read, write };

// Which engine make_async_file_io builds. `automatic`: io_uring unless the environment variable
// ZT_AIO_ENGINE is "thread_pool" or the kernel refuses io_uring.
enum class IoEngineChoice { automatic, io_uring, thread_pool };

struct IoJobResult {
  int error = 0;           // errno of the first failed block; 0 when every block succeeded
  int64_t bytes_done = 0;  // below the job's size on a short read (the file ended early)
  std::chrono::steady_clock::time_point submitted;
  std::chrono::steady_clock::time_point completed;  // when its last block finished
};

class AsyncFileIo {
 public:
  using JobId = uint64_t;
  virtual ~AsyncFileIo() = default;
  // Starts moving `bytes` between `buffer` and `fd` at `file_offset`. For O_DIRECT files the
  // buffer, size and offset must be multiples of the filesystem's block (4096 always is).
  virtual JobId submit(int fd, IoDirection direction, void* buffer, int64_t bytes,
                       int64_t file_offset) = 0;
  // Blocks until the job ended and forgets it; each job is waited exactly once.
  virtual IoJobResult wait(JobId job) = 0;
  virtual std::string_view engine() const = 0;  // "io_uring" or "O_DIRECT thread pool"
};

// Whether this kernel lets this process make an io_uring; if not, `refusal` says why.
bool io_uring_available(std::string* refusal = nullptr);

// Throws std::runtime_error when `choice` is io_uring and the kernel refuses it, and
// std::invalid_argument naming the aio key when a size in `aio` is not positive.
std::unique_ptr<AsyncFileIo> make_async_file_io(const dist::AioConfig& aio,
                                                IoEngineChoice choice = IoEngineChoice::automatic);

}  // namespace zt::offload
