// softmax / log_softmax forward and backward and cross entropy (ignore_index, label smoothing)
// against direct loops in double: rows of length 1, 3, 17, 129, huge logits (stability), a
// non-last dim of a non-contiguous view, f16/bf16 by precision, and out-of-range targets.
#include <doctest/doctest.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/ops.h"
#include "tests/core/kernel_test_util.h"

namespace {

using zt::DType;
using zt::Shape;
using zt::Tensor;
namespace ops = zt::ops;

const int64_t kRowLengths[] = {1, 3, 17, 129};

// Row-wise softmax (or log_softmax) of a [rows, cols] row-major array, shifted by the row max.
std::vector<double> reference_softmax(const std::vector<double>& x, int64_t cols, bool log) {
  std::vector<double> out(x.size());
  for (size_t start = 0; start < x.size(); start += size_t(cols)) {
    double row_max = x[start];
    for (int64_t c = 1; c < cols; ++c) row_max = std::max(row_max, x[start + size_t(c)]);
    double sum = 0.0;
    for (int64_t c = 0; c < cols; ++c) sum += std::exp(x[start + size_t(c)] - row_max);
    for (int64_t c = 0; c < cols; ++c) {
      double shifted = x[start + size_t(c)] - row_max;
      out[start + size_t(c)] = log ? shifted - std::log(sum) : std::exp(shifted) / sum;
    }
  }
  return out;
}

// The vector-Jacobian product of (log_)softmax: sum_j g_j * d y_j / d x_i.
std::vector<double> reference_softmax_backward(const std::vector<double>& x,
                                               const std::vector<double>& g, int64_t cols,
                                               bool log) {
  std::vector<double> p = reference_softmax(x, cols, false);
  std::vector<double> grad(x.size(), 0.0);
  for (size_t start = 0; start < x.size(); start += size_t(cols)) {
    for (int64_t i = 0; i < cols; ++i) {
      double sum = 0.0;
      for (int64_t j = 0; j < cols; ++j) {
        double pi = p[start + size_t(i)], pj = p[start + size_t(j)];
        double jacobian = log ? (i == j ? 1.0 : 0.0) - pi : pj * ((i == j ? 1.0 : 0.0) - pi);
        sum += g[start + size_t(j)] * jacobian;
      }
      grad[start + size_t(i)] = sum;
    }
  }
  return grad;
}

}  // namespace

TEST_CASE("softmax and log_softmax over rows of length 1, 3, 17, 129 equal the reference loop") {
  for (DType dtype : {DType::f32, DType::f64}) {
    double tolerance = dtype == DType::f64 ? 1e-13 : 2e-6;
    for (int64_t cols : kRowLengths) {
      for (bool log : {false, true}) {
        Tensor x = zt::test::random_tensor({5, cols}, uint32_t(cols), dtype, -5.0, 5.0);
        Tensor y = log ? ops::log_softmax(x, -1) : ops::softmax(x, 1);
        std::string name = "cols=" + std::to_string(cols) + (log ? " log" : "");
        zt::test::check_close(y, reference_softmax(x.to_vector(), cols, log), tolerance, tolerance,
                              name);
        Tensor g = zt::test::random_tensor({5, cols}, 77, dtype);
        zt::test::check_close(ops::softmax_backward(g, y, -1, log),
                              reference_softmax_backward(x.to_vector(), g.to_vector(), cols, log),
                              tolerance, tolerance, name + " backward");
      }
    }
  }
}

TEST_CASE("softmax of huge logits is finite and equals the shifted reference") {
  std::vector<double> values = {1000.0, 999.0, -1000.0, 1e4, 1e4 - 1.0, 88.0, 89.0, 90.0, 91.0};
  for (DType dtype : {DType::f32, DType::f64}) {
    Tensor x = zt::from_values(values, {3, 3}, {.dtype = dtype});
    std::vector<double> rounded = x.to_vector();
    zt::test::check_close(ops::softmax(x, -1), reference_softmax(rounded, 3, false), 1e-6, 1e-7);
    zt::test::check_close(ops::log_softmax(x, -1), reference_softmax(rounded, 3, true), 1e-6, 1e-5);
    for (double value : ops::log_softmax(x, -1).to_vector()) CHECK(std::isfinite(value));
  }
}

