// CUDA fused LAMB: pass 1 advances the moments and gives each chunk of kLambChunk elements one
// f64 partial of the weight's and of the update's squares (block_reduce's fixed tree), then one
// block per tensor adds its chunk partials; one D2H copy brings the sums back. Pass 2 scales
// each tensor's update by its own factor. The element arithmetic is the CPU's
// (core/lamb_arithmetic.h) with correctly rounded intrinsics; the sums agree with the CPU's to
// rounding (the CPU adds in index order within a chunk).
#include <vector>

#include "cuda/block_reduce.cuh"
#include "cuda/cuda_backend.h"
#include "cuda/multi_tensor.cuh"

namespace zt::cuda {

namespace {

constexpr int64_t kLambChunk = int64_t(kRowThreads) * 16;

struct CudaArithmetic {
  using Value = float;
  __device__ static float splat(float value) { return value; }
  __device__ static float add(float a, float b) { return __fadd_rn(a, b); }
  __device__ static float sub(float a, float b) { return __fsub_rn(a, b); }
  __device__ static float mul(float a, float b) { return __fmul_rn(a, b); }
  __device__ static float div(float a, float b) { return __fdiv_rn(a, b); }
  __device__ static float sqrt(float a) { return __fsqrt_rn(a); }
};

__global__ void lamb_moments_kernel(const TensorChunks<4>* table, int count, int64_t chunks,
                                    LambStepConstants k, double* weight_partials,
                                    double* update_partials) {
  for_each_block_chunk(
      table, count, chunks, kLambChunk,
      [&](const TensorChunks<4>& entry, int64_t chunk, int64_t begin, int64_t end) {
        float* param = static_cast<float*>(entry.data[0]);
        const float* grad = static_cast<const float*>(entry.data[1]);
        float* exp_avg = static_cast<float*>(entry.data[2]);
        float* exp_avg_sq = static_cast<float*>(entry.data[3]);
        double weight_sum = 0.0, update_sum = 0.0;
        for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
          const float direction =
              lamb_moments_element<CudaArithmetic>(param[i], grad[i], exp_avg[i], exp_avg_sq[i], k);
          weight_sum = fma(double(param[i]), double(param[i]), weight_sum);
          update_sum = fma(double(direction), double(direction), update_sum);
        }
        auto add = [](double a, double b) { return a + b; };
        weight_sum = block_reduce(weight_sum, add);
        update_sum = block_reduce(update_sum, add);
        if (threadIdx.x == 0) {
          weight_partials[chunk] = weight_sum;
          update_partials[chunk] = update_sum;
        }
      });
}

// Block t adds tensor t's chunk partials of both kinds: sums[2 t] and sums[2 t + 1].
__global__ void lamb_tensor_sums_kernel(const TensorChunks<4>* table, int count,
                                        const double* weight_partials,
                                        const double* update_partials, double* sums) {
  auto add = [](double a, double b) { return a + b; };
  for (int t = blockIdx.x; t < count; t += gridDim.x) {
    const TensorChunks<4>& entry = table[t];
    int64_t first = entry.first_chunk, end = first + chunks_of(entry.numel, kLambChunk);
    double weight_sum = 0.0, update_sum = 0.0;
    for (int64_t chunk = first + threadIdx.x; chunk < end; chunk += blockDim.x) {
      weight_sum += weight_partials[chunk];
      update_sum += update_partials[chunk];
    }
    weight_sum = block_reduce(weight_sum, add);
    update_sum = block_reduce(update_sum, add);
    if (threadIdx.x == 0) {
      sums[2 * t] = weight_sum;
      sums[2 * t + 1] = update_sum;
    }
  }
}

__global__ void lamb_apply_kernel(const TensorChunks<4>* table, int count, int64_t chunks,
                                  LambStepConstants k, const float* scales) {
  for_each_block_chunk(table, count, chunks, kLambChunk,
                       [&](const TensorChunks<4>& entry, int64_t, int64_t begin, int64_t end) {
                         const float scale = scales[&entry - table];
                         float* param = static_cast<float*>(entry.data[0]);
                         const float* exp_avg = static_cast<const float*>(entry.data[2]);
                         const float* exp_avg_sq = static_cast<const float*>(entry.data[3]);
                         for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
                           lamb_apply_element<CudaArithmetic>(param[i], exp_avg[i], exp_avg_sq[i],
                                                              scale, k);
                         }
                       });
}

