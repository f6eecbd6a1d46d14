// CPU embedding lookup and its backward, index_select and index_add along one dimension.
// Indices are checked before any parallel loop (an exception must not leave an OpenMP region)
// and an out-of-range one throws std::out_of_range naming the index and the size. Lookups copy
// whole rows as bytes, so they serve every dtype. Accumulating kernels split the work over
// columns and add duplicate indices in index order, so sums are thread-count independent.
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/dispatch.h"
#include "core/index_geometry.h"
#include "core/parallel.h"

namespace zt::cpu {

namespace {

void check_indices(const int64_t* indices, int64_t count, int64_t size, const char* op,
                   int64_t dim) {
  for (int64_t i = 0; i < count; ++i) {
    if (!index_in_range(indices[i], size)) throw_index_out_of_range(op, indices[i], dim, size);
  }
}

// Copies `count` rows of `row_bytes`: destination row r comes from source row rows[r].
void gather_rows(const char* source, const int64_t* rows, int64_t count, size_t row_bytes,
                 char* destination) {
  int64_t rows_per_chunk = std::max<int64_t>(1, int64_t(65536 / std::max<size_t>(1, row_bytes)));
  parallel_for(0, count, rows_per_chunk, [&](int64_t first, int64_t last) {
    for (int64_t r = first; r < last; ++r) {
      std::memcpy(destination + size_t(r) * row_bytes, source + size_t(rows[r]) * row_bytes,
                  row_bytes);
    }
  });
}

}  // namespace

void CpuBackend::embedding_forward(const Tensor& weight, const Tensor& indices, const Tensor& out) {
  int64_t vocabulary = weight.size(0);
  const int64_t* index_data = indices.data_ptr<int64_t>();
  check_indices(index_data, indices.numel(), vocabulary, "embedding", 0);
  size_t row_bytes = size_t(weight.size(1)) * weight.element_size();
  gather_rows(static_cast<const char*>(weight.raw_data()), index_data, indices.numel(), row_bytes,
              static_cast<char*>(out.raw_data()));
}

void CpuBackend::embedding_backward(const Tensor& grad_out, const Tensor& indices,
                                    const Tensor& grad_weight, int64_t padding_idx) {
  int64_t vocabulary = grad_weight.size(0), width = grad_weight.size(1);
  int64_t count = indices.numel();
  const int64_t* index_data = indices.data_ptr<int64_t>();
  check_indices(index_data, count, vocabulary, "embedding_backward", 0);
  dispatch_floating(grad_weight.dtype(), "embedding_backward", [&]<typename T>() {
    const T* grad = grad_out.data_ptr<T>();
    T* grad_table = grad_weight.data_ptr<T>();
    constexpr int64_t kColumnsPerChunk = 64;
    parallel_for(0, width, kColumnsPerChunk, [&](int64_t first, int64_t last) {
      for (int64_t i = 0; i < count; ++i) {
        int64_t row = index_data[i];
        if (row == padding_idx) continue;
        T* destination = grad_table + row * width;
        const T* source = grad + i * width;
        for (int64_t col = first; col < last; ++col) {
          destination[col] = T(compute_type<T>(destination[col]) + compute_type<T>(source[col]));
        }
      }
    });
  });
}

void CpuBackend::index_select(const Tensor& in, int64_t dim, const Tensor& indices,
                              const Tensor& out) {
  DimSplit split = split_around(in, dim);
  int64_t count = indices.numel();
  const int64_t* index_data = indices.data_ptr<int64_t>();
  check_indices(index_data, count, split.dim_size, "index_select", dim);
  size_t row_bytes = size_t(split.inner) * in.element_size();
  const char* source = static_cast<const char*>(in.raw_data());
  char* destination = static_cast<char*>(out.raw_data());
  int64_t total_rows = split.outer * count;
  int64_t rows_per_chunk = std::max<int64_t>(1, int64_t(65536 / std::max<size_t>(1, row_bytes)));
  parallel_for(0, total_rows, rows_per_chunk, [&](int64_t first, int64_t last) {
    for (int64_t r = first; r < last; ++r) {
      int64_t outer = r / std::max<int64_t>(1, count), i = r % std::max<int64_t>(1, count);
      const char* row = source + size_t(outer * split.dim_size + index_data[i]) * row_bytes;
      std::memcpy(destination + size_t(r) * row_bytes, row, row_bytes);
    }
  });
}

void CpuBackend::index_add(const Tensor& out, int64_t dim, const Tensor& indices,
                           const Tensor& source) {
  DimSplit split = split_around(out, dim);
  int64_t count = indices.numel();
  const int64_t* index_data = indices.data_ptr<int64_t>();
  check_indices(index_data, count, split.dim_size, "index_add", dim);
  constexpr int64_t kInnerPerChunk = 1024;
  int64_t inner_chunks = (split.inner + kInnerPerChunk - 1) / kInnerPerChunk;
  dispatch_all(out.dtype(), "index_add", [&]<typename T>() {
    using C = compute_type<T>;
    T* destination = out.data_ptr<T>();
    const T* added = source.data_ptr<T>();
    // One task per (outer slice, inner chunk); duplicates within a task add in index order.
    parallel_for(0, split.outer * inner_chunks, 1, [&](int64_t first, int64_t last) {
      for (int64_t task = first; task < last; ++task) {
        int64_t outer = task / inner_chunks;
        int64_t inner_begin = (task % inner_chunks) * kInnerPerChunk;
        int64_t inner_end = std::min(split.inner, inner_begin + kInnerPerChunk);
        for (int64_t i = 0; i < count; ++i) {
          T* to = destination + (outer * split.dim_size + index_data[i]) * split.inner;
          const T* from = added + (outer * count + i) * split.inner;
          for (int64_t in = inner_begin; in < inner_end; ++in) {
            to[in] = T(C(to[in]) + C(from[in]));
          }
        }
      }
    });
  });
}

}  // namespace zt::cpu
