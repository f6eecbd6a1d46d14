// What both AsyncFileIo engines share: jobs cut into blocks, one queue of blocks the workers
// take from, each job's outcome gathered as its blocks finish, and the blocking transfer of
// one block (the thread pool's whole work, io_uring's fallback for a partial transfer).
// Invariant: a job is complete when its last block was completed; wait() forgets it.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "dist/offload/async_file_io.h"

namespace zt::offload {

struct IoBlock {
  uint64_t job = 0;
  int fd = -1;
  IoDirection direction = IoDirection::read;
  char* buffer = nullptr;
  int64_t bytes = 0;
  int64_t file_offset = 0;
};

// The outcome of a blocking transfer: errno (0 if none) and the bytes moved.
struct TransferOutcome {
  int error = 0;
  int64_t bytes_done = 0;
};

// pread/pwrite until the block is done, the file ends (a read returns 0) or an error.
TransferOutcome transfer_blocking(const IoBlock& block);

class IoBlockQueue {
 public:
  explicit IoBlockQueue(int64_t block_bytes) : block_bytes_(block_bytes) {}
  uint64_t submit(int fd, IoDirection direction, void* buffer, int64_t bytes, int64_t file_offset);
  IoJobResult wait(uint64_t job);
  // Up to `max_blocks` blocks. Blocks while none is queued if `block_if_empty`; returns none
  // once stop() was called and the queue is empty.
  std::vector<IoBlock> take(size_t max_blocks, bool block_if_empty);
  void complete(const IoBlock& block, const TransferOutcome& outcome);
  void stop();

 private:
  struct Job {
    int64_t blocks_left = 0;
    IoJobResult result;
    bool done = false;
  };
  const int64_t block_bytes_;
  std::mutex mutex_;
  std::condition_variable work_ready_, job_done_;
  std::deque<IoBlock> queue_;
  std::unordered_map<uint64_t, Job> jobs_;
  uint64_t next_job_ = 1;
  bool stopping_ = false;
};

// The engines, built by make_async_file_io. make_uring_file_io returns null when the kernel
// refuses io_uring, with the reason in `refusal`.
std::unique_ptr<AsyncFileIo> make_thread_pool_file_io(const dist::AioConfig& aio);
std::unique_ptr<AsyncFileIo> make_uring_file_io(const dist::AioConfig& aio, std::string& refusal);

}  // namespace zt::offload
