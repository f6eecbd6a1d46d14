// Where a checkpoint keeps the inputs it saves for recomputation. By default they are aliases of
// the inputs. With cpu_checkpointing each is copied to host memory under
// MemoryTag::activation_offload and copied back to its own device and tag when recomputed; with
// contiguous_memory_optimization the copies of successive checkpoints are laid end to end in one
// preallocated buffer. Invariant: a restored input holds the same values, sizes and dtype as the
// input that was saved, so recomputation is bitwise the forward's.
#pragma once

#include <vector>

#include "autograd/checkpointing_options.h"
#include "core/allocator.h"
#include "core/device.h"
#include "core/tensor.h"

namespace zt {

struct SavedCheckpointInput {
  Tensor stored;  // undefined for an undefined input; detached
  Device device;  // where the input lived, restored there
  MemoryTag tag = MemoryTag::activation;
  bool offloaded = false;  // stored is a host copy that must go back to `device` and `tag`
};

// Saves `inputs` as the options place them; copies run on the inputs' device's backend (a
// device->host copy on a GPU, a memcpy into the activation_offload tag on the CPU backend).
std::vector<SavedCheckpointInput> save_checkpoint_inputs(const std::vector<Tensor>& inputs,
                                                         const CheckpointingOptions& options);
// The saved input as recomputation needs it: the alias itself, or a copy back to its device and
// tag when it was offloaded (the host copy stays saved, for a retain_graph backward).
Tensor restore_checkpoint_input(const SavedCheckpointInput& saved);

// Drops the contiguous buffers' own references (DeepSpeed's checkpointing.reset()); a buffer is
// freed once no saved input views it. Between forwards a buffer nobody views is reused in place.
void release_contiguous_checkpoint_buffers();

}  // namespace zt
