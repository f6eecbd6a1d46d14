// CUDA fused optimizer updates: multi-tensor Adam and SGD, one launch for the whole list
// (cuda/multi_tensor.cuh). Each element runs the arithmetic the CPU runs
// (core/optimizer_arithmetic.h), every operation correctly rounded (__fmul_rn, __fmaf_rn and
// friends, which nvcc never contracts), so the results equal the CPU's bit for bit. Aligned
// tensors move four elements per thread with float4 loads and stores.
#include "cuda/cuda_backend.h"
#include "cuda/multi_tensor.cuh"

namespace zt::cuda {

namespace {

// Elements per chunk: 16 float4 per thread of a block.
constexpr int64_t kUpdateChunk = int64_t(kThreads) * 4 * 16;

// The element arithmetic of core/optimizer_arithmetic.h with CUDA's correctly rounded
// intrinsics, which nvcc never contracts, so that a multiply and an add are fused exactly where
// the arithmetic says so, as on the CPU.
struct CudaArithmetic {
  using Value = float;
  __device__ static float splat(float value) { return value; }
  __device__ static float add(float a, float b) { return __fadd_rn(a, b); }
  __device__ static float sub(float a, float b) { return __fsub_rn(a, b); }
  __device__ static float mul(float a, float b) { return __fmul_rn(a, b); }
  __device__ static float div(float a, float b) { return __fdiv_rn(a, b); }
  __device__ static float sqrt(float a) { return __fsqrt_rn(a); }
  __device__ static float fma(float a, float b, float c) { return __fmaf_rn(a, b, c); }
};

// The elements [begin, end) of one chunk, spread over the block: packs(i) for the four elements
// from i when the tensor's pointers allow float4 access, then singles(i) for the rest.
template <typename Packs, typename Singles>
__device__ inline void for_chunk_elements(int64_t begin, int64_t end, bool aligned,
                                          const Packs& packs, const Singles& singles) {
  int64_t singles_begin = begin;
  if (aligned) {
    singles_begin = begin + (end - begin) / 4 * 4;
    for (int64_t i = begin + int64_t(threadIdx.x) * 4; i < singles_begin; i += blockDim.x * 4) {
      packs(i);
    }
  }
  for (int64_t i = singles_begin + threadIdx.x; i < end; i += blockDim.x) singles(i);
}

__device__ inline float4 load4(const float* values) {
  return *reinterpret_cast<const float4*>(values);
}
__device__ inline void store4(float* values, float4 pack) {
  *reinterpret_cast<float4*>(values) = pack;
}

__global__ void adam_kernel(const TensorChunks<4>* table, int count, int64_t chunks,
                            AdamStepConstants k) {
  for_each_block_chunk(table, count, chunks, kUpdateChunk,
                       [&](const TensorChunks<4>& entry, int64_t, int64_t begin, int64_t end) {
                         float* param = static_cast<float*>(entry.data[0]);
                         const float* grad = static_cast<const float*>(entry.data[1]);
                         float* exp_avg = static_cast<float*>(entry.data[2]);
                         float* exp_avg_sq = static_cast<float*>(entry.data[3]);
                         for_chunk_elements(
                             begin, end, entry.aligned,
                             [&](int64_t i) {
                               float4 p = load4(param + i), g = load4(grad + i);
                               float4 m = load4(exp_avg + i), v = load4(exp_avg_sq + i);
                               adam_element<CudaArithmetic>(p.x, g.x, m.x, v.x, k);
                               adam_element<CudaArithmetic>(p.y, g.y, m.y, v.y, k);
                               adam_element<CudaArithmetic>(p.z, g.z, m.z, v.z, k);
                               adam_element<CudaArithmetic>(p.w, g.w, m.w, v.w, k);
                               store4(param + i, p);
                               store4(exp_avg + i, m);
                               store4(exp_avg_sq + i, v);
                             },
                             [&](int64_t i) {
                               adam_element<CudaArithmetic>(param[i], grad[i], exp_avg[i],
                                                            exp_avg_sq[i], k);
                             });
                       });
}

__global__ void sgd_kernel(const TensorChunks<3>* table, int count, int64_t chunks,
                           SgdStepConstants k) {
  for_each_block_chunk(table, count, chunks, kUpdateChunk,
                       [&](const TensorChunks<3>& entry, int64_t, int64_t begin, int64_t end) {
                         float* param = static_cast<float*>(entry.data[0]);
                         const float* grad = static_cast<const float*>(entry.data[1]);
                         float* buffer =
                             static_cast<float*>(entry.data[2]);  // nullptr without momentum
                         for_chunk_elements(
                             begin, end, entry.aligned,
                             [&](int64_t i) {
                               float4 p = load4(param + i), g = load4(grad + i);
                               float4 b = k.use_momentum ? load4(buffer + i) : float4{};
                               sgd_element<CudaArithmetic>(p.x, g.x, b.x, k);
                               sgd_element<CudaArithmetic>(p.y, g.y, b.y, k);
                               sgd_element<CudaArithmetic>(p.z, g.z, b.z, k);
                               sgd_element<CudaArithmetic>(p.w, g.w, b.w, k);
                               store4(param + i, p);
                               if (k.use_momentum) store4(buffer + i, b);
                             },
                             [&](int64_t i) {
                               float unused = 0.0f;
                               sgd_element<CudaArithmetic>(param[i], grad[i],
                                                           k.use_momentum ? buffer[i] : unused, k);
                             });
                       });
}

// Launches kernel(table, count, chunks, constants) once per table of the list.
template <int N, typename Kernel, typename Constants>
void launch_tables(const KernelScope& scope, Device device, const ChunkTables<N>& tables,
                   Kernel kernel, const Constants& constants) {
  for (const ChunkTable<N>& table : tables.tables()) {
    if (table.chunks == 0) continue;
    Tensor on_device = upload_table(scope, device, table);
    kernel<<<scope.blocks_for(table.chunks, 1), kThreads, 0, scope.stream()>>>(
        static_cast<const TensorChunks<N>*>(on_device.raw_data()), int(table.entries.size()),
        table.chunks, constants);
    ZT_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

void CudaBackend::adam_update(std::span<const AdamOperands> tensors, const AdamStepConstants& k) {
  if (tensors.empty()) return;
  const Device device = tensors[0].param.device();
  KernelScope scope(device);
  ChunkTables<4> tables(kUpdateChunk);
  for (const AdamOperands& t : tensors) {
    if (t.param.numel() == 0) continue;
    tables.add(
        {t.param.raw_data(), t.grad.raw_data(), t.exp_avg.raw_data(), t.exp_avg_sq.raw_data()},
        t.param.numel(), DType::f32);
  }
  launch_tables(scope, device, tables, adam_kernel, k);
}

void CudaBackend::sgd_update(std::span<const SgdOperands> tensors, const SgdStepConstants& k) {
  if (tensors.empty()) return;
  const Device device = tensors[0].param.device();
  KernelScope scope(device);
  ChunkTables<3> tables(kUpdateChunk);
  for (const SgdOperands& t : tensors) {
    if (t.param.numel() == 0) continue;
    void* buffer = k.use_momentum ? t.momentum_buffer.raw_data() : nullptr;
    tables.add({t.param.raw_data(), t.grad.raw_data(), buffer}, t.param.numel(), DType::f32);
  }
  launch_tables(scope, device, tables, sgd_kernel, k);
}

}  // namespace zt::cuda
