// The io_uring engine: intra_op_parallelism workers, each with its own ring of queue_depth
// entries, keeping up to queue_depth blocks in flight. A partial transfer (rare; the kernel may
// split one) is finished with a blocking call rather than resubmitted: simpler, and no slower
// where it never happens.
#include <liburing.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "dist/offload/io_block_queue.h"

namespace zt::offload {
namespace {

class UringFileIo final : public AsyncFileIo {
 public:
  UringFileIo(const dist::AioConfig& aio, std::vector<io_uring> rings)
      : queue_(aio.block_size), queue_depth_(size_t(aio.queue_depth)), rings_(std::move(rings)) {
    for (io_uring& ring : rings_) workers_.emplace_back([this, &ring] { run(ring); });
  }
  ~UringFileIo() override {
    queue_.stop();
    for (std::thread& worker : workers_) worker.join();
    for (io_uring& ring : rings_) io_uring_queue_exit(&ring);
  }
  JobId submit(int fd, IoDirection direction, void* buffer, int64_t bytes,
               int64_t file_offset) override {
    return queue_.submit(fd, direction, buffer, bytes, file_offset);
  }
  IoJobResult wait(JobId job) override { return queue_.wait(job); }
  std::string_view engine() const override { return "io_uring"; }

 private:
  void run(io_uring& ring) {
    std::vector<IoBlock> slots(queue_depth_);
    std::vector<size_t> free_slots;
    for (size_t slot = queue_depth_; slot-- > 0;) free_slots.push_back(slot);
    for (;;) {
      size_t in_flight = queue_depth_ - free_slots.size();
      std::vector<IoBlock> blocks = queue_.take(free_slots.size(), in_flight == 0);
      if (blocks.empty() && in_flight == 0) return;  // stopped and drained
      for (const IoBlock& block : blocks) {
        size_t slot = free_slots.back();
        free_slots.pop_back();
        slots[slot] = block;
        prepare(ring, block, slot);
      }
      if (!blocks.empty()) io_uring_submit(&ring);
      reap(ring, slots, free_slots);
    }
  }

  static void prepare(io_uring& ring, const IoBlock& block, size_t slot) {
    // The ring has queue_depth entries and at most queue_depth blocks are in flight, so an
    // entry is always free here.
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    if (block.direction == IoDirection::read)
      io_uring_prep_read(sqe, block.fd, block.buffer, unsigned(block.bytes),
                         uint64_t(block.file_offset));
    else
      io_uring_prep_write(sqe, block.fd, block.buffer, unsigned(block.bytes),
                          uint64_t(block.file_offset));
    io_uring_sqe_set_data64(sqe, slot);
  }

  // Waits for one completion, then takes every other one already there.
  void reap(io_uring& ring, std::vector<IoBlock>& slots, std::vector<size_t>& free_slots) {
    io_uring_cqe* cqe = nullptr;
    int rc;
    do {
      rc = io_uring_wait_cqe(&ring, &cqe);
    } while (rc == -EINTR);
    while (rc == 0 && cqe != nullptr) {
      size_t slot = size_t(io_uring_cqe_get_data64(cqe));
      finish(slots[slot], cqe->res);
      io_uring_cqe_seen(&ring, cqe);
      free_slots.push_back(slot);
      cqe = nullptr;
      rc = io_uring_peek_cqe(&ring, &cqe);
    }
  }

  void finish(const IoBlock& block, int result) {
    TransferOutcome outcome;
    if (result < 0) {
      outcome.error = -result;
    } else if (result == 0 || result == block.bytes) {
      outcome.bytes_done = result;  // 0: a read at the end of the file, a short read
      if (result == 0 && block.bytes > 0 && block.direction == IoDirection::write)
        outcome.error = EIO;
    } else {
      IoBlock rest = block;
      rest.buffer += result;
      rest.bytes -= result;
      rest.file_offset += result;
      outcome = transfer_blocking(rest);
      outcome.bytes_done += result;
    }
    queue_.complete(block, outcome);
  }

  IoBlockQueue queue_;
  size_t queue_depth_;
  std::vector<io_uring> rings_;
  std::vector<std::thread> workers_;
};

}  // namespace

bool io_uring_available(std::string* refusal) {
  io_uring ring;
  int rc = io_uring_queue_init(1, &ring, 0);
  if (rc < 0) {
    if (refusal != nullptr) *refusal = std::string("io_uring_queue_init: ") + std::strerror(-rc);
    return false;
  }
  io_uring_queue_exit(&ring);
  return true;
}

std::unique_ptr<AsyncFileIo> make_uring_file_io(const dist::AioConfig& aio, std::string& refusal) {
  std::vector<io_uring> rings(size_t(aio.intra_op_parallelism));
  for (size_t i = 0; i < rings.size(); ++i) {
    int rc = io_uring_queue_init(unsigned(aio.queue_depth), &rings[i], 0);
    if (rc < 0) {
      refusal = std::string("io_uring_queue_init: ") + std::strerror(-rc);
      for (size_t made = 0; made < i; ++made) io_uring_queue_exit(&rings[made]);
      return nullptr;
    }
  }
  return std::make_unique<UringFileIo>(aio, std::move(rings));
}

}  // namespace zt::offload
