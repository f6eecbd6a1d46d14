// One kernel launch over a list of tensors (the fused optimizer updates, sum_of_squares).
// Each tensor is cut into chunks of a fixed number of elements; the list becomes a small table
// in device memory, one entry per tensor (its pointers, numel, dtype, and the launch-wide index
// of its first chunk), and the blocks of the launch walk the launch's chunks, each finding its
// tensor by binary search over the table. Chunk boundaries depend only on the sizes, never on
// the grid, so the grid can be sized for the device. A list longer than kMaxTensorsPerLaunch
// becomes several launches of consecutive tensors.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "core/factory.h"
#include "cuda/launch.cuh"

namespace zt::cuda {

inline constexpr size_t kMaxTensorsPerLaunch = size_t(1) << 16;

// One tensor of a launch: N operand pointers (all of the tensor's numel and dtype).
template <int N>
struct TensorChunks {
  void* data[N];
  int64_t numel;
  int64_t first_chunk;  // the launch's index of the tensor's chunk 0
  DType dtype;
  bool aligned;  // every pointer on a 16-byte boundary: float4 loads allowed
};

// The tensors of one launch, and where they begin in the whole list.
template <int N>
struct ChunkTable {
  std::vector<TensorChunks<N>> entries;
  int64_t chunks = 0;
  size_t first_tensor = 0;
};

__host__ __device__ inline int64_t chunks_of(int64_t numel, int64_t chunk_elems) {
  return (numel + chunk_elems - 1) / chunk_elems;
}

// Cuts a list into launch tables as tensors are added, in list order.
template <int N>
class ChunkTables {
 public:
  explicit ChunkTables(int64_t chunk_elems) : chunk_elems_(chunk_elems) {}

  void add(const std::array<void*, N>& data, int64_t numel, DType dtype) {
    if (tables_.empty() || tables_.back().entries.size() == kMaxTensorsPerLaunch) {
      tables_.push_back({{}, 0, added_});
    }
    ChunkTable<N>& table = tables_.back();
    TensorChunks<N> entry{};
    bool aligned = true;
    for (int k = 0; k < N; ++k) {
      entry.data[k] = data[size_t(k)];
      aligned = aligned && reinterpret_cast<uintptr_t>(data[size_t(k)]) % 16 == 0;
    }
    entry.numel = numel;
    entry.first_chunk = table.chunks;
    entry.dtype = dtype;
    entry.aligned = aligned;
    table.entries.push_back(entry);
    table.chunks += chunks_of(numel, chunk_elems_);
    ++added_;
  }

  const std::vector<ChunkTable<N>>& tables() const { return tables_; }

 private:
  int64_t chunk_elems_;
  size_t added_ = 0;
  std::vector<ChunkTable<N>> tables_;
};

// A device copy of a table's entries, queued on the scope's stream; the returned tensor keeps
// the memory until it is destroyed, after which only later work on the stream can reuse it.
template <int N>
Tensor upload_table(const KernelScope& scope, Device device, const ChunkTable<N>& table) {
  const size_t bytes = table.entries.size() * sizeof(TensorChunks<N>);
  Tensor on_device =
      empty({int64_t(bytes)}, {.dtype = DType::u8, .device = device, .tag = MemoryTag::other});
  // From pageable memory: returns once the driver has staged the bytes.
  ZT_CUDA_CHECK(cudaMemcpyAsync(on_device.raw_data(), table.entries.data(), bytes,
                                cudaMemcpyHostToDevice, scope.stream()));
  return on_device;
}

// The entry holding `chunk`: the last one whose first chunk is <= chunk (an empty tensor
// shares its first chunk with the next one and is never chosen).
template <int N>
__device__ inline const TensorChunks<N>& tensor_of_chunk(const TensorChunks<N>* table, int count,
                                                         int64_t chunk) {
  int low = 0, high = count - 1;
  while (low < high) {
    int middle = (low + high + 1) / 2;
    if (table[middle].first_chunk <= chunk) {
      low = middle;
    } else {
      high = middle - 1;
    }
  }
  return table[low];
}

// Calls body(entry, chunk, begin, end) for each chunk this block takes (chunks blockIdx.x,
// blockIdx.x + gridDim.x, ...): [begin, end) are element indices into entry's tensor. The
// loop is uniform across the block, so the body may synchronise it.
template <int N, typename Body>
__device__ inline void for_each_block_chunk(const TensorChunks<N>* table, int count, int64_t chunks,
                                            int64_t chunk_elems, const Body& body) {
  for (int64_t chunk = blockIdx.x; chunk < chunks; chunk += gridDim.x) {
    const TensorChunks<N>& entry = tensor_of_chunk(table, count, chunk);
    int64_t begin = (chunk - entry.first_chunk) * chunk_elems;
    int64_t end = begin + chunk_elems < entry.numel ? begin + chunk_elems : entry.numel;
    body(entry, chunk, begin, end);
  }
}

}  // namespace zt::cuda
