// One folder of swap files of one rank, <nvme_path>/zerotrain_swap/rank<R>/<name>/, one file
// per key, read and written asynchronously through an AsyncFileIo. Swap files are scratch: the
// folder is made afresh at construction and removed at destruction, never trusted across runs.
// Invariant: a ticket's memory is 4096-aligned, holds its size rounded up to kSwapAlignment,
// and is left alone until wait() on the ticket returned.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "core/tensor.h"
#include "dist/config.h"
#include "dist/offload/async_file_io.h"

namespace zt::offload {

inline constexpr int64_t kSwapAlignment = 4096;

inline int64_t round_up_to_swap_alignment(int64_t bytes) {
  return (bytes + kSwapAlignment - 1) / kSwapAlignment * kSwapAlignment;
}

// A host tensor whose data_ptr() is kSwapAlignment-aligned and whose bytes, rounded up to
// kSwapAlignment, are all addressable, counted under MemoryTag::swap_buffer.
Tensor make_swap_buffer(int64_t numel, DType dtype);

struct SwapStats {
  int64_t bytes_read = 0, bytes_written = 0;
  // Wall seconds during which at least one read (write) was in flight: overlapping transfers
  // count once, so bytes / seconds is the throughput the store achieved.
  double read_seconds = 0, write_seconds = 0;
};

class SwapStore {
 public:
  // Makes the folder afresh. Throws std::invalid_argument naming `config_key` (e.g.
  // "zero_optimization.offload_optimizer.nvme_path") and the path when it is missing, not a
  // directory or not writable. `engine` picks the I/O engine (automatic: io_uring if allowed).
  SwapStore(const std::string& nvme_path, const std::string& config_key, const std::string& name,
            int rank, const dist::AioConfig& aio,
            IoEngineChoice engine = IoEngineChoice::automatic);
  ~SwapStore();  // waits for what is in flight, then removes its folder
  SwapStore(const SwapStore&) = delete;
  SwapStore& operator=(const SwapStore&) = delete;

  using Ticket = uint64_t;
  // Asynchronous: `bytes` (any size; the store pads to the alignment) of 4096-aligned host
  // memory to / from the file of `key` (letters, digits, '.', '_', '-'). wait() ends one,
  // throwing std::runtime_error naming the file and the reason (ENOSPC: "No space left on
  // device"; a file shorter than the read: "short read") on failure; read() of a key never
  // written throws at once, naming the file.
  Ticket write(const std::string& key, const void* data, int64_t bytes);
  Ticket read(const std::string& key, void* data, int64_t bytes);
  void wait(Ticket ticket);
  void wait_all();  // every ticket not yet waited; throws the first failure after all ended

  SwapStats stats() const;
  std::string_view engine() const;  // "io_uring" or "O_DIRECT thread pool"
  // Whether files are opened with O_DIRECT (false where the filesystem refuses it, e.g. tmpfs
  // on older kernels: then the page cache sits between the store and the disk).
  bool direct_io() const { return direct_io_; }
  // "io_uring, O_DIRECT", "O_DIRECT thread pool", or either with ", buffered (...)".
  std::string describe() const;
  const std::string& folder() const { return folder_; }
  std::string path_of(const std::string& key) const;
  // Tickets issued and not yet waited, per direction: what the pipeline has in flight.
  size_t pending_reads() const { return pending_count(IoDirection::read); }
  size_t pending_writes() const { return pending_count(IoDirection::write); }

 private:
  struct Pending {
    AsyncFileIo::JobId job;
    IoDirection direction;
    std::string path;
    int64_t bytes;
  };
  Ticket submit(const std::string& key, IoDirection direction, void* data, int64_t bytes);
  int file_of(const std::string& key, IoDirection direction);
  void account(const Pending& pending, const IoJobResult& result);
  size_t pending_count(IoDirection direction) const;

  std::string folder_;
  bool direct_io_ = true;
  std::unique_ptr<AsyncFileIo> io_;
  mutable std::mutex mutex_;
  std::map<std::string, int> files_;  // key -> open descriptor
  std::map<Ticket, Pending> pending_;
  Ticket next_ticket_ = 1;
  SwapStats stats_;
  // The end of the last read (write) interval counted into stats_, so overlaps count once.
  std::chrono::steady_clock::time_point read_covered_until_{}, write_covered_until_{};
};

}  // namespace zt::offload
