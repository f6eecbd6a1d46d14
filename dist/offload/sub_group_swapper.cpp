// SubGroupSwapper: the buffer sets, the checks, and the read/update/write pipeline over them.
#include "dist/offload/sub_group_swapper.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>

#include "observe/trace_recorder.h"

namespace zt::offload {
namespace {

using Clock = std::chrono::steady_clock;

// "swap in sub-group 3" while the trace records, else nothing is built.
std::string traced_name(std::string_view what, size_t sub_group) {
  return observe::TraceRecorder::recording() ? fmt::format("{} {}", what, sub_group)
                                             : std::string();
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

int64_t SubGroupSwapper::min_buffer_count(int tensors_per_sub_group, bool pipeline_read,
                                          bool pipeline_write) {
  return int64_t(tensors_per_sub_group) * (1 + int(pipeline_read) + int(pipeline_write));
}

SubGroupSwapper::SubGroupSwapper(SwapStore& store, std::vector<int64_t> sub_group_numels,
                                 int tensors_per_sub_group, int64_t buffer_count,
                                 bool pipeline_read, bool pipeline_write)
    : store_(store),
      sub_group_numels_(std::move(sub_group_numels)),
      tensors_per_sub_group_(tensors_per_sub_group),
      pipeline_read_(pipeline_read),
      pipeline_write_(pipeline_write) {
  if (tensors_per_sub_group_ <= 0)
    throw std::invalid_argument(
        fmt::format("SubGroupSwapper: expected at least one tensor per sub-group, got {}",
                    tensors_per_sub_group_));
  for (size_t g = 0; g < sub_group_numels_.size(); ++g)
    if (sub_group_numels_[g] <= 0)
      throw std::invalid_argument(
          fmt::format("SubGroupSwapper: sub-group {} has {} elements (expected a positive count)",
                      g, sub_group_numels_[g]));
  int64_t needed = min_buffer_count(tensors_per_sub_group_, pipeline_read_, pipeline_write_);
  if (buffer_count < needed)
    throw std::invalid_argument(fmt::format(
        "zero_optimization.offload_optimizer.buffer_count: expected at least {}, got {} ({} "
        "swapped tensors per sub-group x {} sub-group(s) in host buffers at once: the one being "
        "updated{}{})",
        needed, buffer_count, tensors_per_sub_group_, needed / tensors_per_sub_group_,
        pipeline_read_ ? ", the next one being read (pipeline_read)" : "",
        pipeline_write_ ? ", the previous one being written (pipeline_write)" : ""));
  int64_t largest = sub_group_numels_.empty()
                        ? 0
                        : *std::max_element(sub_group_numels_.begin(), sub_group_numels_.end());
  // Every swap file reserved now: a disk too small is an error before training, not midway.
  std::vector<std::pair<std::string, int64_t>> sizes;
  for (size_t g = 0; g < sub_group_numels_.size(); ++g)
    for (int t = 0; t < tensors_per_sub_group_; ++t)
      sizes.emplace_back(key_of(g, t), sub_group_numels_[g] * int64_t(sizeof(float)));
  store_.preallocate(sizes);
  // Only the buffers the pipeline uses are allocated: a larger buffer_count is allowed (it is
  // DeepSpeed's pool size) but would only hold idle memory here.
  buffer_sets_.resize(size_t(needed / tensors_per_sub_group_));
  for (BufferSet& set : buffer_sets_)
    for (int t = 0; t < tensors_per_sub_group_; ++t)
      set.push_back(make_swap_buffer(largest, DType::f32));
}

SubGroupSwapper::~SubGroupSwapper() = default;

std::string SubGroupSwapper::key_of(size_t g, int tensor) const {
  return fmt::format("subgroup{}.tensor{}", g, tensor);
}

void SubGroupSwapper::check_values(size_t g, const std::vector<Tensor>& values,
                                   const char* what) const {
  if (g >= sub_group_count())
    throw std::out_of_range(
        fmt::format("SubGroupSwapper::{}: sub-group {} of {}", what, g, sub_group_count()));
  if (values.size() != size_t(tensors_per_sub_group_))
    throw std::invalid_argument(
        fmt::format("SubGroupSwapper::{}: sub-group {}: expected {} "
                    "tensors, got {}",
                    what, g, tensors_per_sub_group_, values.size()));
  for (const Tensor& value : values)
    if (value.dtype() != DType::f32 || value.numel() != sub_group_numels_[g] ||
        !value.is_contiguous() || !value.device().is_cpu())
      throw std::invalid_argument(fmt::format(
          "SubGroupSwapper::{}: sub-group {}: expected contiguous f32 host tensors of {} "
          "elements, got {}",
          what, g, sub_group_numels_[g], value.str()));
}

// Tickets for g's tensors to or from `buffers`.
std::vector<SwapStore::Ticket> SubGroupSwapper::start_io(size_t g, const BufferSet& buffers,
                                                         IoDirection direction) {
  std::vector<SwapStore::Ticket> tickets;
  int64_t bytes = sub_group_numels_[g] * int64_t(sizeof(float));
  for (int t = 0; t < tensors_per_sub_group_; ++t) {
    void* data = buffers[size_t(t)].raw_data();
    tickets.push_back(direction == IoDirection::read ? store_.read(key_of(g, t), data, bytes)
                                                     : store_.write(key_of(g, t), data, bytes));
    (direction == IoDirection::read ? stats_.bytes_read : stats_.bytes_written) += bytes;
  }
  return tickets;
}

void SubGroupSwapper::finish_io(std::vector<SwapStore::Ticket>& tickets) {
  auto start = Clock::now();
  // Every ticket is waited even when one fails, so that none is left writing into a buffer.
  std::exception_ptr first_failure;
  for (SwapStore::Ticket ticket : tickets) {
    try {
      store_.wait(ticket);
    } catch (const std::exception&) {
      if (!first_failure) first_failure = std::current_exception();
    }
  }
  tickets.clear();
  pipeline_stats_.io_wait_seconds += seconds_since(start);
  if (first_failure) std::rethrow_exception(first_failure);
}

// The store's busy seconds since `before`, credited to this swapper (its transfers are the
// store's only ones while it runs, as the engine uses one store per swapper).
void SubGroupSwapper::add_store_seconds(const SwapStats& before) {
  SwapStats after = store_.stats();
  stats_.read_seconds += after.read_seconds - before.read_seconds;
  stats_.write_seconds += after.write_seconds - before.write_seconds;
}

void SubGroupSwapper::store(size_t g, const std::vector<Tensor>& values) {
  check_values(g, values, "store");
  observe::TraceSpan span(
      observe::TraceRecorder::recording() ? fmt::format("swap out sub-group {}", g) : "", "swap",
      observe::TraceTrack::offload);
  SwapStats before = store_.stats();
  BufferSet& buffers = buffer_sets_[0];
  for (int t = 0; t < tensors_per_sub_group_; ++t)
    std::memcpy(buffers[size_t(t)].raw_data(), values[size_t(t)].raw_data(),
                values[size_t(t)].nbytes());
  std::vector<SwapStore::Ticket> tickets = start_io(g, buffers, IoDirection::write);
  finish_io(tickets);
  add_store_seconds(before);
}

void SubGroupSwapper::load(size_t g, const std::vector<Tensor>& into) {
  check_values(g, into, "load");
  observe::TraceSpan span(
      observe::TraceRecorder::recording() ? fmt::format("swap in sub-group {}", g) : "", "swap",
      observe::TraceTrack::offload);
  SwapStats before = store_.stats();
  BufferSet& buffers = buffer_sets_[0];
  std::vector<SwapStore::Ticket> tickets = start_io(g, buffers, IoDirection::read);
  finish_io(tickets);
  add_store_seconds(before);
  for (int t = 0; t < tensors_per_sub_group_; ++t)
    std::memcpy(into[size_t(t)].raw_data(), buffers[size_t(t)].raw_data(),
                into[size_t(t)].nbytes());
}

// Buffer set g % sets holds sub-group g. Before a set is read into, the write of the sub-group
// it held last must have ended; with one set (no pipelining) every step waits in turn.
void SubGroupSwapper::for_each(
    const std::function<void(size_t, const std::vector<Tensor>&)>& update) {
  auto started = Clock::now();
  SwapStats before = store_.stats();
  size_t count = sub_group_count(), sets = buffer_sets_.size();
  std::vector<std::vector<SwapStore::Ticket>> reads(sets), writes(sets);
  auto start_read = [&](size_t g) {
    finish_io(writes[g % sets]);
    reads[g % sets] = start_io(g, buffer_sets_[g % sets], IoDirection::read);
  };
  try {
    if (count > 0) start_read(0);
    for (size_t g = 0; g < count; ++g) {
      size_t set = g % sets;
      {
        // The trace shows the waits: a read or write overlapped by the pipeline costs no wait.
        observe::TraceSpan wait(traced_name("swap in sub-group", g), "swap",
                                observe::TraceTrack::offload);
        finish_io(reads[set]);
      }
      if (pipeline_read_ && g + 1 < count) start_read(g + 1);
      std::vector<Tensor> values;
      for (const Tensor& buffer : buffer_sets_[set])
        values.push_back(buffer.narrow(0, 0, sub_group_numels_[g]));
      auto update_started = Clock::now();
      {
        observe::TraceSpan span(traced_name("optimizer sub-group", g), "optimizer",
                                observe::TraceTrack::optimizer);
        update(g, values);
      }
      pipeline_stats_.update_seconds += seconds_since(update_started);
      writes[set] = start_io(g, buffer_sets_[set], IoDirection::write);
      if (!pipeline_write_) {
        observe::TraceSpan wait(traced_name("swap out sub-group", g), "swap",
                                observe::TraceTrack::offload);
        finish_io(writes[set]);
      }
      if (!pipeline_read_ && g + 1 < count) start_read(g + 1);
    }
    observe::TraceSpan last_writes(
        observe::TraceRecorder::recording() ? "swap out (last writes)" : "", "swap",
        observe::TraceTrack::offload);
    for (std::vector<SwapStore::Ticket>& tickets : writes) finish_io(tickets);
  } catch (...) {
    // Nothing may still move into or out of the buffers once the error leaves.
    for (auto* pending : {&reads, &writes})
      for (std::vector<SwapStore::Ticket>& tickets : *pending) try {
          finish_io(tickets);
        } catch (const std::exception&) {
        }
    throw;
  }
  add_store_seconds(before);
  pipeline_stats_.total_seconds += seconds_since(started);
  ++pipeline_stats_.passes;
}

}  // namespace zt::offload
