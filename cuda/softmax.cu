// CUDA softmax / log_softmax over the last dimension of a contiguous [rows, cols] tensor, their
// backward, and fused cross entropy on [N, C] logits, with the CPU backend's formulas
// (core/cpu/cpu_softmax.cpp). One block per row; every row subtracts its maximum before
// exponentiating. Row sums accumulate in double, as on the CPU, because softmax_backward's
// g - sum(g * y) cancels; element math (exp, products) is float for f32 and 16-bit inputs:
// the kernels are bandwidth-bound, and double exponentials would not be.
#include <stdexcept>
#include <string>

#include "cuda/block_reduce.cuh"
#include "cuda/cuda_backend.h"
#include "cuda/dtype.cuh"
#include "cuda/index_check.h"
#include "cuda/launch.cuh"

namespace zt::cuda {

namespace {

template <typename T>
using acc_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

struct Sum {
  template <typename A>
  __device__ A operator()(A a, A b) const {
    return a + b;
  }
};
struct Max {
  template <typename A>
  __device__ A operator()(A a, A b) const {
    return a > b ? a : b;  // NaN never becomes the maximum, as std::max on the CPU
  }
};

template <typename T>
__device__ inline acc_t<T> load_acc(T value) {
  return acc_t<T>(load_compute(value));
}

// The maximum and log(sum(exp(x - max))) of one row, returned to every thread.
template <typename T>
__device__ void row_max_and_log_sum_exp(const T* row, int64_t cols, acc_t<T>& row_max,
                                        acc_t<T>& log_sum) {
  using A = acc_t<T>;
  A local_max = A(-INFINITY);
  for (int64_t col = threadIdx.x; col < cols; col += blockDim.x) {
    local_max = Max{}(local_max, load_acc(row[col]));
  }
  row_max = block_reduce(local_max, Max{});
  double local_sum = 0;
  for (int64_t col = threadIdx.x; col < cols; col += blockDim.x) {
    local_sum += double(exp(load_acc(row[col]) - row_max));
  }
  log_sum = A(log(block_reduce(local_sum, Sum{})));
}

template <typename T>
__global__ void softmax_forward_kernel(const T* in, T* out, int64_t cols, bool log_output) {
  using A = acc_t<T>;
  const T* row = in + int64_t(blockIdx.x) * cols;
  T* out_row = out + int64_t(blockIdx.x) * cols;
  A row_max, log_sum;
  row_max_and_log_sum_exp(row, cols, row_max, log_sum);
  for (int64_t col = threadIdx.x; col < cols; col += blockDim.x) {
    A shifted = load_acc(row[col]) - row_max - log_sum;
    out_row[col] = store_compute<T>(compute_t<T>(log_output ? shifted : exp(shifted)));
  }
}

template <typename T>
__global__ void softmax_backward_kernel(const T* grad_out, const T* out, T* grad_in, int64_t cols,
                                        bool log_output) {
  using A = acc_t<T>;
  int64_t base = int64_t(blockIdx.x) * cols;
  const T* g = grad_out + base;
  const T* y = out + base;
  T* dx = grad_in + base;
  // log: dx = g - softmax * sum(g); else dx = y * (g - sum(g * y)). All in double, as on the
  // CPU: g - sum(g * y) cancels (by 440x in the tests' rows), so a float product, sum or
  // difference would lose digits the CPU keeps.
  double local = 0;
  for (int64_t col = threadIdx.x; col < cols; col += blockDim.x) {
    double grad = double(load_acc(g[col]));
    local += log_output ? grad : grad * double(load_acc(y[col]));
  }
  double total = block_reduce(local, Sum{});
  for (int64_t col = threadIdx.x; col < cols; col += blockDim.x) {
    double grad = double(load_acc(g[col])), output = double(load_acc(y[col]));
    double value = log_output ? grad - exp(output) * total : output * (grad - total);
    dx[col] = round_from_double<T>(value);
  }
}

template <typename T>
__global__ void cross_entropy_forward_kernel(const T* logits, const int64_t* targets,
                                             int64_t classes, int64_t ignore_index,
                                             double label_smoothing, T* losses, T* log_probs) {
  using A = acc_t<T>;
  int64_t sample = blockIdx.x;
  const T* row = logits + sample * classes;
  T* log_prob_row = log_probs + sample * classes;
  A row_max = 0, log_sum = 0;
  if (classes > 0) row_max_and_log_sum_exp(row, classes, row_max, log_sum);
  double local = 0;
  for (int64_t col = threadIdx.x; col < classes; col += blockDim.x) {
    A value = load_acc(row[col]) - row_max - log_sum;
    local += double(value);
    log_prob_row[col] = store_compute<T>(compute_t<T>(value));
  }
  double log_prob_sum = block_reduce(local, Sum{});
  if (threadIdx.x != 0) return;
  int64_t target = targets[sample];
  if (target == ignore_index) {
    losses[sample] = store_compute<T>(compute_t<T>(0));
    return;
  }
  double target_log_prob = double(load_acc(row[target]) - row_max - log_sum);
  double value =
      -(1.0 - label_smoothing) * target_log_prob - label_smoothing / double(classes) * log_prob_sum;
  losses[sample] = round_from_double<T>(value);
}

template <typename T>
__global__ void cross_entropy_backward_kernel(const T* grad_losses, const T* log_probs,
                                              const int64_t* targets, int64_t classes,
                                              int64_t ignore_index, double label_smoothing,
                                              T* grad_logits) {
  using A = acc_t<T>;
  int64_t sample = blockIdx.x;
  T* grad_row = grad_logits + sample * classes;
  const T* log_prob_row = log_probs + sample * classes;
  int64_t target = targets[sample];
  A upstream = load_acc(grad_losses[sample]);
  A smoothing_per_class = classes > 0 ? A(label_smoothing / double(classes)) : A(0);
  for (int64_t col = threadIdx.x; col < classes; col += blockDim.x) {
    A value = 0;
    if (target != ignore_index) {
      A one_hot = col == target ? A(1.0 - label_smoothing) : A(0);
      value = upstream * (exp(load_acc(log_prob_row[col])) - one_hot - smoothing_per_class);
    }
    grad_row[col] = store_compute<T>(compute_t<T>(value));
  }
}

void check_targets(const Tensor& target, int64_t classes, int64_t ignore_index, const char* op) {
  if (auto bad = find_bad_index(target, classes, ignore_index)) {
    throw std::out_of_range(std::string(op) + ": target " + std::to_string(bad->value) +
                            " at position " + std::to_string(bad->position) +
                            " is out of range for " + std::to_string(classes) + " classes");
  }
}

}  // namespace

void CudaBackend::softmax_forward(const Tensor& in, const Tensor& out, bool log) {
  int64_t cols = in.dim() == 0 ? 1 : in.size(-1);
  if (cols == 0 || in.numel() == 0) return;
  int64_t rows = in.numel() / cols;
  KernelScope scope(out.device());
  dispatch_floating(in.dtype(), "softmax", [&]<typename T>() {
    softmax_forward_kernel<T>
        <<<one_block_per_row(rows, "softmax"), kRowThreads, 0, scope.stream()>>>(
            static_cast<const T*>(in.raw_data()), static_cast<T*>(out.raw_data()), cols, log);
    ZT_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::softmax_backward(const Tensor& grad_out, const Tensor& out, const Tensor& grad_in,
                                   bool log) {
  int64_t cols = out.dim() == 0 ? 1 : out.size(-1);
  if (cols == 0 || out.numel() == 0) return;
  int64_t rows = out.numel() / cols;
  KernelScope scope(grad_in.device());
  dispatch_floating(out.dtype(), "softmax_backward", [&]<typename T>() {
    softmax_backward_kernel<T>
        <<<one_block_per_row(rows, "softmax"), kRowThreads, 0, scope.stream()>>>(
            static_cast<const T*>(grad_out.raw_data()), static_cast<const T*>(out.raw_data()),
            static_cast<T*>(grad_in.raw_data()), cols, log);
    ZT_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::cross_entropy_forward(const Tensor& logits, const Tensor& target,
                                        int64_t ignore_index, double label_smoothing,
                                        const Tensor& losses, const Tensor& log_probs) {
  int64_t samples = logits.size(0), classes = logits.size(1);
  check_targets(target, classes, ignore_index, "cross_entropy");
  if (samples == 0) return;
  KernelScope scope(losses.device());
  dispatch_floating(logits.dtype(), "cross_entropy", [&]<typename T>() {
    cross_entropy_forward_kernel<T>
        <<<one_block_per_row(samples, "cross_entropy"), kRowThreads, 0, scope.stream()>>>(
            static_cast<const T*>(logits.raw_data()),
            static_cast<const int64_t*>(target.raw_data()), classes, ignore_index, label_smoothing,
            static_cast<T*>(losses.raw_data()), static_cast<T*>(log_probs.raw_data()));
    ZT_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::cross_entropy_backward(const Tensor& grad_losses, const Tensor& log_probs,
                                         const Tensor& target, int64_t ignore_index,
                                         double label_smoothing, const Tensor& grad_logits) {
  int64_t samples = log_probs.size(0), classes = log_probs.size(1);
  check_targets(target, classes, ignore_index, "cross_entropy_backward");
  if (samples == 0) return;
  KernelScope scope(grad_logits.device());
  dispatch_floating(log_probs.dtype(), "cross_entropy_backward", [&]<typename T>() {
    cross_entropy_backward_kernel<T>
        <<<one_block_per_row(samples, "cross_entropy"), kRowThreads, 0, scope.stream()>>>(
            static_cast<const T*>(grad_losses.raw_data()),
            static_cast<const T*>(log_probs.raw_data()),
            static_cast<const int64_t*>(target.raw_data()), classes, ignore_index, label_smoothing,
            static_cast<T*>(grad_logits.raw_data()));
    ZT_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace zt::cuda
