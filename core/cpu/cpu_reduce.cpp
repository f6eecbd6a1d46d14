// CPU reductions: `in` contiguous, read as [rows, cols]; row r reduces into out[r].
// Invariant: results do not depend on the thread count. A row of up to kBlockElems elements is
// reduced by one thread in index order; a longer row is cut into fixed blocks of kBlockElems,
// reduced in parallel, and the block results are combined in block order. Floating sums and
// moments accumulate in double (16-bit inputs too), integer sums in int64. sum_of_squares adds
// each tensor of its list in index order on one thread (tensors in parallel): exactly the loop
// `sum += double(x) * double(x)` that gradient norms have always used, so norms keep their bits.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/dispatch.h"
#include "core/parallel.h"

namespace zt::cpu {

namespace {

constexpr int64_t kBlockElems = 32 * 1024;
// Rows per parallel chunk are chosen so that a chunk holds about this many elements.
constexpr int64_t kChunkElems = 64 * 1024;

// Reduces every row with reduce_block(row, begin, end) -> Partial over fixed blocks,
// combine(Partial& into, const Partial& next) in block order, then finish(row, Partial).
template <typename Partial, typename ReduceBlock, typename Combine, typename Finish>
void reduce_rows(int64_t rows, int64_t cols, const ReduceBlock& reduce_block,
                 const Combine& combine, const Finish& finish) {
  const int64_t blocks_per_row = cols <= kBlockElems ? 1 : (cols + kBlockElems - 1) / kBlockElems;
  if (blocks_per_row == 1) {
    int64_t rows_per_chunk = std::max<int64_t>(1, kChunkElems / std::max<int64_t>(cols, 1));
    parallel_for(0, rows, rows_per_chunk, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) finish(row, reduce_block(row, 0, cols));
    });
    return;
  }
  std::vector<Partial> partials(size_t(rows * blocks_per_row));
  parallel_for(0, rows * blocks_per_row, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      int64_t row = item / blocks_per_row;
      int64_t block_begin = (item % blocks_per_row) * kBlockElems;
      partials[size_t(item)] =
          reduce_block(row, block_begin, std::min(cols, block_begin + kBlockElems));
    }
  });
  parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      Partial total = partials[size_t(row * blocks_per_row)];
      for (int64_t block = 1; block < blocks_per_row; ++block) {
        combine(total, partials[size_t(row * blocks_per_row + block)]);
      }
      finish(row, total);
    }
  });
}

template <typename C>
inline bool is_nan(C value) {
  if constexpr (std::is_floating_point_v<C>) return value != value;
  return false;
}

// Whether `candidate` replaces `best` as the max (or min): strictly better, or the first NaN
// (NaN propagates as in PyTorch). Ties keep the earlier element.
template <bool kMax, typename C>
inline bool replaces(C candidate, C best) {
  if (is_nan(candidate)) return !is_nan(best);
  return kMax ? candidate > best : candidate < best;
}

template <typename T>
void reduce_sum_or_mean(const T* in, int64_t rows, int64_t cols, const Tensor& out, bool mean) {
  using C = compute_type<T>;
  using Acc = std::conditional_t<std::is_floating_point_v<C>, double, int64_t>;
  using Out = std::conditional_t<std::is_floating_point_v<C>, T, int64_t>;
  Out* result = static_cast<Out*>(out.raw_data());
  auto reduce_block = [&](int64_t row, int64_t begin, int64_t end) {
    const T* values = in + row * cols;
    Acc sum = 0;
    if constexpr (std::is_same_v<T, C>) {
#pragma omp simd reduction(+ : sum)
      for (int64_t i = begin; i < end; ++i) sum += Acc(values[i]);
    } else {
      for (int64_t i = begin; i < end; ++i) sum += Acc(C(values[i]));
    }
    return sum;
  };
  auto combine = [](Acc& total, const Acc& next) { total += next; };
  auto finish = [&](int64_t row, Acc sum) {
    if constexpr (std::is_floating_point_v<C>) {
      double value =
          mean ? (cols == 0 ? std::numeric_limits<double>::quiet_NaN() : double(sum) / double(cols))
               : double(sum);
      result[row] = Out(C(value));
    } else {
      result[row] = sum;
    }
  };
  reduce_rows<Acc>(rows, cols, reduce_block, combine, finish);
}

// Count, mean and sum of squared deviations of a block (Chan et al. combine them exactly).
struct Moments {
  int64_t count = 0;
  double mean = 0;
  double squared_deviations = 0;
};

