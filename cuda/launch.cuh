// What every kernel file needs to launch: the scope of a call (its device made current, its
// compute stream), grid sizing for grid-stride loops, and the elementwise launcher shared by
// copy, fill, unary, binary, where and dropout. The launcher takes a device functor
// f(inputs...) -> output and picks one of two kernels: a contiguous one that handles kVec
// elements per thread with aligned vector loads (inputs may also be broadcast scalars), or a
// strided one that maps each linear index through the operands' collapsed sizes and strides.
#pragma once

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

#include "core/tensor.h"
#include "cuda/check.h"
#include "cuda/device.h"

namespace zt::cuda {

inline constexpr int kThreads = 256;
inline constexpr int kVec = 4;
inline constexpr int kMaxDims = 10;

// The device of `device` made current and its compute stream, for one backend call.
class KernelScope {
 public:
  explicit KernelScope(Device device) : context_(context(device.index)), guard_(device.index) {}
  cudaStream_t stream() const { return context_.compute_stream; }
  int multiprocessors() const { return context_.multiprocessor_count; }
  int index() const { return context_.index; }
  // Blocks for a grid-stride loop over `work` items of `per_block` each: enough to fill the
  // device a few times over, never more than the work needs.
  unsigned blocks_for(int64_t work, int64_t per_block = kThreads) const {
    int64_t needed = (work + per_block - 1) / per_block;
    int64_t cap = int64_t(multiprocessors()) * 32;
    return unsigned(needed < 1 ? 1 : (needed < cap ? needed : cap));
  }

