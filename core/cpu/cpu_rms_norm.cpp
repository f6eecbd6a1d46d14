// CPU RMS norm over the last dimension of a contiguous [rows, cols] tensor, forward and
// backward. Sums run in the compute type (f32 for f32 and 16-bit inputs, f64 for f64), one
// row at a time, as `omp simd` reductions (an order fixed by the build, not the threads);
// rstd is stored as f32 for 16-bit inputs. The weight gradient sums over rows in row order
// inside each column chunk, so it is the same for any thread count.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/dispatch.h"
#include "core/parallel.h"

namespace zt::cpu {

namespace {

int64_t rows_per_chunk(int64_t cols) {
  return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, cols));
}

// g * w (w = 1 without a weight) for one element.
template <typename T, typename Acc>
inline Acc scaled_grad(const T* g, const T* gamma, int64_t col) {
  Acc scaled = Acc(g[col]);
  return gamma != nullptr ? scaled * Acc(gamma[col]) : scaled;
}

}  // namespace

void CpuBackend::rms_norm_forward(const Tensor& input, const Tensor& weight, double eps,
                                  const Tensor& out, const Tensor& rstd) {
  int64_t cols = input.size(-1);
  int64_t rows = rstd.numel();
  dispatch_floating(input.dtype(), "rms_norm", [&]<typename T>() {
    using Acc = compute_type<T>;
    const T* in = input.data_ptr<T>();
    const T* gamma = weight.defined() ? weight.data_ptr<T>() : nullptr;
    T* result = out.data_ptr<T>();
    Acc* rstd_data = rstd.data_ptr<Acc>();
    parallel_for(0, rows, rows_per_chunk(cols), [&](int64_t first, int64_t last) {
      for (int64_t row = first; row < last; ++row) {
        const T* x = in + row * cols;
        Acc squares = 0;
#pragma omp simd reduction(+ : squares)
        for (int64_t col = 0; col < cols; ++col) squares += Acc(x[col]) * Acc(x[col]);
        Acc mean_square = cols > 0 ? squares / Acc(cols) : Acc(0);
        Acc inv_rms = Acc(1) / std::sqrt(mean_square + Acc(eps));
        rstd_data[row] = inv_rms;
        T* y = result + row * cols;
#pragma omp simd
        for (int64_t col = 0; col < cols; ++col) {
          Acc normalised = Acc(x[col]) * inv_rms;
          y[col] = T(gamma != nullptr ? normalised * Acc(gamma[col]) : normalised);
        }
      }
    });
  });
}

void CpuBackend::rms_norm_backward(const Tensor& grad_out, const Tensor& input, const Tensor& rstd,
                                   const Tensor& weight, const Tensor& grad_input,
                                   const Tensor& grad_weight) {
  int64_t cols = input.size(-1);
  int64_t rows = rstd.numel();
  dispatch_floating(input.dtype(), "rms_norm_backward", [&]<typename T>() {
    using Acc = compute_type<T>;
    const T* grad = grad_out.data_ptr<T>();
    const T* in = input.data_ptr<T>();
    const Acc* rstd_data = rstd.data_ptr<Acc>();
    const T* gamma = weight.defined() ? weight.data_ptr<T>() : nullptr;
    if (grad_input.defined() && cols > 0) {
      T* grad_in = grad_input.data_ptr<T>();
      parallel_for(0, rows, rows_per_chunk(cols), [&](int64_t first, int64_t last) {
        for (int64_t row = first; row < last; ++row) {
          const T* g = grad + row * cols;
          const T* x = in + row * cols;
          Acc inv_rms = rstd_data[row];
          Acc sum_scaled_x = 0;
#pragma omp simd reduction(+ : sum_scaled_x)
          for (int64_t col = 0; col < cols; ++col) {
            sum_scaled_x += scaled_grad<T, Acc>(g, gamma, col) * Acc(x[col]);
          }
          // mean(g*w*xhat) * rstd, folded into one factor on x.
          Acc x_factor = sum_scaled_x * inv_rms * inv_rms / Acc(cols);
          T* dx = grad_in + row * cols;
#pragma omp simd
          for (int64_t col = 0; col < cols; ++col) {
            dx[col] = T(inv_rms * (scaled_grad<T, Acc>(g, gamma, col) - Acc(x[col]) * x_factor));
          }
        }
      });
    }
    if (!grad_weight.defined()) return;
    T* grad_gamma = grad_weight.data_ptr<T>();
    // Narrow chunks, so that a model width of a few hundred still spreads over the threads.
    constexpr int64_t kColumnsPerChunk = 64;
    parallel_for(0, cols, kColumnsPerChunk, [&](int64_t first, int64_t last) {
      std::vector<Acc> sums(size_t(last - first), Acc(0));
      for (int64_t row = 0; row < rows; ++row) {
        const T* g = grad + row * cols;
        const T* x = in + row * cols;
        Acc inv_rms = rstd_data[row];
        Acc* column_sums = sums.data();
#pragma omp simd
        for (int64_t col = first; col < last; ++col) {
          column_sums[col - first] += Acc(g[col]) * Acc(x[col]) * inv_rms;
        }
      }
      for (int64_t col = first; col < last; ++col) grad_gamma[col] = T(sums[size_t(col - first)]);
    });
  });
}

}  // namespace zt::cpu
