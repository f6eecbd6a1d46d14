// Walking N same-shape strided tensors (views, stride-0 broadcast dims) element by element,
// fast: size-1 dims are dropped and dims that are contiguous with each other in every operand
// are merged, then the innermost dim runs as a plain pointer loop in the caller's kernel.
// Invariant: the iteration is split into chunks of `grain` elements by parallel_for, so chunk
// boundaries depend only on the shape, never on the thread count. Operand 0 sets the order
// (it is the output in every kernel, so writes are sequential).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/parallel.h"
#include "core/tensor.h"

namespace zt::cpu {

// Elements per parallel chunk of an elementwise loop: large enough that thread start-up is
// negligible against the work (64K f32 adds take ~10 us).
inline constexpr int64_t kElementwiseGrain = 64 * 1024;

template <size_t N>
struct StridedLayout {
  std::vector<int64_t> sizes;                        // collapsed dims, outermost first
  std::array<std::vector<int64_t>, N> byte_strides;  // per operand, per collapsed dim
  std::array<char*, N> bases;                        // first element of each operand
  int64_t numel = 0;
};

// The collapsed layout of `operands`, which all have operands[0]'s shape.
template <size_t N>
StridedLayout<N> collapse_layout(const std::array<const Tensor*, N>& operands) {
  StridedLayout<N> layout;
  const Shape& shape = operands[0]->sizes();
  layout.numel = shape_numel(shape);
  for (size_t op = 0; op < N; ++op) layout.bases[op] = static_cast<char*>(operands[op]->raw_data());
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merges_into_previous = !layout.sizes.empty();
    for (size_t op = 0; op < N && merges_into_previous; ++op) {
      int64_t stride = operands[op]->strides()[d] * int64_t(operands[op]->element_size());
      merges_into_previous = layout.byte_strides[op].back() == stride * shape[d];
    }
    if (merges_into_previous) {
      layout.sizes.back() *= shape[d];
      for (size_t op = 0; op < N; ++op) {
        layout.byte_strides[op].back() =
            operands[op]->strides()[d] * int64_t(operands[op]->element_size());
      }
      continue;
    }
    layout.sizes.push_back(shape[d]);
    for (size_t op = 0; op < N; ++op) {
      layout.byte_strides[op].push_back(operands[op]->strides()[d] *
                                        int64_t(operands[op]->element_size()));
    }
  }
  if (layout.sizes.empty()) {  // a single element
    layout.sizes.push_back(1);
    for (size_t op = 0; op < N; ++op) layout.byte_strides[op].push_back(0);
  }
  return layout;
}

// Calls kernel(pointers, inner_byte_strides, count) for runs of up to one innermost row, over
// every element of the operands, in parallel chunks of `grain` elements. pointers[i] points at
// the run's first element of operand i; element j of the run is at pointers[i] + j * stride.
template <size_t N, typename Kernel>
void strided_for_each(const std::array<const Tensor*, N>& operands, int64_t grain,
                      const Kernel& kernel) {
  StridedLayout<N> layout = collapse_layout(operands);
  if (layout.numel == 0) return;
  const int64_t rank = int64_t(layout.sizes.size());
  const int64_t inner_size = layout.sizes.back();
  std::array<int64_t, N> inner_strides;
  for (size_t op = 0; op < N; ++op) inner_strides[op] = layout.byte_strides[op].back();

  parallel_for(0, layout.numel, grain, [&](int64_t chunk_begin, int64_t chunk_end) {
    // Position of chunk_begin: an index into each outer dim plus an offset within the row.
    std::vector<int64_t> outer_index(size_t(rank), 0);
    int64_t row = chunk_begin / inner_size;
    int64_t within_row = chunk_begin % inner_size;
    for (int64_t d = rank - 2; d >= 0; --d) {
      outer_index[size_t(d)] = row % layout.sizes[size_t(d)];
      row /= layout.sizes[size_t(d)];
    }
    std::array<char*, N> row_start;
    for (size_t op = 0; op < N; ++op) {
      row_start[op] = layout.bases[op];
      for (int64_t d = 0; d + 1 < rank; ++d) {
        row_start[op] += outer_index[size_t(d)] * layout.byte_strides[op][size_t(d)];
      }
    }
    int64_t position = chunk_begin;
    while (position < chunk_end) {
      int64_t count = inner_size - within_row;
      if (count > chunk_end - position) count = chunk_end - position;
      std::array<char*, N> run_start;
      for (size_t op = 0; op < N; ++op)
        run_start[op] = row_start[op] + within_row * inner_strides[op];
      kernel(run_start, inner_strides, count);
      position += count;
      within_row = 0;
      // Next row: odometer increment of the outer dims, moving the row pointers along.
      for (int64_t d = rank - 2; d >= 0; --d) {
        size_t dim = size_t(d);
        if (++outer_index[dim] < layout.sizes[dim]) {
          for (size_t op = 0; op < N; ++op) row_start[op] += layout.byte_strides[op][dim];
          break;
        }
        outer_index[dim] = 0;
        for (size_t op = 0; op < N; ++op) {
          row_start[op] -= (layout.sizes[dim] - 1) * layout.byte_strides[op][dim];
        }
      }
    }
  });
}

}  // namespace zt::cpu
