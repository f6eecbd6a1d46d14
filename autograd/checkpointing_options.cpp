// The process-wide checkpointing options and profile counters, each behind its own mutex so that
// ranks run as threads (and tests) read a consistent snapshot.
#include "autograd/checkpointing_options.h"

#include <mutex>
#include <stdexcept>
#include <string>

#include "autograd/checkpoint_storage.h"

namespace zt {

namespace {

std::mutex options_mutex;
CheckpointingOptions current_options;

std::mutex profile_mutex;
CheckpointingProfile current_profile;

}  // namespace

void configure_checkpointing(const CheckpointingOptions& options) {
  if (options.contiguous_memory_optimization && options.number_checkpoints <= 0) {
    throw std::invalid_argument(
        "configure_checkpointing: contiguous_memory_optimization needs number_checkpoints > 0 "
        "(the number of checkpoints the buffer holds), got " +
        std::to_string(options.number_checkpoints));
  }
  {
    std::lock_guard lock(options_mutex);
    current_options = options;
  }
  release_contiguous_checkpoint_buffers();
}

CheckpointingOptions checkpointing_options() {
  std::lock_guard lock(options_mutex);
  return current_options;
}

CheckpointingProfile checkpointing_profile() {
  std::lock_guard lock(profile_mutex);
  return current_profile;
}

void reset_checkpointing_profile() {
  std::lock_guard lock(profile_mutex);
  current_profile = CheckpointingProfile{};
}

void record_recomputation(double seconds) {
  std::lock_guard lock(profile_mutex);
  current_profile.recompute_seconds += seconds;
  current_profile.recompute_count += 1;
}

}  // namespace zt
