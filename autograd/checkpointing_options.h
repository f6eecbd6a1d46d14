// The process-wide activation-checkpointing configuration, what deepspeed.checkpointing.configure
// sets: zt::checkpoint reads it when a checkpoint is made (where its inputs are kept) and when it
// is recomputed (whether to profile). zt::initialize applies a ds_config's activation_checkpointing
// block here. Invariant: a checkpoint node keeps the placement it was made with, so changing the
// options between forward and backward never loses or misplaces saved inputs.
#pragma once

#include <cstdint>

namespace zt {

struct CheckpointingOptions {
  // DeepSpeed splits saved inputs across model-parallel ranks; with tensor parallel size 1 there
  // is nothing to split, so it only gates the keys below (as the config rules require).
  bool partition_activations = false;
  // Saved inputs go to host memory under MemoryTag::activation_offload and are copied back to
  // their device and tag for the recomputation.
  bool cpu_checkpointing = false;
  // Saved inputs of successive checkpoints are copied into one buffer preallocated for
  // number_checkpoints checkpoints and reused from forward to forward (see checkpoint_storage.h).
  bool contiguous_memory_optimization = false;
  // Waits for the device's queued work at each checkpoint boundary (entering and leaving a
  // checkpointed piece, before its recomputation and after its nested backward), as DeepSpeed
  // does. A no-op on the CPU, whose kernels have finished when they return.
  bool synchronize_checkpoint_boundary = false;
  // Recomputation time and count accumulate in checkpointing_profile().
  bool profile = false;
  int64_t number_checkpoints = 0;  // 0: unset; sizes the contiguous buffer
};

// Replaces the options (thread-safe); also drops the contiguous buffers, as DeepSpeed's
// configure starts from fresh state. Throws std::invalid_argument naming the option when
// contiguous_memory_optimization is set without number_checkpoints > 0.
void configure_checkpointing(const CheckpointingOptions& options);
CheckpointingOptions checkpointing_options();

// What profiling measured since the last reset: wall time spent re-running checkpointed
// functions in backward, and how many re-runs.
struct CheckpointingProfile {
  double recompute_seconds = 0.0;
  int64_t recompute_count = 0;
};
CheckpointingProfile checkpointing_profile();
void reset_checkpointing_profile();
void record_recomputation(double seconds);  // called by the checkpoint node when profiling

}  // namespace zt
