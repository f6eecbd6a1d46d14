// CPU layer norm over the last dimension of a contiguous [rows, cols] tensor.
// Statistics are computed in double per row (two passes: mean, then centred variance, so no
// cancellation); mean and rstd are stored as f32 for 16-bit inputs, else in the input dtype.
// Each row's sums run in SIMD lanes (an order fixed by the compiled code, never by threads).
// The weight and bias gradients sum over rows in row order inside each column chunk, so they
// are the same for any thread count.
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

// mean/rstd hold f32 for 16-bit inputs and the input type otherwise.
template <typename T>
using stat_type = compute_type<T>;

}  // namespace

void CpuBackend::layer_norm_forward(const Tensor& input, const Tensor& weight, const Tensor& bias,
                                    double eps, const Tensor& out, const Tensor& mean,
                                    const Tensor& rstd) {
  int64_t cols = input.size(-1);
  int64_t rows = cols > 0 ? input.numel() / cols : mean.numel();
  dispatch_floating(input.dtype(), "layer_norm", [&]<typename T>() {
    using Stat = stat_type<T>;
    const T* in = input.data_ptr<T>();
    const T* gamma = weight.defined() ? weight.data_ptr<T>() : nullptr;
    const T* beta = bias.defined() ? bias.data_ptr<T>() : nullptr;
    T* result = out.data_ptr<T>();
    Stat* mean_data = mean.data_ptr<Stat>();
    Stat* rstd_data = rstd.data_ptr<Stat>();
    parallel_for(0, rows, rows_per_chunk(cols), [&](int64_t first, int64_t last) {
      for (int64_t row = first; row < last; ++row) {
        const T* x = in + row * cols;
        double sum = 0.0;
#pragma omp simd reduction(+ : sum)
        for (int64_t col = 0; col < cols; ++col) sum += double(x[col]);
        double row_mean = cols > 0 ? sum / double(cols) : 0.0;
        double squares = 0.0;
#pragma omp simd reduction(+ : squares)
        for (int64_t col = 0; col < cols; ++col) {
          double centred = double(x[col]) - row_mean;
          squares += centred * centred;
        }
        double variance = cols > 0 ? squares / double(cols) : 0.0;
        double inv_std = 1.0 / std::sqrt(variance + eps);
        mean_data[row] = Stat(row_mean);
        rstd_data[row] = Stat(inv_std);
        T* y = result + row * cols;
#pragma omp simd
        for (int64_t col = 0; col < cols; ++col) {
          double normalised = (double(x[col]) - row_mean) * inv_std;
          if (gamma != nullptr) normalised *= double(gamma[col]);
          if (beta != nullptr) normalised += double(beta[col]);
          y[col] = T(compute_type<T>(normalised));
        }
      }
    });
  });
}

void CpuBackend::layer_norm_backward(const Tensor& grad_out, const Tensor& input,
                                     const Tensor& mean, const Tensor& rstd, const Tensor& weight,
                                     const Tensor& grad_input, const Tensor& grad_weight,
                                     const Tensor& grad_bias) {
  int64_t cols = input.size(-1);
  int64_t rows = cols > 0 ? input.numel() / cols : mean.numel();
  dispatch_floating(input.dtype(), "layer_norm_backward", [&]<typename T>() {
    using Stat = stat_type<T>;
    const T* grad = grad_out.data_ptr<T>();
    const T* in = input.data_ptr<T>();
    const Stat* mean_data = mean.data_ptr<Stat>();
    const Stat* rstd_data = rstd.data_ptr<Stat>();
    const T* gamma = weight.defined() ? weight.data_ptr<T>() : nullptr;
    if (grad_input.defined()) {
      T* grad_in = grad_input.data_ptr<T>();
      // dx = rstd * (g*w - mean(g*w) - xhat * mean(g*w*xhat))
      parallel_for(0, rows, rows_per_chunk(cols), [&](int64_t first, int64_t last) {
        for (int64_t row = first; row < last; ++row) {
          const T* g = grad + row * cols;
          const T* x = in + row * cols;
          double row_mean = double(mean_data[row]), inv_std = double(rstd_data[row]);
          double sum_scaled = 0.0, sum_scaled_xhat = 0.0;
#pragma omp simd reduction(+ : sum_scaled, sum_scaled_xhat)
          for (int64_t col = 0; col < cols; ++col) {
            double scaled = double(g[col]) * (gamma != nullptr ? double(gamma[col]) : 1.0);
            sum_scaled += scaled;
            sum_scaled_xhat += scaled * (double(x[col]) - row_mean) * inv_std;
          }
          double mean_scaled = sum_scaled / double(cols);
          double mean_scaled_xhat = sum_scaled_xhat / double(cols);
          T* dx = grad_in + row * cols;
#pragma omp simd
          for (int64_t col = 0; col < cols; ++col) {
            double scaled = double(g[col]) * (gamma != nullptr ? double(gamma[col]) : 1.0);
            double xhat = (double(x[col]) - row_mean) * inv_std;
            dx[col] =
                T(compute_type<T>(inv_std * (scaled - mean_scaled - xhat * mean_scaled_xhat)));
          }
        }
      });
    }
    if (!grad_weight.defined() && !grad_bias.defined()) return;
    T* grad_gamma = grad_weight.defined() ? grad_weight.data_ptr<T>() : nullptr;
    T* grad_beta = grad_bias.defined() ? grad_bias.data_ptr<T>() : nullptr;
    constexpr int64_t kColumnsPerChunk = 256;
    parallel_for(0, cols, kColumnsPerChunk, [&](int64_t first, int64_t last) {
      std::vector<double> gamma_sums(size_t(last - first), 0.0),
          beta_sums(size_t(last - first), 0.0);
      for (int64_t row = 0; row < rows; ++row) {
        const T* g = grad + row * cols;
        const T* x = in + row * cols;
        double row_mean = double(mean_data[row]), inv_std = double(rstd_data[row]);
        for (int64_t col = first; col < last; ++col) {
          gamma_sums[size_t(col - first)] += double(g[col]) * (double(x[col]) - row_mean) * inv_std;
          beta_sums[size_t(col - first)] += double(g[col]);
        }
      }
      for (int64_t col = first; col < last; ++col) {
        if (grad_gamma != nullptr)
          grad_gamma[col] = T(compute_type<T>(gamma_sums[size_t(col - first)]));
        if (grad_beta != nullptr)
          grad_beta[col] = T(compute_type<T>(beta_sums[size_t(col - first)]));
      }
    });
  });
}

}  // namespace zt::cpu