 private:
  DeviceContext& context_;
  DeviceGuard guard_;
};

// The grid of a kernel that gives each row its own block: CUDA allows at most 2^31 - 1 blocks
// in x, and a silent wrap would leave rows uncomputed, so more rows is an error naming `op`.
inline unsigned one_block_per_row(int64_t rows, const char* op) {
  if (rows > int64_t(0x7fffffff)) {
    throw std::invalid_argument(std::string(op) + " on CUDA: " + std::to_string(rows) +
                                " rows exceed the 2^31 - 1 blocks of one launch");
  }
  return unsigned(rows);
}

__device__ inline int64_t global_thread() {
  return int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline int64_t grid_threads() {
  return int64_t(gridDim.x) * blockDim.x;
}

// ---- elementwise -------------------------------------------------------------------------

template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

template <typename T>
struct Input {
  const T* ptr;
  bool scalar;  // broadcast of one element (every stride 0)
};

template <typename T>
__device__ inline T load_packed(const Input<T>& in, int64_t i, int j) {
  if (in.scalar) return in.ptr[0];
  return reinterpret_cast<const Pack<T, kVec>*>(in.ptr + i)->v[j];
}

template <typename Out, typename F, typename... In>
__global__ void contiguous_kernel(int64_t n, F f, Out* out, Input<In>... in) {
  const int64_t packs = n / kVec;
  for (int64_t p = global_thread(); p < packs; p += grid_threads()) {
    const int64_t i = p * kVec;
    Pack<Out, kVec> result;
#pragma unroll
    for (int j = 0; j < kVec; ++j) result.v[j] = f(load_packed(in, i, j)...);
    *reinterpret_cast<Pack<Out, kVec>*>(out + i) = result;
  }
  for (int64_t i = packs * kVec + global_thread(); i < n; i += grid_threads()) {
    out[i] = f(in.ptr[in.scalar ? 0 : i]...);
  }
}

// Sizes (innermost last) and element strides of N operands after collapsing.
template <int N>
struct StridedIndexer {
  int rank = 0;
  int64_t sizes[kMaxDims];
  int64_t strides[kMaxDims][N];
};

template <int N>
__device__ inline void strided_offsets(const StridedIndexer<N>& ix, int64_t linear,
                                       int64_t (&offsets)[N]) {
#pragma unroll
  for (int k = 0; k < N; ++k) offsets[k] = 0;
  for (int d = ix.rank - 1; d >= 0; --d) {
    int64_t index = linear % ix.sizes[d];
    linear /= ix.sizes[d];
#pragma unroll
    for (int k = 0; k < N; ++k) offsets[k] += index * ix.strides[d][k];
  }
}

template <typename F, typename... In, size_t... I>
__device__ inline auto invoke_at(const F& f, [[maybe_unused]] const int64_t* offsets,
                                 std::index_sequence<I...>, const In*... in) {
  return f(in[offsets[I + 1]]...);
}

template <typename Out, typename F, typename... In>
__global__ void strided_kernel(int64_t n, StridedIndexer<1 + sizeof...(In)> ix, F f, Out* out,
                               const In*... in) {
  for (int64_t linear = global_thread(); linear < n; linear += grid_threads()) {
    int64_t offsets[1 + sizeof...(In)];
    strided_offsets(ix, linear, offsets);
    out[offsets[0]] = invoke_at(f, offsets, std::index_sequence_for<In...>{}, in...);
  }
}

// Drops size-1 dims and merges dims that are contiguous with each other in every operand
// (operand 0 gives the shape), as core/cpu/strided_loop.h does.
template <int N>
StridedIndexer<N> make_indexer(const std::array<const Tensor*, N>& operands) {
  StridedIndexer<N> ix;
  const Shape& shape = operands[0]->sizes();
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merges = ix.rank > 0;
    for (int k = 0; k < N && merges; ++k) {
      merges = ix.strides[ix.rank - 1][k] == operands[k]->strides()[d] * shape[d];
    }
    if (merges) {
      ix.sizes[ix.rank - 1] *= shape[d];
      for (int k = 0; k < N; ++k) ix.strides[ix.rank - 1][k] = operands[k]->strides()[d];
      continue;
    }
    if (ix.rank == kMaxDims) {
      throw std::invalid_argument("CUDA elementwise kernel: more than " + std::to_string(kMaxDims) +
                                  " dimensions after collapsing, in " + shape_str(shape));
    }
    ix.sizes[ix.rank] = shape[d];
    for (int k = 0; k < N; ++k) ix.strides[ix.rank][k] = operands[k]->strides()[d];
    ++ix.rank;
  }
  return ix;
}

inline bool all_strides_zero(const Tensor& tensor) {
  for (int64_t stride : tensor.strides()) {
    if (stride != 0) return false;
  }
  return true;
}

template <typename T>
bool packs_cleanly(const Tensor& tensor) {
  return tensor.is_contiguous() &&
         reinterpret_cast<uintptr_t>(tensor.raw_data()) % (sizeof(T) * kVec) == 0;
}

template <typename Out, typename... In, typename F, size_t... I>
void launch_elementwise_impl(const KernelScope& scope, const F& f, const Tensor& out,
                             const std::array<const Tensor*, sizeof...(In)>& ins,
                             std::index_sequence<I...>) {
  const int64_t n = out.numel();
  if (n == 0) return;
  bool flat = packs_cleanly<Out>(out);
  ((flat = flat && (all_strides_zero(*ins[I]) || packs_cleanly<In>(*ins[I]))), ...);
  Out* out_ptr = static_cast<Out*>(out.raw_data());
  if (flat) {
    contiguous_kernel<Out, F, In...>
        <<<scope.blocks_for(n, kThreads * kVec), kThreads, 0, scope.stream()>>>(
            n, f, out_ptr,
            Input<In>{static_cast<const In*>(ins[I]->raw_data()), all_strides_zero(*ins[I])}...);
  } else {
    auto ix = make_indexer<1 + sizeof...(In)>({&out, ins[I]...});
    strided_kernel<Out, F, In...><<<scope.blocks_for(n), kThreads, 0, scope.stream()>>>(
        n, ix, f, out_ptr, static_cast<const In*>(ins[I]->raw_data())...);
  }
  ZT_CUDA_CHECK_LAUNCH();
}

// out[i] = f(ins[0][i], ins[1][i], ...) over out's shape; inputs are broadcast views of it.
template <typename Out, typename... In, typename F>
void launch_elementwise(const KernelScope& scope, const F& f, const Tensor& out,
                        const std::array<const Tensor*, sizeof...(In)>& ins) {
  launch_elementwise_impl<Out, In...>(scope, f, out, ins, std::index_sequence_for<In...>{});
}

}  // namespace zt::cuda
