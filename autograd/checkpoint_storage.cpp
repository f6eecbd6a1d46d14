// Saving and restoring a checkpoint's inputs, and the contiguous buffers that hold them when
// contiguous_memory_optimization is on. A buffer region is handed out at most once while any view
// of the buffer is alive; regions are 64-byte aligned, so any dtype's element offset is exact.
#include "autograd/checkpoint_storage.h"

#include <algorithm>
#include <memory>
#include <mutex>
#include <utility>

#include "core/backend.h"
#include "core/factory.h"
#include "core/storage.h"

namespace zt {

namespace {

size_t round_up_to_alignment(size_t bytes) {
  return (bytes + kAllocationAlignment - 1) / kAllocationAlignment * kAllocationAlignment;
}

// The backend of the side that is not the host moves the bytes, as a CUDA backend's copy would
// (device->host for an offload, host->device for a restore); on the CPU backend it is a memcpy.
void copy_between(const Tensor& src, const Tensor& dst) {
  Device mover = src.device().is_cpu() ? dst.device() : src.device();
  backend_for(mover).copy(src, dst);
}

// One buffer per (device, tag). DeepSpeed sizes its buffer at the first checkpoint as
// number_checkpoints times that checkpoint's inputs, assuming equal layers; so do we. A forward
// that needs more gets the excess in separate allocations, and the next forward that finds the
// buffer unused gets one buffer of the size the last forward needed, so unequal layers are laid
// out contiguously from the second forward on.
class ContiguousCheckpointBuffers {
 public:
  ContiguousCheckpointBuffers() {
    // Built after the host allocator, so destroyed before it: the buffers free into a live one.
    (void)cpu_allocator();
  }

  // A contiguous tensor of `sizes` and `dtype` inside the buffer for (device, tag).
  Tensor take(const Shape& sizes, DType dtype, Device device, MemoryTag tag,
              size_t first_capacity_bytes) {
    std::lock_guard lock(mutex_);
    const size_t bytes = round_up_to_alignment(size_t(shape_numel(sizes)) * dtype_size(dtype));
    Buffer& buffer = buffer_for(device, tag);
    size_t regrown_bytes = 0;
    // Only this registry holds the buffer: every checkpoint that used it has been released, so a
    // new forward starts and the buffer is reused from its start.
    if (buffer.storage && buffer.storage.use_count() == 1) {
      if (buffer.demand_bytes > buffer.storage->bytes()) {
        regrown_bytes = buffer.demand_bytes;
        buffer.storage.reset();  // freed before its successor is allocated
      }
      buffer.used_bytes = 0;
      buffer.demand_bytes = 0;
    }
    if (!buffer.storage) {
      buffer.storage =
          make_storage(std::max({regrown_bytes, first_capacity_bytes, bytes}), device, tag);
      buffer.used_bytes = 0;
      buffer.demand_bytes = 0;
    }
    buffer.demand_bytes += bytes;
    if (buffer.used_bytes + bytes > buffer.storage->bytes()) {
      return view_of(make_storage(bytes, device, tag), 0, sizes, dtype);
    }
    Tensor region = view_of(buffer.storage, buffer.used_bytes, sizes, dtype);
    buffer.used_bytes += bytes;
    return region;
  }

  void release() {
    std::lock_guard lock(mutex_);
    buffers_.clear();
  }

 private:
  struct Buffer {
    Device device;
    MemoryTag tag;
    Storage storage;
    size_t used_bytes = 0;    // handed out to this forward's checkpoints
    size_t demand_bytes = 0;  // asked for by this forward, whether it fit or not
  };

  static Tensor view_of(Storage storage, size_t byte_offset, const Shape& sizes, DType dtype) {
    auto impl = std::make_shared<TensorImpl>();
    impl->storage = std::move(storage);
    impl->sizes = sizes;
    impl->strides = contiguous_strides(sizes);
    impl->offset = int64_t(byte_offset / dtype_size(dtype));  // exact: offsets are 64-aligned
    impl->dtype = dtype;
    return Tensor(std::move(impl));
  }

  Buffer& buffer_for(Device device, MemoryTag tag) {
    for (Buffer& buffer : buffers_) {
      if (buffer.device == device && buffer.tag == tag) return buffer;
    }
    return buffers_.emplace_back(Buffer{device, tag, nullptr, 0, 0});
  }

  std::mutex mutex_;
  std::vector<Buffer> buffers_;
};

ContiguousCheckpointBuffers& contiguous_buffers() {
  static ContiguousCheckpointBuffers buffers;
  return buffers;
}

}  // namespace

std::vector<SavedCheckpointInput> save_checkpoint_inputs(const std::vector<Tensor>& inputs,
                                                         const CheckpointingOptions& options) {
  const bool contiguous = options.contiguous_memory_optimization;
  const bool copies = options.cpu_checkpointing || contiguous;
  size_t checkpoint_bytes = 0;  // this checkpoint's share of a contiguous buffer
  for (const Tensor& input : inputs) {
    if (input.defined()) checkpoint_bytes += round_up_to_alignment(input.nbytes());
  }
  const size_t first_capacity_bytes =
      size_t(std::max<int64_t>(options.number_checkpoints, 1)) * checkpoint_bytes;

  std::vector<SavedCheckpointInput> saved(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& input = inputs[i];
    if (!input.defined()) continue;
    saved[i].device = input.device();
    saved[i].tag = input.storage()->tag();
    if (!copies) {
      saved[i].stored = input.detach();
      continue;
    }
    // Offloaded copies live on the host under their own tag; contiguous copies without offload
    // stay on the input's device, counted as activations.
    const Device device = options.cpu_checkpointing ? Device::cpu() : input.device();
    const MemoryTag tag =
        options.cpu_checkpointing ? MemoryTag::activation_offload : MemoryTag::activation;
    Tensor copy =
        contiguous ? contiguous_buffers().take(input.sizes(), input.dtype(), device, tag,
                                               first_capacity_bytes)
                   : empty(input.sizes(), {.dtype = input.dtype(), .device = device, .tag = tag});
    copy_between(input, copy);
    saved[i].stored = copy;
    saved[i].offloaded = options.cpu_checkpointing;
  }
  return saved;
}

Tensor restore_checkpoint_input(const SavedCheckpointInput& saved) {
  if (!saved.offloaded) return saved.stored;
  Tensor restored =
      empty(saved.stored.sizes(),
            {.dtype = saved.stored.dtype(), .device = saved.device, .tag = saved.tag});
  copy_between(saved.stored, restored);
  return restored;
}

void release_contiguous_checkpoint_buffers() {
  contiguous_buffers().release();
}

}  // namespace zt
