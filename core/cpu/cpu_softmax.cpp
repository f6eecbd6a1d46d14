// CPU softmax / log_softmax over the last dimension of a contiguous [rows, cols] tensor, and
// cross entropy on [N, C] logits. Every row subtracts its maximum before exponentiating, so
// large logits never overflow; sums accumulate in double. Rows are independent, so the
// parallel split over rows cannot change any result.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/dispatch.h"
#include "core/parallel.h"

namespace zt::cpu {

namespace {

// Rows per parallel chunk: about 32K elements of work each.
int64_t rows_per_chunk(int64_t cols) {
  return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, cols));
}

// The maximum and log(sum(exp(x - max))) of one row.
template <typename T>
void row_max_and_log_sum_exp(const T* row, int64_t cols, double& row_max, double& log_sum) {
  row_max = -std::numeric_limits<double>::infinity();
  for (int64_t col = 0; col < cols; ++col) row_max = std::max(row_max, double(row[col]));
  double sum = 0.0;
  for (int64_t col = 0; col < cols; ++col) sum += std::exp(double(row[col]) - row_max);
  log_sum = std::log(sum);
}

void check_targets(const Tensor& target, int64_t classes, int64_t ignore_index, const char* op) {
  const int64_t* targets = target.data_ptr<int64_t>();
  for (int64_t i = 0; i < target.numel(); ++i) {
    if (targets[i] == ignore_index) continue;
    if (targets[i] < 0 || targets[i] >= classes) {
      throw std::out_of_range(std::string(op) + ": target " + std::to_string(targets[i]) +
                              " at position " + std::to_string(i) + " is out of range for " +
                              std::to_string(classes) + " classes");
    }
  }
}

}  // namespace

void CpuBackend::softmax_forward(const Tensor& in, const Tensor& out, bool log) {
  int64_t cols = in.dim() == 0 ? 1 : in.size(-1);
  if (cols == 0) return;
  int64_t rows = in.numel() / cols;
  dispatch_floating(in.dtype(), "softmax", [&]<typename T>() {
    const T* input = in.data_ptr<T>();
    T* output = out.data_ptr<T>();
    parallel_for(0, rows, rows_per_chunk(cols), [&](int64_t first, int64_t last) {
      for (int64_t row = first; row < last; ++row) {
        const T* in_row = input + row * cols;
        T* out_row = output + row * cols;
        double row_max, log_sum;
        row_max_and_log_sum_exp(in_row, cols, row_max, log_sum);
        for (int64_t col = 0; col < cols; ++col) {
          double shifted = double(in_row[col]) - row_max - log_sum;
          out_row[col] = T(compute_type<T>(log ? shifted : std::exp(shifted)));
        }
      }
    });
  });
}

void CpuBackend::softmax_backward(const Tensor& grad_out, const Tensor& out, const Tensor& grad_in,
                                  bool log) {
  int64_t cols = out.dim() == 0 ? 1 : out.size(-1);
  if (cols == 0) return;
  int64_t rows = out.numel() / cols;
  dispatch_floating(out.dtype(), "softmax_backward", [&]<typename T>() {
    const T* grad_output = grad_out.data_ptr<T>();
    const T* output = out.data_ptr<T>();
    T* grad_input = grad_in.data_ptr<T>();
    parallel_for(0, rows, rows_per_chunk(cols), [&](int64_t first, int64_t last) {
      for (int64_t row = first; row < last; ++row) {
        const T* g = grad_output + row * cols;
        const T* y = output + row * cols;
        T* dx = grad_input + row * cols;
        if (log) {
          // y = log_softmax: dx = g - softmax * sum(g)
          double grad_sum = 0.0;
          for (int64_t col = 0; col < cols; ++col) grad_sum += double(g[col]);
          for (int64_t col = 0; col < cols; ++col) {
            dx[col] = T(compute_type<T>(double(g[col]) - std::exp(double(y[col])) * grad_sum));
          }
        } else {
          // y = softmax: dx = y * (g - sum(g * y))
          double dot = 0.0;
          for (int64_t col = 0; col < cols; ++col) dot += double(g[col]) * double(y[col]);
          for (int64_t col = 0; col < cols; ++col) {
            dx[col] = T(compute_type<T>(double(y[col]) * (double(g[col]) - dot)));
          }
        }
      }
    });
  });
}

void CpuBackend::cross_entropy_forward(const Tensor& logits, const Tensor& target,
                                       int64_t ignore_index, double label_smoothing,
                                       const Tensor& losses, const Tensor& log_probs) {
  int64_t samples = logits.size(0), classes = logits.size(1);
  check_targets(target, classes, ignore_index, "cross_entropy");
  const int64_t* targets = target.data_ptr<int64_t>();
  dispatch_floating(logits.dtype(), "cross_entropy", [&]<typename T>() {
    const T* input = logits.data_ptr<T>();
    T* log_prob = log_probs.data_ptr<T>();
    T* loss = losses.data_ptr<T>();
    parallel_for(0, samples, rows_per_chunk(classes), [&](int64_t first, int64_t last) {
      for (int64_t row = first; row < last; ++row) {
        const T* in_row = input + row * classes;
        T* log_prob_row = log_prob + row * classes;
        double row_max = 0.0, log_sum = 0.0;
        if (classes > 0) row_max_and_log_sum_exp(in_row, classes, row_max, log_sum);
        double log_prob_sum = 0.0;
        for (int64_t col = 0; col < classes; ++col) {
          double value = double(in_row[col]) - row_max - log_sum;
          log_prob_sum += value;
          log_prob_row[col] = T(compute_type<T>(value));
        }
        if (targets[row] == ignore_index) {
          loss[row] = T(compute_type<T>(0.0));
          continue;
        }
        double target_log_prob = double(in_row[targets[row]]) - row_max - log_sum;
        double value = -(1.0 - label_smoothing) * target_log_prob -
                       label_smoothing / double(classes) * log_prob_sum;
        loss[row] = T(compute_type<T>(value));
      }
    });
  });
}

void CpuBackend::cross_entropy_backward(const Tensor& grad_losses, const Tensor& log_probs,
                                        const Tensor& target, int64_t ignore_index,
                                        double label_smoothing, const Tensor& grad_logits) {
  int64_t samples = log_probs.size(0), classes = log_probs.size(1);
  check_targets(target, classes, ignore_index, "cross_entropy_backward");
  const int64_t* targets = target.data_ptr<int64_t>();
  double smoothing_per_class = classes > 0 ? label_smoothing / double(classes) : 0.0;
  dispatch_floating(log_probs.dtype(), "cross_entropy_backward", [&]<typename T>() {
    const T* grad_loss = grad_losses.data_ptr<T>();
    const T* log_prob = log_probs.data_ptr<T>();
    T* grad = grad_logits.data_ptr<T>();
    parallel_for(0, samples, rows_per_chunk(classes), [&](int64_t first, int64_t last) {
      for (int64_t row = first; row < last; ++row) {
        T* grad_row = grad + row * classes;
        const T* log_prob_row = log_prob + row * classes;
        if (targets[row] == ignore_index) {
          for (int64_t col = 0; col < classes; ++col) grad_row[col] = T(compute_type<T>(0.0));
          continue;
        }
        double upstream = double(grad_loss[row]);
        for (int64_t col = 0; col < classes; ++col) {
          double one_hot = col == targets[row] ? 1.0 - label_smoothing : 0.0;
          double value =
              upstream * (std::exp(double(log_prob_row[col])) - one_hot - smoothing_per_class);
          grad_row[col] = T(compute_type<T>(value));
        }
      }
    });
  });
}

}  // namespace zt::cpu
