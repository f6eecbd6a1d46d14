// Owned parameter slices in swap files (dist/zero/parameter_swap.h).
#include "dist/zero/parameter_swap.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "core/ops/view.h"
#include "observe/trace_recorder.h"

namespace zt::dist {
namespace {

std::string key_of(size_t group) {
  return fmt::format("group{}", group);
}

}  // namespace

ParameterSwap::ParameterSwap(const Config& config, int rank, FlatGroupList& groups)
    : groups_(groups),
      swapped_(groups.size(), false),
      holder_(groups.size(), -1),
      reading_(groups.size(), false),
      tickets_(groups.size(), 0) {
  const OffloadConfig& offload = config.zero_optimization.offload_param;
  int64_t in_cpu = 0, largest = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    FlatGroupBuffers& group = *groups_[g];
    if (!group.plan.partitioned) continue;
    int64_t numel = group.owned_params.numel();
    if (in_cpu + numel <= offload.max_in_cpu) {
      in_cpu += numel;  // stays in host memory
      continue;
    }
    if (numel > offload.buffer_size) {
      throw std::invalid_argument(fmt::format(
          "{}: zero_optimization.offload_param.buffer_size: module '{}' owns a slice of {} "
          "elements per rank, but a swap buffer holds {} (raise buffer_size to at least {})",
          config.source_name, group.plan.module_name, numel, offload.buffer_size, numel));
    }
    swapped_[g] = true;
    largest = std::max(largest, numel);
  }
  if (largest == 0) return;
  store_ = std::make_unique<offload::SwapStore>(
      offload.nvme_path, "zero_optimization.offload_param.nvme_path", "params", rank, config.aio);
  DType dtype = DType::f32;
  for (size_t g = 0; g < groups_.size(); ++g) {
    if (!swapped_[g]) continue;
    FlatGroupBuffers& group = *groups_[g];
    dtype = group.owned_params.dtype();
    Tensor staged = offload::make_swap_buffer(group.owned_params.numel(), dtype);
    ops::copy_(ops::narrow(staged, 0, 0, group.owned_params.numel()), group.owned_params);
    store_->wait(store_->write(key_of(g), staged.raw_data(), group.owned_params.nbytes()));
    file_bytes_ += group.owned_params.nbytes();
    group.owned_params = Tensor();
  }
  for (int64_t b = 0; b < offload.buffer_count; ++b) {
    buffers_.push_back(offload::make_swap_buffer(largest, dtype));
    buffer_taken_.push_back(false);
  }
}

ParameterSwap::~ParameterSwap() {
  for (size_t g = 0; g < groups_.size(); ++g) {
    if (!reading_[g]) continue;
    try {
      store_->wait(tickets_[g]);
    } catch (const std::exception&) {
      // Scratch: nothing reads this buffer again.
    }
  }
}

size_t ParameterSwap::free_buffers() const {
  return size_t(std::count(buffer_taken_.begin(), buffer_taken_.end(), false));
}

Tensor ParameterSwap::slice_in(size_t buffer, size_t group) const {
  return ops::narrow(buffers_[buffer], 0, 0, groups_[group]->plan.slice_numel());
}

size_t ParameterSwap::take_free_buffer() {
  size_t b =
      size_t(std::find(buffer_taken_.begin(), buffer_taken_.end(), false) - buffer_taken_.begin());
  buffer_taken_[b] = true;
  return b;
}

void ParameterSwap::land_read(size_t group) {
  if (!reading_[group]) return;
  reading_[group] = false;
  observe::TraceSpan span(
      observe::TraceRecorder::recording()
          ? fmt::format("swap in params {} (read ahead)", groups_[group]->plan.module_name)
          : "",
      "swap", observe::TraceTrack::offload);
  store_->wait(tickets_[group]);
}

void ParameterSwap::read_ahead(size_t group) {
  if (!swapped(group) || is_in(group) || free_buffers() < 2) return;
  size_t b = take_free_buffer();
  Tensor slice = slice_in(b, group);
  tickets_[group] = store_->read(key_of(group), slice.raw_data(), slice.nbytes());
  reading_[group] = true;
  holder_[group] = int(b);
  reads_ahead_ += 1;
}

// A read ahead whose group nobody asked for yet gives its buffer back.
bool ParameterSwap::drop_a_read_ahead() {
  for (size_t g = 0; g < groups_.size(); ++g) {
    if (!reading_[g] && !(is_in(g) && !groups_[g]->owned_params.defined())) continue;
    land_read(g);
    buffer_taken_[size_t(holder_[g])] = false;
    holder_[g] = -1;
    return true;
  }
  return false;
}

void ParameterSwap::bring_in(size_t group_index, const std::function<void()>& make_room) {
  if (!swapped(group_index)) return;
  FlatGroupBuffers& group = *groups_[group_index];
  if (is_in(group_index)) {
    land_read(group_index);
    group.owned_params = slice_in(size_t(holder_[group_index]), group_index);
    return;
  }
  while (free_buffers() == 0) {
    size_t before = free_buffers();
    make_room();
    if (free_buffers() == before && !drop_a_read_ahead()) {
      throw std::logic_error(fmt::format(
          "offload_param: every one of the {} swap buffers is in use and none could be freed "
          "for module '{}' (zero_optimization.offload_param.buffer_count)",
          buffers_.size(), group.plan.module_name));
    }
  }
  size_t b = take_free_buffer();
  Tensor slice = slice_in(b, group_index);
  observe::TraceSpan span(observe::TraceRecorder::recording()
                              ? fmt::format("swap in params {}", group.plan.module_name)
                              : "",
                          "swap", observe::TraceTrack::offload);
  store_->wait(store_->read(key_of(group_index), slice.raw_data(), slice.nbytes()));
  holder_[group_index] = int(b);
  group.owned_params = slice;
}

void ParameterSwap::send_out(size_t group_index, bool changed) {
  if (!is_in(group_index)) return;
  land_read(group_index);
  FlatGroupBuffers& group = *groups_[group_index];
  if (changed && group.owned_params.defined()) {
    observe::TraceSpan span(observe::TraceRecorder::recording()
                                ? fmt::format("swap out params {}", group.plan.module_name)
                                : "",
                            "swap", observe::TraceTrack::offload);
    store_->wait(store_->write(key_of(group_index), group.owned_params.raw_data(),
                               group.owned_params.nbytes()));
  }
  buffer_taken_[size_t(holder_[group_index])] = false;
  holder_[group_index] = -1;
  group.owned_params = Tensor();
}

}  // namespace zt::dist
