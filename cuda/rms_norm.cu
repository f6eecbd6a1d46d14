// CUDA RMS norm over the last dimension of a contiguous [rows, cols] tensor, forward and
// backward, with the CPU backend's numerics (core/cpu/cpu_rms_norm.cpp): row sums in the
// compute type (f32 for f32 and 16-bit inputs), rstd stored as f32 for 16-bit inputs. One
// block per row. The weight gradient sums over rows in two steps, per column: row slices
// into double partials, then the slices in order, so it is the same on every run.
#include "core/factory.h"
#include "cuda/block_reduce.cuh"
#include "cuda/cuda_backend.h"
#include "cuda/dtype.cuh"
#include "cuda/launch.cuh"

namespace zt::cuda {

namespace {

template <typename Acc>
struct Sum {
  __device__ Acc operator()(Acc a, Acc b) const { return a + b; }
};

template <typename T>
__device__ inline compute_t<T> scaled_grad(const T* g, const T* gamma, int64_t col) {
  compute_t<T> scaled = load_compute(g[col]);
  return gamma != nullptr ? scaled * load_compute(gamma[col]) : scaled;
}

template <typename T>
__global__ void rms_norm_forward_kernel(const T* in, const T* gamma, double eps, int64_t cols,
                                        T* out, compute_t<T>* rstd) {
  using Acc = compute_t<T>;
  const int64_t row = blockIdx.x;
  const T* x = in + row * cols;
  Acc local = 0;
  for (int64_t col = threadIdx.x; col < cols; col += blockDim.x) {
    Acc value = load_compute(x[col]);
    local += value * value;
  }
  Acc mean_square = cols > 0 ? block_reduce(local, Sum<Acc>{}) / Acc(cols) : Acc(0);
  Acc inv_rms = Acc(1) / sqrt(mean_square + Acc(eps));
  if (threadIdx.x == 0) rstd[row] = inv_rms;
  T* y = out + row * cols;
  for (int64_t col = threadIdx.x; col < cols; col += blockDim.x) {
    Acc normalised = load_compute(x[col]) * inv_rms;
    y[col] =
        store_compute<T>(gamma != nullptr ? normalised * load_compute(gamma[col]) : normalised);
  }
}

// dx = rstd * (g*w - x * rstd^2 * mean(g*w*x))
template <typename T>
__global__ void rms_norm_backward_input_kernel(const T* grad, const T* in, const compute_t<T>* rstd,
                                               const T* gamma, int64_t cols, T* grad_in) {
  using Acc = compute_t<T>;
  const int64_t row = blockIdx.x;
  const T* g = grad + row * cols;
  const T* x = in + row * cols;
  const Acc inv_rms = rstd[row];
  Acc local = 0;
  for (int64_t col = threadIdx.x; col < cols; col += blockDim.x) {
    local += scaled_grad(g, gamma, col) * load_compute(x[col]);
  }
  const Acc x_factor = block_reduce(local, Sum<Acc>{}) * inv_rms * inv_rms / Acc(cols);
  T* dx = grad_in + row * cols;
  for (int64_t col = threadIdx.x; col < cols; col += blockDim.x) {
    dx[col] =
        store_compute<T>(inv_rms * (scaled_grad(g, gamma, col) - load_compute(x[col]) * x_factor));
  }
}

// partials[split][col] = sum over the rows of one slice of g * x * rstd; block (x: column
// block, y: row slice).
template <typename T>
__global__ void rms_norm_weight_partials_kernel(const T* grad, const T* in,
                                                const compute_t<T>* rstd, int64_t rows,
                                                int64_t cols, int64_t rows_per_split,
                                                double* partials) {
  const int64_t col = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (col >= cols) return;
  const int64_t split = blockIdx.y;
  const int64_t first = split * rows_per_split;
  const int64_t last = first + rows_per_split < rows ? first + rows_per_split : rows;
  double sum = 0;
  for (int64_t row = first; row < last; ++row) {
    sum += double(load_compute(grad[row * cols + col])) *
           double(load_compute(in[row * cols + col])) * double(rstd[row]);
  }
  partials[split * cols + col] = sum;
}

template <typename T>
__global__ void rms_norm_weight_finish_kernel(const double* partials, int64_t splits, int64_t cols,
                                              T* grad_gamma) {
  for (int64_t col = global_thread(); col < cols; col += grid_threads()) {
    double sum = 0;
    for (int64_t split = 0; split < splits; ++split) sum += partials[split * cols + col];
    grad_gamma[col] = round_from_double<T>(sum);
  }
}

template <typename T>
const T* optional_data(const Tensor& tensor) {
  return tensor.defined() ? static_cast<const T*>(tensor.raw_data()) : nullptr;
}

// The weight gradient: enough row slices to fill the device, at least 32 rows each.
template <typename T>
void rms_norm_weight_grad(const KernelScope& scope, const T* grad, const T* in,
                          const compute_t<T>* rstd, int64_t rows, int64_t cols,
                          const Tensor& grad_weight) {
  const int64_t column_blocks = (cols + kThreads - 1) / kThreads;
  int64_t splits = (int64_t(scope.multiprocessors()) * 4 + column_blocks - 1) / column_blocks;
  const int64_t max_splits = (rows + 31) / 32;
  if (splits > max_splits) splits = max_splits;
  if (splits < 1) splits = 1;
  const int64_t rows_per_split = (rows + splits - 1) / splits;
  Tensor partials =
      empty({splits * cols},
            {.dtype = DType::f64, .device = grad_weight.device(), .tag = MemoryTag::other});
  double* partial_data = static_cast<double*>(partials.raw_data());
  if (rows > 0) {
    rms_norm_weight_partials_kernel<T>
        <<<dim3(unsigned(column_blocks), unsigned(splits)), kThreads, 0, scope.stream()>>>(
            grad, in, rstd, rows, cols, rows_per_split, partial_data);
    ZT_CUDA_CHECK_LAUNCH();
  } else {
    ZT_CUDA_CHECK(cudaMemsetAsync(partial_data, 0, partials.nbytes(), scope.stream()));
  }
  rms_norm_weight_finish_kernel<T><<<scope.blocks_for(cols), kThreads, 0, scope.stream()>>>(
      partial_data, splits, cols, static_cast<T*>(grad_weight.raw_data()));
  ZT_CUDA_CHECK_LAUNCH();
}

}  // namespace

void CudaBackend::rms_norm_forward(const Tensor& input, const Tensor& weight, double eps,
                                   const Tensor& out, const Tensor& rstd) {
  const int64_t cols = input.size(-1), rows = rstd.numel();
  if (rows == 0) return;
  KernelScope scope(out.device());
  dispatch_floating(input.dtype(), "rms_norm", [&]<typename T>() {
    rms_norm_forward_kernel<T>
        <<<one_block_per_row(rows, "rms_norm"), kRowThreads, 0, scope.stream()>>>(
            static_cast<const T*>(input.raw_data()), optional_data<T>(weight), eps, cols,
            static_cast<T*>(out.raw_data()), static_cast<compute_t<T>*>(rstd.raw_data()));
    ZT_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::rms_norm_backward(const Tensor& grad_out, const Tensor& input, const Tensor& rstd,
                                    const Tensor& weight, const Tensor& grad_input,
                                    const Tensor& grad_weight) {
  const int64_t cols = input.size(-1), rows = rstd.numel();
  KernelScope scope(input.device());
  dispatch_floating(input.dtype(), "rms_norm_backward", [&]<typename T>() {
    const T* grad = static_cast<const T*>(grad_out.raw_data());
    const T* in = static_cast<const T*>(input.raw_data());
    const compute_t<T>* rstd_data = static_cast<const compute_t<T>*>(rstd.raw_data());
    if (grad_input.defined() && rows > 0 && cols > 0) {
      rms_norm_backward_input_kernel<T>
          <<<one_block_per_row(rows, "rms_norm_backward"), kRowThreads, 0, scope.stream()>>>(
              grad, in, rstd_data, optional_data<T>(weight), cols,
              static_cast<T*>(grad_input.raw_data()));
      ZT_CUDA_CHECK_LAUNCH();
    }
    if (grad_weight.defined() && cols > 0) {
      rms_norm_weight_grad<T>(scope, grad, in, rstd_data, rows, cols, grad_weight);
    }
  });
}

}  // namespace zt::cuda
