// What the communicator tests share (tests/mpi/test_communicator*.cpp): per-rank values that
// every dtype holds exactly, their closed-form reductions, and the message an error produces.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "core/factory.h"
#include "tests/error_of.h"

namespace zt::comm::communicator_testing {

inline constexpr int64_t kOddSizes[] = {1, 3, 17, 129};
inline constexpr DType kReducibleDTypes[] = {DType::f32, DType::f64, DType::f16, DType::bf16,
                                             DType::i32, DType::i64, DType::u8};
inline constexpr ReduceOperation kOperations[] = {ReduceOperation::sum, ReduceOperation::max,
                                                  ReduceOperation::min};

// Rank r's element i: (r + 1) * (i % 7 + 1). Small integers, so every dtype holds them and
// their sums over 8 ranks exactly (at most 7 * 36 = 252, inside u8 and bf16's exact range).
inline double rank_value(int rank, int64_t index) {
  return double(rank + 1) * double(index % 7 + 1);
}

inline Tensor rank_tensor(int rank, int64_t elems, DType dtype, int64_t first_index = 0) {
  std::vector<double> values(static_cast<size_t>(elems));
  for (int64_t i = 0; i < elems; ++i) values[size_t(i)] = rank_value(rank, first_index + i);
  return from_values(values, {elems}, {.dtype = dtype});
}

// The closed form of reducing rank_value(r, index) over ranks 0..ranks-1.
inline double reduced_value(ReduceOperation op, int ranks, int64_t index) {
  double factor = double(index % 7 + 1);
  switch (op) {
    case ReduceOperation::sum:
      return factor * ranks * (ranks + 1) / 2;
    case ReduceOperation::max:
      return factor * ranks;
    case ReduceOperation::min:
      return factor;
  }
  return 0;
}

inline const char* op_name(ReduceOperation op) {
  return op == ReduceOperation::sum ? "sum" : op == ReduceOperation::max ? "max" : "min";
}

// Compares every element (the values are small integers, exact in every dtype).
inline bool holds_values(const Tensor& tensor, const std::vector<double>& expected) {
  return tensor.to_vector() == expected;
}

}  // namespace zt::comm::communicator_testing
