// SwapStore: the folder of one rank's swap files, its checks, and tickets over AsyncFileIo.
#include "dist/offload/swap_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>

#include <fmt/format.h>

#include "core/factory.h"

namespace zt::offload {
namespace fs = std::filesystem;

Tensor make_swap_buffer(int64_t numel, DType dtype) {
  if (numel < 0) throw std::invalid_argument("make_swap_buffer: negative element count");
  int64_t element_bytes = int64_t(dtype_size(dtype));
  int64_t padded_bytes = round_up_to_swap_alignment(numel * element_bytes);
  // The allocator aligns to kAllocationAlignment; over-allocate so that an aligned start with
  // padded_bytes after it always exists. Both alignments are multiples of every element size.
  int64_t slack_bytes = kSwapAlignment - int64_t(kAllocationAlignment);
  int64_t total_elems = (padded_bytes + slack_bytes) / element_bytes;
  Tensor whole =
      empty({total_elems}, TensorOptions().with_dtype(dtype).with_tag(MemoryTag::swap_buffer));
  auto address = reinterpret_cast<uintptr_t>(whole.raw_data());
  int64_t skip_bytes =
      int64_t((uintptr_t(kSwapAlignment) - address % kSwapAlignment) % uintptr_t(kSwapAlignment));
  return whole.narrow(0, skip_bytes / element_bytes, numel);
}

namespace {

std::string checked_folder(const std::string& nvme_path, const std::string& config_key,
                           const std::string& name, int rank) {
  std::error_code error;
  if (nvme_path.empty())
    throw std::invalid_argument(config_key + ": expected a folder for swap files, got none");
  fs::file_status status = fs::status(nvme_path, error);
  if (!fs::exists(status))
    throw std::invalid_argument(
        fmt::format("{}: '{}' does not exist (expected a writable folder)", config_key, nvme_path));
  if (!fs::is_directory(status))
    throw std::invalid_argument(fmt::format(
        "{}: '{}' is not a directory (expected a writable folder)", config_key, nvme_path));
  fs::path folder = fs::path(nvme_path) / "zerotrain_swap" / fmt::format("rank{}", rank) / name;
  // Swap files are scratch: whatever an earlier run left is removed, never read.
  fs::remove_all(folder, error);
  fs::create_directories(folder, error);
  if (error || ::access(folder.c_str(), W_OK) != 0)
    throw std::invalid_argument(fmt::format("{}: '{}' is not writable (making {}: {})", config_key,
                                            nvme_path, folder.string(),
                                            error ? error.message() : std::strerror(errno)));
  return folder.string();
}

// Whether the folder's filesystem takes O_DIRECT (tmpfs on older kernels does not: EINVAL).
bool probe_direct_io(const std::string& folder, const std::string& config_key) {
  std::string probe = folder + "/.direct_io_probe";
  int fd = ::open(probe.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC, 0600);
  bool direct = fd >= 0;
  if (fd < 0) fd = ::open(probe.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    throw std::invalid_argument(fmt::format("{}: cannot create a file in '{}': {}", config_key,
                                            folder, std::strerror(errno)));
  ::close(fd);
  ::unlink(probe.c_str());
  return direct;
}

bool valid_key(const std::string& key) {
  if (key.empty()) return false;
  for (char c : key)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'))
      return false;
  return key != "." && key != "..";
}

double seconds_between(std::chrono::steady_clock::time_point from,
                       std::chrono::steady_clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

}  // namespace

SwapStore::SwapStore(const std::string& nvme_path, const std::string& config_key,
                     const std::string& name, int rank, const dist::AioConfig& aio,
                     IoEngineChoice engine)
    : folder_(checked_folder(nvme_path, config_key, name, rank)),
      direct_io_(probe_direct_io(folder_, config_key)),
      io_(make_async_file_io(aio, engine)) {}

SwapStore::~SwapStore() {
  try {
    wait_all();
  } catch (const std::exception&) {
    // A failed transfer was the owner's to see; the files are scratch either way.
  }
  for (auto& [key, fd] : files_) ::close(fd);
  std::error_code ignored;
  fs::remove_all(folder_, ignored);
}

std::string SwapStore::path_of(const std::string& key) const {
  return folder_ + "/" + key;
}

int SwapStore::file_of(const std::string& key, IoDirection direction) {
  if (!valid_key(key))
    throw std::invalid_argument(
        fmt::format("SwapStore: key '{}': expected letters, digits, '.', '_' or '-'", key));
  auto found = files_.find(key);
  if (found != files_.end()) return found->second;
  std::string path = path_of(key);
  int flags = O_RDWR | O_CLOEXEC | (direct_io_ ? O_DIRECT : 0);
  if (direction == IoDirection::write) flags |= O_CREAT;
  int fd = ::open(path.c_str(), flags, 0600);
  if (fd < 0)
    throw std::runtime_error(fmt::format("swap file {}: {}{}", path, std::strerror(errno),
                                         direction == IoDirection::read && errno == ENOENT
                                             ? " (read before it was ever written)"
                                             : ""));
  files_.emplace(key, fd);
  return fd;
}

SwapStore::Ticket SwapStore::write(const std::string& key, const void* data, int64_t bytes) {
  // The engine only reads this memory for a write.
  return submit(key, IoDirection::write, const_cast<void*>(data), bytes);
}

SwapStore::Ticket SwapStore::read(const std::string& key, void* data, int64_t bytes) {
  return submit(key, IoDirection::read, data, bytes);
}

SwapStore::Ticket SwapStore::submit(const std::string& key, IoDirection direction, void* data,
                                    int64_t bytes) {
  if (bytes < 0)
    throw std::invalid_argument(fmt::format("SwapStore: key '{}': negative size {}", key, bytes));
  if (reinterpret_cast<uintptr_t>(data) % uintptr_t(kSwapAlignment) != 0)
    throw std::invalid_argument(fmt::format(
        "SwapStore: key '{}': memory at {} is not {}-byte aligned (use make_swap_buffer)", key,
        data, kSwapAlignment));
  std::lock_guard lock(mutex_);
  int fd = file_of(key, direction);
  int64_t padded = round_up_to_swap_alignment(bytes);
  AsyncFileIo::JobId job = io_->submit(fd, direction, data, padded, 0);
  Ticket ticket = next_ticket_++;
  pending_.emplace(ticket, Pending{job, direction, path_of(key), padded});
  return ticket;
}

void SwapStore::wait(Ticket ticket) {
  Pending pending;
  {
    std::lock_guard lock(mutex_);
    auto found = pending_.find(ticket);
    if (found == pending_.end())
      throw std::logic_error(fmt::format("SwapStore::wait: ticket {} unknown or waited", ticket));
    pending = found->second;
    pending_.erase(found);
  }
  IoJobResult result = io_->wait(pending.job);
  std::lock_guard lock(mutex_);
  account(pending, result);
  const char* verb = pending.direction == IoDirection::read ? "reading" : "writing";
  if (result.error != 0)
    throw std::runtime_error(fmt::format("swap file {}: {} {} bytes failed: {}", pending.path, verb,
                                         pending.bytes, std::strerror(result.error)));
  if (result.bytes_done != pending.bytes)
    throw std::runtime_error(
        fmt::format("swap file {}: short read: got {} of {} bytes (was the file truncated?)",
                    pending.path, result.bytes_done, pending.bytes));
}

void SwapStore::wait_all() {
  std::vector<Ticket> tickets;
  {
    std::lock_guard lock(mutex_);
    for (const auto& entry : pending_) tickets.push_back(entry.first);
  }
  std::exception_ptr first_failure;
  for (Ticket ticket : tickets) {
    try {
      wait(ticket);
    } catch (const std::runtime_error&) {
      if (!first_failure) first_failure = std::current_exception();
    }
  }
  if (first_failure) std::rethrow_exception(first_failure);
}

// Busy time: each transfer's [submitted, completed] interval, overlaps counted once. Intervals
// arrive about in submission order (waits follow submissions), which this union assumes.
void SwapStore::account(const Pending& pending, const IoJobResult& result) {
  bool reading = pending.direction == IoDirection::read;
  auto& covered_until = reading ? read_covered_until_ : write_covered_until_;
  double& seconds = reading ? stats_.read_seconds : stats_.write_seconds;
  auto start = std::max(result.submitted, covered_until);
  if (result.completed > start) {
    seconds += seconds_between(start, result.completed);
    covered_until = result.completed;
  }
  (reading ? stats_.bytes_read : stats_.bytes_written) += result.bytes_done;
}

SwapStats SwapStore::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

std::string_view SwapStore::engine() const {
  return io_->engine();
}

std::string SwapStore::describe() const {
  if (!direct_io_) return fmt::format("{}, buffered (the filesystem refuses O_DIRECT)", engine());
  return engine() == "io_uring" ? "io_uring, O_DIRECT" : std::string(engine());
}

size_t SwapStore::pending_count(IoDirection direction) const {
  std::lock_guard lock(mutex_);
  size_t count = 0;
  for (const auto& entry : pending_) count += entry.second.direction == direction;
  return count;
}

}  // namespace zt::offload