ChunkTables<4> lamb_tables(std::span<const AdamOperands> tensors) {
  ChunkTables<4> tables(kLambChunk);
  for (const AdamOperands& t : tensors) {
    tables.add(
        {t.param.raw_data(), t.grad.raw_data(), t.exp_avg.raw_data(), t.exp_avg_sq.raw_data()},
        t.param.numel(), DType::f32);
  }
  return tables;
}

}  // namespace

void CudaBackend::lamb_moments(std::span<const AdamOperands> tensors, const LambStepConstants& k,
                               std::span<double> square_sums) {
  if (tensors.empty()) return;
  const Device device = tensors[0].param.device();
  KernelScope scope(device);
  ChunkTables<4> tables = lamb_tables(tensors);
  const int64_t count = int64_t(tensors.size());
  Tensor sums =
      empty({2 * count}, {.dtype = DType::f64, .device = device, .tag = MemoryTag::other});
  double* sums_data = static_cast<double*>(sums.raw_data());
  for (const ChunkTable<4>& table : tables.tables()) {
    Tensor on_device = upload_table(scope, device, table);
    const auto* entries = static_cast<const TensorChunks<4>*>(on_device.raw_data());
    const int entry_count = int(table.entries.size());
    const int64_t partial_count = table.chunks > 0 ? table.chunks : 1;
    Tensor partials = empty({2 * partial_count},
                            {.dtype = DType::f64, .device = device, .tag = MemoryTag::other});
    double* weight_partials = static_cast<double*>(partials.raw_data());
    double* update_partials = weight_partials + partial_count;
    if (table.chunks > 0) {
      lamb_moments_kernel<<<scope.blocks_for(table.chunks, 1), kRowThreads, 0, scope.stream()>>>(
          entries, entry_count, table.chunks, k, weight_partials, update_partials);
      ZT_CUDA_CHECK_LAUNCH();
    }
    lamb_tensor_sums_kernel<<<scope.blocks_for(entry_count, 1), kRowThreads, 0, scope.stream()>>>(
        entries, entry_count, weight_partials, update_partials, sums_data + 2 * table.first_tensor);
    ZT_CUDA_CHECK_LAUNCH();
  }
  ZT_CUDA_CHECK(cudaMemcpyAsync(square_sums.data(), sums_data, size_t(2 * count) * sizeof(double),
                                cudaMemcpyDeviceToHost, scope.stream()));
  ZT_CUDA_CHECK(cudaStreamSynchronize(scope.stream()));
}

void CudaBackend::lamb_apply(std::span<const AdamOperands> tensors, const LambStepConstants& k,
                             std::span<const float> scales) {
  if (tensors.empty()) return;
  const Device device = tensors[0].param.device();
  KernelScope scope(device);
  ChunkTables<4> tables = lamb_tables(tensors);
  const int64_t count = int64_t(tensors.size());
  Tensor scales_on_device =
      empty({count}, {.dtype = DType::f32, .device = device, .tag = MemoryTag::other});
  float* scales_data = static_cast<float*>(scales_on_device.raw_data());
  ZT_CUDA_CHECK(cudaMemcpyAsync(scales_data, scales.data(), size_t(count) * sizeof(float),
                                cudaMemcpyHostToDevice, scope.stream()));
  for (const ChunkTable<4>& table : tables.tables()) {
    if (table.chunks == 0) continue;
    Tensor on_device = upload_table(scope, device, table);
    lamb_apply_kernel<<<scope.blocks_for(table.chunks, 1), kRowThreads, 0, scope.stream()>>>(
        static_cast<const TensorChunks<4>*>(on_device.raw_data()), int(table.entries.size()),
        table.chunks, k, scales_data + table.first_tensor);
    ZT_CUDA_CHECK_LAUNCH();
  }
  // The host scales may go when this returns.
  ZT_CUDA_CHECK(cudaStreamSynchronize(scope.stream()));
}

}  // namespace zt::cuda
