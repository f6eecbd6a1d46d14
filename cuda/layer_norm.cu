// CUDA layer norm over the last dimension of a contiguous [rows, cols] tensor, forward and
// backward, with the CPU backend's numerics (core/cpu/cpu_layer_norm.cpp): per-row statistics
// in double, two passes (mean, then centred variance), mean and rstd stored as f32 for 16-bit
// inputs, else in the input dtype. One block per row. The weight and bias gradients sum over
// rows in two steps, per column: row slices into double partials, then the slices in order,
// so they are the same on every run.
#include "core/factory.h"
#include "cuda/block_reduce.cuh"
#include "cuda/cuda_backend.h"
#include "cuda/dtype.cuh"
#include "cuda/launch.cuh"

namespace zt::cuda {

namespace {

struct Sum {
  __device__ double operator()(double a, double b) const { return a + b; }
};

template <typename T>
__device__ inline double load_double(T value) {
  return double(load_compute(value));
}

template <typename T>
__global__ void layer_norm_forward_kernel(const T* in, const T* gamma, const T* beta, double eps,
                                          int64_t cols, T* out, compute_t<T>* mean,
                                          compute_t<T>* rstd) {
  int64_t row = blockIdx.x;
  const T* x = in + row * cols;
  double local = 0;
  for (int64_t col = threadIdx.x; col < cols; col += blockDim.x) local += load_double(x[col]);
  double row_mean = cols > 0 ? block_reduce(local, Sum{}) / double(cols) : 0.0;
  local = 0;
  for (int64_t col = threadIdx.x; col < cols; col += blockDim.x) {
    double centred = load_double(x[col]) - row_mean;
    local += centred * centred;
  }
  double variance = cols > 0 ? block_reduce(local, Sum{}) / double(cols) : 0.0;
  double inv_std = 1.0 / sqrt(variance + eps);
  if (threadIdx.x == 0) {
    mean[row] = compute_t<T>(row_mean);
    rstd[row] = compute_t<T>(inv_std);
  }
  T* y = out + row * cols;
  for (int64_t col = threadIdx.x; col < cols; col += blockDim.x) {
    double normalised = (load_double(x[col]) - row_mean) * inv_std;
    if (gamma != nullptr) normalised *= load_double(gamma[col]);
    if (beta != nullptr) normalised += load_double(beta[col]);
    y[col] = round_from_double<T>(normalised);
  }
}

// dx = rstd * (g*w - mean(g*w) - xhat * mean(g*w*xhat))
template <typename T>
__global__ void layer_norm_backward_input_kernel(const T* grad, const T* in,
                                                 const compute_t<T>* mean, const compute_t<T>* rstd,
                                                 const T* gamma, int64_t cols, T* grad_in) {
  int64_t row = blockIdx.x;
  const T* g = grad + row * cols;
  const T* x = in + row * cols;
  double row_mean = double(mean[row]), inv_std = double(rstd[row]);
  double sum_scaled = 0, sum_scaled_xhat = 0;
  for (int64_t col = threadIdx.x; col < cols; col += blockDim.x) {
    double scaled = load_double(g[col]) * (gamma != nullptr ? load_double(gamma[col]) : 1.0);
    sum_scaled += scaled;
    sum_scaled_xhat += scaled * (load_double(x[col]) - row_mean) * inv_std;
  }
  double mean_scaled = block_reduce(sum_scaled, Sum{}) / double(cols);
  double mean_scaled_xhat = block_reduce(sum_scaled_xhat, Sum{}) / double(cols);
  T* dx = grad_in + row * cols;
  for (int64_t col = threadIdx.x; col < cols; col += blockDim.x) {
    double scaled = load_double(g[col]) * (gamma != nullptr ? load_double(gamma[col]) : 1.0);
    double xhat = (load_double(x[col]) - row_mean) * inv_std;
    dx[col] = round_from_double<T>(inv_std * (scaled - mean_scaled - xhat * mean_scaled_xhat));
  }
}

// partials[split][col] (gamma) and partials[splits + split][col] (beta) over the rows of one
// slice; block (x: column block, y: row slice).
template <typename T>
__global__ void layer_norm_param_partials_kernel(const T* grad, const T* in,
                                                 const compute_t<T>* mean, const compute_t<T>* rstd,
                                                 int64_t rows, int64_t cols, int64_t rows_per_split,
                                                 double* partials) {
  int64_t col = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (col >= cols) return;
  int64_t split = blockIdx.y, splits = gridDim.y;
  int64_t first = split * rows_per_split;
  int64_t last = first + rows_per_split < rows ? first + rows_per_split : rows;
  double gamma_sum = 0, beta_sum = 0;
  for (int64_t row = first; row < last; ++row) {
    double g = load_double(grad[row * cols + col]);
    gamma_sum += g * (load_double(in[row * cols + col]) - double(mean[row])) * double(rstd[row]);
    beta_sum += g;
  }
  partials[split * cols + col] = gamma_sum;
  partials[(splits + split) * cols + col] = beta_sum;
}

template <typename T>
__global__ void layer_norm_param_finish_kernel(const double* partials, int64_t splits, int64_t cols,
                                               T* grad_gamma, T* grad_beta) {
  for (int64_t col = global_thread(); col < cols; col += grid_threads()) {
    double gamma_sum = 0, beta_sum = 0;
    for (int64_t split = 0; split < splits; ++split) {
      gamma_sum += partials[split * cols + col];
      beta_sum += partials[(splits + split) * cols + col];
    }
    if (grad_gamma != nullptr) grad_gamma[col] = round_from_double<T>(gamma_sum);
    if (grad_beta != nullptr) grad_beta[col] = round_from_double<T>(beta_sum);
  }
}

template <typename T>
const T* optional_data(const Tensor& tensor) {
  return tensor.defined() ? static_cast<const T*>(tensor.raw_data()) : nullptr;
}

}  // namespace

void CudaBackend::layer_norm_forward(const Tensor& input, const Tensor& weight, const Tensor& bias,
                                     double eps, const Tensor& out, const Tensor& mean,
                                     const Tensor& rstd) {
  int64_t cols = input.size(-1);
  int64_t rows = cols > 0 ? input.numel() / cols : mean.numel();
  if (rows == 0) return;
  KernelScope scope(out.device());
  dispatch_floating(input.dtype(), "layer_norm", [&]<typename T>() {
    layer_norm_forward_kernel<T>
        <<<one_block_per_row(rows, "layer_norm"), kRowThreads, 0, scope.stream()>>>(
            static_cast<const T*>(input.raw_data()), optional_data<T>(weight),
            optional_data<T>(bias), eps, cols, static_cast<T*>(out.raw_data()),
            static_cast<compute_t<T>*>(mean.raw_data()),
            static_cast<compute_t<T>*>(rstd.raw_data()));
    ZT_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::layer_norm_backward(const Tensor& grad_out, const Tensor& input,
                                      const Tensor& mean, const Tensor& rstd, const Tensor& weight,
                                      const Tensor& grad_input, const Tensor& grad_weight,
                                      const Tensor& grad_bias) {
  int64_t cols = input.size(-1);
  int64_t rows = cols > 0 ? input.numel() / cols : mean.numel();
  KernelScope scope(input.device());
  dispatch_floating(input.dtype(), "layer_norm_backward", [&]<typename T>() {
    using Stat = compute_t<T>;
    const T* grad = static_cast<const T*>(grad_out.raw_data());
    const T* in = static_cast<const T*>(input.raw_data());
    const Stat* mean_data = static_cast<const Stat*>(mean.raw_data());
    const Stat* rstd_data = static_cast<const Stat*>(rstd.raw_data());
    if (grad_input.defined() && rows > 0 && cols > 0) {
      layer_norm_backward_input_kernel<T>
          <<<one_block_per_row(rows, "layer_norm"), kRowThreads, 0, scope.stream()>>>(
              grad, in, mean_data, rstd_data, optional_data<T>(weight), cols,
              static_cast<T*>(grad_input.raw_data()));
      ZT_CUDA_CHECK_LAUNCH();
    }
    if ((!grad_weight.defined() && !grad_bias.defined()) || cols == 0) return;
    int64_t column_blocks = (cols + kThreads - 1) / kThreads;
    int64_t splits = (int64_t(scope.multiprocessors()) * 4 + column_blocks - 1) / column_blocks;
    int64_t max_splits = (rows + 31) / 32;  // at least 32 rows a slice
    if (splits > max_splits) splits = max_splits;
    if (splits < 1) splits = 1;
    int64_t rows_per_split = (rows + splits - 1) / splits;
    Tensor partials =
        empty({2 * splits * cols},
              {.dtype = DType::f64, .device = input.device(), .tag = MemoryTag::other});
    double* partial_data = static_cast<double*>(partials.raw_data());
    if (rows > 0) {
      layer_norm_param_partials_kernel<T>
          <<<dim3(unsigned(column_blocks), unsigned(splits)), kThreads, 0, scope.stream()>>>(
              grad, in, mean_data, rstd_data, rows, cols, rows_per_split, partial_data);
      ZT_CUDA_CHECK_LAUNCH();
    } else {
      ZT_CUDA_CHECK(cudaMemsetAsync(partial_data, 0, partials.nbytes(), scope.stream()));
    }
    layer_norm_param_finish_kernel<T><<<scope.blocks_for(cols), kThreads, 0, scope.stream()>>>(
        partial_data, splits, cols,
        grad_weight.defined() ? static_cast<T*>(grad_weight.raw_data()) : nullptr,
        grad_bias.defined() ? static_cast<T*>(grad_bias.raw_data()) : nullptr);
    ZT_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace zt::cuda
