// CUDA sum_of_squares over a list of tensors, deterministic in two passes: pass 1 gives each
// chunk of kSumChunk elements one f64 partial (thread t adds elements t, t + 256, ... of the
// chunk in order, then the block combines its threads in block_reduce's fixed tree); pass 2
// gives each tensor one block that adds its chunk partials the same way. The order of every
// addition is fixed by the sizes alone, so a list sums to the same bits on every run (not the
// CPU's bits: the CPU adds in index order; the two agree to rounding). One D2H copy brings all
// the sums back, after the only synchronisation.
#include <vector>

#include "cuda/block_reduce.cuh"
#include "cuda/cuda_backend.h"
#include "cuda/dtype.cuh"
#include "cuda/multi_tensor.cuh"

namespace zt::cuda {

namespace {

// Elements per chunk: 64 per thread of a block.
constexpr int64_t kSumChunk = int64_t(kRowThreads) * 64;

template <typename T>
__device__ inline double square_sum_of_thread(const T* values, int64_t begin, int64_t end) {
  double sum = 0.0;
  // Four loads in flight per thread; the additions stay in index order.
  constexpr int64_t kStride = kRowThreads;
  int64_t i = begin + threadIdx.x;
  for (; i + 3 * kStride < end; i += 4 * kStride) {
    double x0 = double(load_compute(values[i]));
    double x1 = double(load_compute(values[i + kStride]));
    double x2 = double(load_compute(values[i + 2 * kStride]));
    double x3 = double(load_compute(values[i + 3 * kStride]));
    // fma: one rounding per element (a square of a float or 16-bit value is exact anyway).
    sum = fma(x0, x0, sum);
    sum = fma(x1, x1, sum);
    sum = fma(x2, x2, sum);
    sum = fma(x3, x3, sum);
  }
  for (; i < end; i += kStride) {
    double x = double(load_compute(values[i]));
    sum = fma(x, x, sum);
  }
  return sum;
}

__global__ void chunk_partials_kernel(const TensorChunks<1>* table, int count, int64_t chunks,
                                      double* partials) {
  for_each_block_chunk(
      table, count, chunks, kSumChunk,
      [&](const TensorChunks<1>& entry, int64_t chunk, int64_t begin, int64_t end) {
        double sum = 0.0;
        switch (entry.dtype) {
          case DType::f32:
            sum = square_sum_of_thread(static_cast<const float*>(entry.data[0]), begin, end);
            break;
          case DType::f64:
            sum = square_sum_of_thread(static_cast<const double*>(entry.data[0]), begin, end);
            break;
          case DType::f16:
            sum = square_sum_of_thread(static_cast<const __half*>(entry.data[0]), begin, end);
            break;
          default:  // bf16: the host admits floating dtypes only
            sum =
                square_sum_of_thread(static_cast<const __nv_bfloat16*>(entry.data[0]), begin, end);
            break;
        }
        sum = block_reduce(sum, [](double a, double b) { return a + b; });
        if (threadIdx.x == 0) partials[chunk] = sum;
      });
}

// Block t adds the partials of tensor t of the launch into sums[t].
__global__ void tensor_sums_kernel(const TensorChunks<1>* table, int count, const double* partials,
                                   double* sums) {
  for (int t = blockIdx.x; t < count; t += gridDim.x) {
    const TensorChunks<1>& entry = table[t];
    int64_t first = entry.first_chunk, end = first + chunks_of(entry.numel, kSumChunk);
    double sum = 0.0;
    for (int64_t chunk = first + threadIdx.x; chunk < end; chunk += blockDim.x) {
      sum += partials[chunk];
    }
    sum = block_reduce(sum, [](double a, double b) { return a + b; });
    if (threadIdx.x == 0) sums[t] = sum;
  }
}

}  // namespace

void CudaBackend::sum_of_squares(std::span<const Tensor> tensors, std::span<double> out) {
  if (tensors.empty()) return;
  const Device device = tensors[0].device();
  KernelScope scope(device);
  ChunkTables<1> tables(kSumChunk);
  for (const Tensor& tensor : tensors) {
    if (!is_floating(tensor.dtype())) unsupported_dtype("sum_of_squares", tensor.dtype());
    tables.add({tensor.raw_data()}, tensor.numel(), tensor.dtype());
  }
  const int64_t count = int64_t(tensors.size());
  Tensor sums = empty({count}, {.dtype = DType::f64, .device = device, .tag = MemoryTag::other});
  double* sums_data = static_cast<double*>(sums.raw_data());
  for (const ChunkTable<1>& table : tables.tables()) {
    Tensor on_device = upload_table(scope, device, table);
    const auto* entries = static_cast<const TensorChunks<1>*>(on_device.raw_data());
    const int entry_count = int(table.entries.size());
    Tensor partials = empty({table.chunks > 0 ? table.chunks : 1},
                            {.dtype = DType::f64, .device = device, .tag = MemoryTag::other});
    double* partial_data = static_cast<double*>(partials.raw_data());
    if (table.chunks > 0) {
      chunk_partials_kernel<<<scope.blocks_for(table.chunks, 1), kRowThreads, 0, scope.stream()>>>(
          entries, entry_count, table.chunks, partial_data);
      ZT_CUDA_CHECK_LAUNCH();
    }
    tensor_sums_kernel<<<scope.blocks_for(entry_count, 1), kRowThreads, 0, scope.stream()>>>(
        entries, entry_count, partial_data, sums_data + table.first_tensor);
    ZT_CUDA_CHECK_LAUNCH();
  }
  ZT_CUDA_CHECK(cudaMemcpyAsync(out.data(), sums_data, size_t(count) * sizeof(double),
                                cudaMemcpyDeviceToHost, scope.stream()));
  ZT_CUDA_CHECK(cudaStreamSynchronize(scope.stream()));
}

}  // namespace zt::cuda