template <typename T>
void reduce_var(const T* in, int64_t rows, int64_t cols, const Tensor& out, int64_t correction) {
  using C = compute_type<T>;
  T* result = static_cast<T*>(out.raw_data());
  auto reduce_block = [&](int64_t row, int64_t begin, int64_t end) {
    const T* values = in + row * cols;
    Moments moments;
    moments.count = end - begin;
    double sum = 0;
    for (int64_t i = begin; i < end; ++i) sum += double(C(values[i]));
    moments.mean = moments.count > 0 ? sum / double(moments.count) : 0.0;
    for (int64_t i = begin; i < end; ++i) {
      double deviation = double(C(values[i])) - moments.mean;
      moments.squared_deviations += deviation * deviation;
    }
    return moments;
  };
  auto combine = [](Moments& total, const Moments& next) {
    int64_t count = total.count + next.count;
    double delta = next.mean - total.mean;
    total.mean += delta * double(next.count) / double(count);
    total.squared_deviations += next.squared_deviations + delta * delta * double(total.count) *
                                                              double(next.count) / double(count);
    total.count = count;
  };
  auto finish = [&](int64_t row, const Moments& moments) {
    double value =
        cols == 0 ? std::numeric_limits<double>::quiet_NaN()
                  : moments.squared_deviations / double(std::max<int64_t>(0, cols - correction));
    result[row] = T(C(value));
  };
  reduce_rows<Moments>(rows, cols, reduce_block, combine, finish);
}

template <typename T, bool kMax, bool kWriteIndex>
void reduce_extremum(const T* in, int64_t rows, int64_t cols, const Tensor& out) {
  using C = compute_type<T>;
  struct Extremum {
    C value{};
    int64_t index = 0;
  };
  auto reduce_block = [&](int64_t row, int64_t begin, int64_t end) {
    const T* values = in + row * cols;
    Extremum best{C(values[begin]), begin};
    for (int64_t i = begin + 1; i < end; ++i) {
      C candidate = C(values[i]);
      if (replaces<kMax>(candidate, best.value)) best = {candidate, i};
    }
    return best;
  };
  auto combine = [](Extremum& total, const Extremum& next) {
    if (replaces<kMax>(next.value, total.value)) total = next;
  };
  auto finish = [&](int64_t row, const Extremum& best) {
    if constexpr (kWriteIndex) {
      static_cast<int64_t*>(out.raw_data())[row] = best.index;
    } else {
      static_cast<T*>(out.raw_data())[row] = T(best.value);
    }
  };
  reduce_rows<Extremum>(rows, cols, reduce_block, combine, finish);
}

template <typename T>
double sum_of_squares_in_order(const T* values, int64_t count) {
  double sum = 0.0;
  for (int64_t i = 0; i < count; ++i) {
    double x = double(compute_type<T>(values[i]));
    sum += x * x;
  }
  return sum;
}

}  // namespace

void CpuBackend::sum_of_squares(std::span<const Tensor> tensors, std::span<double> out) {
  // Checked before the parallel loop: an exception must not leave an OpenMP region.
  for (const Tensor& tensor : tensors) {
    if (!is_floating(tensor.dtype())) unsupported_dtype("sum_of_squares", tensor.dtype());
  }
  parallel_for(0, int64_t(tensors.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const Tensor& tensor = tensors[size_t(t)];
      dispatch_floating(tensor.dtype(), "sum_of_squares", [&]<typename T>() {
        out[size_t(t)] =
            sum_of_squares_in_order(static_cast<const T*>(tensor.raw_data()), tensor.numel());
      });
    }
  });
}

void CpuBackend::reduce(ReduceOp op, const Tensor& in, const Tensor& out, int64_t correction) {
  const int64_t rows = out.numel();
  if (rows == 0) return;
  const int64_t cols = in.numel() / rows;
  bool needs_elements = op == ReduceOp::max || op == ReduceOp::min || op == ReduceOp::argmax ||
                        op == ReduceOp::argmin;
  if (needs_elements && cols == 0) {
    throw std::invalid_argument("reduce: max/min/argmax/argmin of an empty row");
  }
  dispatch_all(in.dtype(), "reduce", [&]<typename T>() {
    const T* values = static_cast<const T*>(in.raw_data());
    constexpr bool kFloating = std::is_floating_point_v<compute_type<T>>;
    switch (op) {
      case ReduceOp::sum:
        reduce_sum_or_mean(values, rows, cols, out, false);
        return;
      case ReduceOp::mean:
        if constexpr (kFloating)
          reduce_sum_or_mean(values, rows, cols, out, true);
        else
          unsupported_dtype("reduce mean", in.dtype());
        return;
      case ReduceOp::var:
        if constexpr (kFloating)
          reduce_var(values, rows, cols, out, correction);
        else
          unsupported_dtype("reduce var", in.dtype());
        return;
      case ReduceOp::max:
        reduce_extremum<T, true, false>(values, rows, cols, out);
        return;
      case ReduceOp::min:
        reduce_extremum<T, false, false>(values, rows, cols, out);
        return;
      case ReduceOp::argmax:
        reduce_extremum<T, true, true>(values, rows, cols, out);
        return;
      case ReduceOp::argmin:
        reduce_extremum<T, false, true>(values, rows, cols, out);
        return;
    }
  });
}

}  // namespace zt::cpu
