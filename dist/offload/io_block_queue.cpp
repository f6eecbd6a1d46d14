// The job and block bookkeeping both AsyncFileIo engines share, and the blocking transfer.
#include "dist/offload/io_block_queue.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>

namespace zt::offload {

TransferOutcome transfer_blocking(const IoBlock& block) {
  TransferOutcome outcome;
  while (outcome.bytes_done < block.bytes) {
    char* at = block.buffer + outcome.bytes_done;
    size_t left = size_t(block.bytes - outcome.bytes_done);
    off_t offset = off_t(block.file_offset + outcome.bytes_done);
    ssize_t moved = block.direction == IoDirection::read ? ::pread(block.fd, at, left, offset)
                                                         : ::pwrite(block.fd, at, left, offset);
    if (moved < 0) {
      if (errno == EINTR) continue;
      outcome.error = errno;
      break;
    }
    if (moved == 0) {
      // A read at the end of the file: a short read, judged by the caller. A write that moves
      // nothing would loop forever; the kernel reports a full disk as ENOSPC, so this is EIO.
      if (block.direction == IoDirection::write) outcome.error = EIO;
      break;
    }
    outcome.bytes_done += moved;
  }
  return outcome;
}

uint64_t IoBlockQueue::submit(int fd, IoDirection direction, void* buffer, int64_t bytes,
                              int64_t file_offset) {
  if (bytes < 0) throw std::invalid_argument("AsyncFileIo: negative transfer size");
  std::lock_guard lock(mutex_);
  uint64_t id = next_job_++;
  Job& job = jobs_[id];
  job.result.submitted = std::chrono::steady_clock::now();
  for (int64_t start = 0; start < bytes; start += block_bytes_) {
    queue_.push_back(IoBlock{id, fd, direction, static_cast<char*>(buffer) + start,
                             std::min(block_bytes_, bytes - start), file_offset + start});
    ++job.blocks_left;
  }
  if (job.blocks_left == 0) {
    job.done = true;
    job.result.completed = job.result.submitted;
  }
  work_ready_.notify_all();
  return id;
}

IoJobResult IoBlockQueue::wait(uint64_t id) {
  std::unique_lock lock(mutex_);
  auto found = jobs_.find(id);
  if (found == jobs_.end()) throw std::logic_error("AsyncFileIo::wait: unknown or waited job");
  job_done_.wait(lock, [&] { return found->second.done; });
  IoJobResult result = found->second.result;
  jobs_.erase(found);
  return result;
}

std::vector<IoBlock> IoBlockQueue::take(size_t max_blocks, bool block_if_empty) {
  std::unique_lock lock(mutex_);
  if (block_if_empty) work_ready_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
  std::vector<IoBlock> blocks;
  while (blocks.size() < max_blocks && !queue_.empty()) {
    blocks.push_back(queue_.front());
    queue_.pop_front();
  }
  return blocks;
}

void IoBlockQueue::complete(const IoBlock& block, const TransferOutcome& outcome) {
  std::lock_guard lock(mutex_);
  Job& job = jobs_.at(block.job);
  job.result.bytes_done += outcome.bytes_done;
  if (job.result.error == 0) job.result.error = outcome.error;
  if (--job.blocks_left == 0) {
    job.done = true;
    job.result.completed = std::chrono::steady_clock::now();
    job_done_.notify_all();
  }
}

void IoBlockQueue::stop() {
  std::lock_guard lock(mutex_);
  stopping_ = true;
  work_ready_.notify_all();
}

}  // namespace zt::offload
