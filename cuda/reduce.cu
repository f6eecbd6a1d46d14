// CUDA reductions: `in` contiguous, read as [rows, cols]; row r reduces into out[r], with the
// CPU backend's semantics (core/cpu/cpu_reduce.cpp): floating sums and moments accumulate in
// double (16-bit inputs too), integer sums in int64, max/min/argmax/argmin propagate NaN and
// keep the first index on ties, var combines block moments exactly (Chan et al.).
// A row is reduced by one block, or when there are too few rows to fill the device, by
// `splits` blocks whose partials a second kernel combines in split order; short rows take one
// thread each. The order of additions differs from the CPU's, so sums agree to rounding, and
// is fixed by the shapes alone, so results repeat from run to run.
#include <cmath>
#include <stdexcept>

#include "core/factory.h"
#include "cuda/block_reduce.cuh"
#include "cuda/cuda_backend.h"
#include "cuda/dtype.cuh"
#include "cuda/launch.cuh"

namespace zt::cuda {

namespace {

template <typename T>
using accumulator_t = std::conditional_t<is_floating_v<T>, double, int64_t>;

template <typename T, bool kMean>
struct SumReducer {
  using Partial = accumulator_t<T>;
  using Out = std::conditional_t<is_floating_v<T>, T, int64_t>;
  __device__ Partial identity() const { return 0; }
  __device__ Partial add(Partial sum, T value, int64_t) const {
    return sum + Partial(load_compute(value));
  }
  __device__ Partial combine(Partial a, Partial b) const { return a + b; }
  __device__ Out finish(Partial sum, int64_t cols) const {
    if constexpr (is_floating_v<T>) {
      double value = kMean ? (cols == 0 ? double(NAN) : double(sum) / double(cols)) : double(sum);
      return round_from_double<T>(value);
    } else {
      return sum;
    }
  }
};

// Count, mean and sum of squared deviations (Welford within a thread, Chan across threads).
struct Moments {
  int64_t count = 0;
  double mean = 0;
  double squared_deviations = 0;
};

template <typename T>
struct VarReducer {
  using Partial = Moments;
  using Out = T;
  int64_t correction;
  __device__ Partial identity() const { return Moments{}; }
  __device__ Partial add(Partial m, T value, int64_t) const {
    double x = double(load_compute(value));
    m.count += 1;
    double delta = x - m.mean;
    m.mean += delta / double(m.count);
    m.squared_deviations += delta * (x - m.mean);
    return m;
  }
  __device__ Partial combine(Partial a, Partial b) const {
    if (a.count == 0) return b;
    if (b.count == 0) return a;
    int64_t count = a.count + b.count;
    double delta = b.mean - a.mean;
    Moments total;
    total.count = count;
    total.mean = a.mean + delta * double(b.count) / double(count);
    total.squared_deviations = a.squared_deviations + b.squared_deviations +
                               delta * delta * double(a.count) * double(b.count) / double(count);
    return total;
  }
  __device__ Out finish(Partial m, int64_t cols) const {
    int64_t denominator = cols - correction > 0 ? cols - correction : 0;
    double value = cols == 0 ? double(NAN) : m.squared_deviations / double(denominator);
    return round_from_double<T>(value);
  }
};

template <typename C>
struct Extremum {
  C value;
  int64_t index;  // -1: no element yet
};

template <typename T, bool kMax, bool kWriteIndex>
struct ExtremumReducer {
  using C = compute_t<T>;
  using Partial = Extremum<C>;
  using Out = std::conditional_t<kWriteIndex, int64_t, T>;
  __device__ static bool nan(C value) {
    if constexpr (std::is_floating_point_v<C>) {
      return value != value;
    } else {
      return false;
    }
  }
  // Whether b replaces a: the first NaN wins, then the strictly better value, then on equal
  // values the smaller index (threads see indices out of order).
  __device__ static bool takes(const Partial& a, const Partial& b) {
    if (b.index < 0) return false;
    if (a.index < 0) return true;
    bool a_nan = nan(a.value), b_nan = nan(b.value);
    if (a_nan || b_nan) return b_nan && (!a_nan || b.index < a.index);
    if (kMax ? b.value > a.value : b.value < a.value) return true;
    return b.value == a.value && b.index < a.index;
  }
  __device__ Partial identity() const { return Partial{C(0), -1}; }
  __device__ Partial add(Partial best, T value, int64_t index) const {
    Partial candidate{load_compute(value), index};
    return takes(best, candidate) ? candidate : best;
  }
  __device__ Partial combine(Partial a, Partial b) const { return takes(a, b) ? b : a; }
  __device__ Out finish(Partial best, int64_t) const {
    if constexpr (kWriteIndex) {
      return best.index;
    } else {
      return store_compute<T>(best.value);
    }
  }
};

// One thread per row, for rows too short to share among a block.
template <typename R, typename T>
__global__ void reduce_short_rows_kernel(R reducer, const T* in, int64_t rows, int64_t cols,
                                         typename R::Out* out) {
  for (int64_t row = global_thread(); row < rows; row += grid_threads()) {
    typename R::Partial partial = reducer.identity();
    for (int64_t col = 0; col < cols; ++col) {
      partial = reducer.add(partial, in[row * cols + col], col);
    }
    out[row] = reducer.finish(partial, cols);
  }
}

// Block b reduces columns [split * chunk, (split + 1) * chunk) of row b / splits. With one
// split it writes the row's result, else its partial.
template <typename R, typename T>
__global__ void reduce_rows_kernel(R reducer, const T* in, int64_t cols, int64_t chunk,
                                   int64_t splits, typename R::Partial* partials,
                                   typename R::Out* out) {
  int64_t row = int64_t(blockIdx.x) / splits, split = int64_t(blockIdx.x) % splits;
  int64_t begin = split * chunk, end = begin + chunk < cols ? begin + chunk : cols;
  const T* values = in + row * cols;
  typename R::Partial partial = reducer.identity();
  for (int64_t col = begin + threadIdx.x; col < end; col += blockDim.x) {
    partial = reducer.add(partial, values[col], col);
  }
  partial = block_reduce(partial, [&](const typename R::Partial& a, const typename R::Partial& b) {
    return reducer.combine(a, b);
  });
  if (threadIdx.x != 0) return;
  if (splits == 1) {
    out[row] = reducer.finish(partial, cols);
  } else {
    partials[blockIdx.x] = partial;
  }
}

template <typename R>
__global__ void combine_splits_kernel(R reducer, const typename R::Partial* partials, int64_t rows,
                                      int64_t splits, int64_t cols, typename R::Out* out) {
  for (int64_t row = global_thread(); row < rows; row += grid_threads()) {
    typename R::Partial total = partials[row * splits];
    for (int64_t split = 1; split < splits; ++split) {
      total = reducer.combine(total, partials[row * splits + split]);
    }
    out[row] = reducer.finish(total, cols);
  }
}

constexpr int64_t kShortRow = 32;
constexpr int64_t kMinColsPerSplit = int64_t(kRowThreads) * 16;

template <typename R, typename T>
void reduce_rows(const KernelScope& scope, const R& reducer, const Tensor& in, int64_t rows,
                 int64_t cols, const Tensor& out) {
  const T* values = static_cast<const T*>(in.raw_data());
  auto* result = static_cast<typename R::Out*>(out.raw_data());
  if (cols <= kShortRow) {
    reduce_short_rows_kernel<R, T><<<scope.blocks_for(rows), kThreads, 0, scope.stream()>>>(
        reducer, values, rows, cols, result);
    ZT_CUDA_CHECK_LAUNCH();
    return;
  }
  // Enough blocks to fill the device about four times over, but no split under 4K columns.
  int64_t wanted_blocks = int64_t(scope.multiprocessors()) * 4;
  int64_t splits = rows >= wanted_blocks ? 1 : (wanted_blocks + rows - 1) / rows;
  int64_t max_splits = (cols + kMinColsPerSplit - 1) / kMinColsPerSplit;
  if (splits > max_splits) splits = max_splits;
  int64_t chunk = (cols + splits - 1) / splits;
  Tensor partials;
  if (splits > 1) {
    int64_t bytes = rows * splits * int64_t(sizeof(typename R::Partial));
    partials = empty({bytes}, {.dtype = DType::u8, .device = in.device(), .tag = MemoryTag::other});
  }
  auto* partial_data =
      splits > 1 ? static_cast<typename R::Partial*>(partials.raw_data()) : nullptr;
  reduce_rows_kernel<R, T><<<unsigned(rows * splits), kRowThreads, 0, scope.stream()>>>(
      reducer, values, cols, chunk, splits, partial_data, result);
  ZT_CUDA_CHECK_LAUNCH();
  if (splits > 1) {
    combine_splits_kernel<R><<<scope.blocks_for(rows), kThreads, 0, scope.stream()>>>(
        reducer, partial_data, rows, splits, cols, result);
    ZT_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

void CudaBackend::reduce(ReduceOp op, const Tensor& in, const Tensor& out, int64_t correction) {
  const int64_t rows = out.numel();
  if (rows == 0) return;
  const int64_t cols = in.numel() / rows;
  bool needs_elements = op == ReduceOp::max || op == ReduceOp::min || op == ReduceOp::argmax ||
                        op == ReduceOp::argmin;
  if (needs_elements && cols == 0) {
    throw std::invalid_argument("reduce: max/min/argmax/argmin of an empty row");
  }
  if (!is_floating(in.dtype()) && (op == ReduceOp::mean || op == ReduceOp::var)) {
    unsupported_dtype(op == ReduceOp::mean ? "reduce mean" : "reduce var", in.dtype());
  }
  KernelScope scope(out.device());
  dispatch_all(in.dtype(), "reduce", [&]<typename T>() {
    switch (op) {
      case ReduceOp::sum:
        reduce_rows<SumReducer<T, false>, T>(scope, {}, in, rows, cols, out);
        return;
      case ReduceOp::mean:
        reduce_rows<SumReducer<T, true>, T>(scope, {}, in, rows, cols, out);
        return;
      case ReduceOp::var:
        if constexpr (is_floating_v<T>) {
          reduce_rows<VarReducer<T>, T>(scope, VarReducer<T>{correction}, in, rows, cols, out);
        }
        return;
      case ReduceOp::max:
        reduce_rows<ExtremumReducer<T, true, false>, T>(scope, {}, in, rows, cols, out);
        return;
      case ReduceOp::min:
        reduce_rows<ExtremumReducer<T, false, false>, T>(scope, {}, in, rows, cols, out);
        return;
      case ReduceOp::argmax:
        reduce_rows<ExtremumReducer<T, true, true>, T>(scope, {}, in, rows, cols, out);
        return;
      case ReduceOp::argmin:
        reduce_rows<ExtremumReducer<T, false, true>, T>(scope, {}, in, rows, cols, out);
        return;
    }
  });
}

}  // namespace zt::cuda
