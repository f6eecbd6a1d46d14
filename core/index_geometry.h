// The index geometry of embedding, index_select and index_add, shared by the CPU
// (core/cpu/cpu_embedding.cpp) and CUDA (cuda/embedding.cu) kernels: a tensor read as
// [outer, dim_size, inner] around one dimension, the range rule for an index, and the one
// error text an out-of-range index throws on every backend.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "core/host_device.h"
#include "core/tensor.h"

namespace zt {

// A contiguous tensor read as [outer, dim_size, inner] around `dim`.
struct DimSplit {
  int64_t outer = 1, dim_size = 1, inner = 1;
};

inline DimSplit split_around(const Tensor& tensor, int64_t dim) {
  DimSplit split;
  for (int64_t d = 0; d < dim; ++d) split.outer *= tensor.size(d);
  split.dim_size = tensor.size(dim);
  for (int64_t d = dim + 1; d < tensor.dim(); ++d) split.inner *= tensor.size(d);
  return split;
}

ZT_HOST_DEVICE inline bool index_in_range(int64_t index, int64_t size) {
  return index >= 0 && index < size;
}

[[noreturn]] inline void throw_index_out_of_range(const char* op, int64_t index, int64_t dim,
                                                  int64_t size) {
  throw std::out_of_range(std::string(op) + ": index " + std::to_string(index) +
                          " is out of range for dimension " + std::to_string(dim) + " with size " +
                          std::to_string(size));
}

}  // namespace zt