TEST_CASE("softmax over dim 0 of a transposed view equals the reference on the transpose") {
  Tensor stored = zt::test::random_tensor({17, 3}, 9, DType::f64);
  Tensor x = ops::transpose(stored, 0, 1);  // [3, 17], softmax over dim 0 (length 3)
  Tensor y = ops::softmax(x, 0);
  CHECK(y.sizes() == Shape{3, 17});
  // Softmax over dim 0 of x is softmax over the rows of `stored`, transposed.
  std::vector<double> by_row = reference_softmax(stored.to_vector(), 3, false);
  std::vector<double> expected(51);
  for (int64_t i = 0; i < 17; ++i) {
    for (int64_t j = 0; j < 3; ++j) expected[size_t(j * 17 + i)] = by_row[size_t(i * 3 + j)];
  }
  zt::test::check_close(y, expected, 1e-13, 1e-13);
  Tensor g = zt::test::random_tensor({3, 17}, 10, DType::f64);
  Tensor grad = ops::softmax_backward(g, y, 0, false);
  std::vector<double> g_rows(51);
  std::vector<double> gv = g.to_vector();
  for (int64_t i = 0; i < 17; ++i) {
    for (int64_t j = 0; j < 3; ++j) g_rows[size_t(i * 3 + j)] = gv[size_t(j * 17 + i)];
  }
  std::vector<double> grad_rows = reference_softmax_backward(stored.to_vector(), g_rows, 3, false);
  for (int64_t i = 0; i < 17; ++i) {
    for (int64_t j = 0; j < 3; ++j) expected[size_t(j * 17 + i)] = grad_rows[size_t(i * 3 + j)];
  }
  zt::test::check_close(grad, expected, 1e-12, 1e-12);
}

TEST_CASE("f16 and bf16 softmax match the reference within their precision") {
  for (DType dtype : {DType::f16, DType::bf16}) {
    for (int64_t cols : kRowLengths) {
      Tensor x = zt::test::random_tensor({4, cols}, uint32_t(cols + 1), dtype, -8.0, 8.0);
      double rtol = 2 * zt::test::unit_roundoff(dtype);
      zt::test::check_close(ops::softmax(x, -1), reference_softmax(x.to_vector(), cols, false),
                            rtol, 1e-6);
      zt::test::check_close(ops::log_softmax(x, -1), reference_softmax(x.to_vector(), cols, true),
                            rtol, rtol);
    }
  }
}

TEST_CASE("cross entropy with ignore_index and label smoothing equals the reference loop") {
  const int64_t classes = 17, samples = 6;
  const int64_t ignore_index = -100;
  std::vector<int64_t> targets = {0, 16, ignore_index, 5, 3, ignore_index};
  Tensor target = zt::from_int64(targets, {samples});
  for (DType dtype : {DType::f32, DType::f64}) {
    double tolerance = dtype == DType::f64 ? 1e-12 : 1e-5;
    for (double smoothing : {0.0, 0.1, 1.0}) {
      Tensor logits = zt::test::random_tensor({samples, classes}, 11, dtype, -4.0, 4.0);
      zt::ops::CrossEntropyForward forward =
          ops::cross_entropy_forward(logits, target, ignore_index, smoothing);
      std::vector<double> log_p = reference_softmax(logits.to_vector(), classes, true);
      std::vector<double> losses(samples, 0.0);
      std::vector<double> grad(size_t(samples * classes), 0.0);
      Tensor grad_losses = zt::test::random_tensor({samples}, 12, dtype);
      std::vector<double> upstream = grad_losses.to_vector();
      for (int64_t i = 0; i < samples; ++i) {
        if (targets[size_t(i)] == ignore_index) continue;
        double nll = -log_p[size_t(i * classes + targets[size_t(i)])];
        double uniform = 0.0;
        for (int64_t c = 0; c < classes; ++c) uniform -= log_p[size_t(i * classes + c)];
        losses[size_t(i)] = (1.0 - smoothing) * nll + smoothing * uniform / double(classes);
        for (int64_t c = 0; c < classes; ++c) {
          double target_weight =
              (c == targets[size_t(i)] ? 1.0 - smoothing : 0.0) + smoothing / double(classes);
          grad[size_t(i * classes + c)] =
              upstream[size_t(i)] * (std::exp(log_p[size_t(i * classes + c)]) - target_weight);
        }
      }
      std::string name = "smoothing=" + std::to_string(smoothing);
      zt::test::check_close(forward.losses, losses, tolerance, tolerance, name);
      zt::test::check_close(forward.log_probs, log_p, tolerance, tolerance, name + " log_probs");
      zt::test::check_close(
          ops::cross_entropy_backward(grad_losses, forward, target, ignore_index, smoothing), grad,
          tolerance, tolerance, name + " backward");
    }
  }
}

TEST_CASE("cross entropy rejects a target outside the classes naming it") {
  Tensor logits = zt::zeros({2, 3});
  Tensor target = zt::from_int64(std::vector<int64_t>{1, 3}, {2});
  CHECK_THROWS_WITH_AS(ops::cross_entropy_forward(logits, target),
                       doctest::Contains("target 3 at position 1 is out of range for 3 classes"),
                       std::out_of_range);
  CHECK_THROWS_WITH_AS(ops::cross_entropy_forward(logits, zt::zeros({2})),
                       doctest::Contains("cross_entropy: target has dtype f32, expected i64"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(
      ops::cross_entropy_forward(logits, zt::from_int64(std::vector<int64_t>{1}, {1})),
      doctest::Contains("logits [2, 3] and target [1]"), std::invalid_argument);
}
