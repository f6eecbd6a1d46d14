// layer_norm forward and backward against direct loops in double: rows of length 1, 3, 17, 129,
// with and without weight/bias, normalising over two dims, a non-contiguous input, f16/bf16
// (statistics kept in f32) and the shape checks.
#include <doctest/doctest.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/parallel.h"
#include "tests/core/kernel_test_util.h"

namespace {

using zt::DType;
using zt::Shape;
using zt::Tensor;
namespace ops = zt::ops;

struct ReferenceLayerNorm {
  std::vector<double> out, mean, rstd, grad_input, grad_weight, grad_bias;
};

// Forward and backward of layer norm over rows of `cols`, with optional weight and bias.
ReferenceLayerNorm reference_layer_norm(const std::vector<double>& x, int64_t cols,
                                        const std::vector<double>& weight,
                                        const std::vector<double>& bias,
                                        const std::vector<double>& grad_out, double eps) {
  int64_t rows = int64_t(x.size()) / cols;
  ReferenceLayerNorm r;
  r.out.resize(x.size());
  r.grad_input.resize(x.size());
  r.grad_weight.assign(size_t(cols), 0.0);
  r.grad_bias.assign(size_t(cols), 0.0);
  for (int64_t row = 0; row < rows; ++row) {
    const double* xr = x.data() + row * cols;
    const double* gr = grad_out.data() + row * cols;
    double mean = 0.0;
    for (int64_t c = 0; c < cols; ++c) mean += xr[c];
    mean /= double(cols);
    double variance = 0.0;
    for (int64_t c = 0; c < cols; ++c) variance += (xr[c] - mean) * (xr[c] - mean);
    variance /= double(cols);
    double rstd = 1.0 / std::sqrt(variance + eps);
    r.mean.push_back(mean);
    r.rstd.push_back(rstd);
    // d loss / d xhat_c = g_c * w_c; then the standard normalisation backward.
    double sum_dxhat = 0.0, sum_dxhat_xhat = 0.0;
    for (int64_t c = 0; c < cols; ++c) {
      double xhat = (xr[c] - mean) * rstd;
      double w = weight.empty() ? 1.0 : weight[size_t(c)];
      double b = bias.empty() ? 0.0 : bias[size_t(c)];
      r.out[size_t(row * cols + c)] = xhat * w + b;
      sum_dxhat += gr[c] * w;
      sum_dxhat_xhat += gr[c] * w * xhat;
      r.grad_weight[size_t(c)] += gr[c] * xhat;
      r.grad_bias[size_t(c)] += gr[c];
    }
    for (int64_t c = 0; c < cols; ++c) {
      double xhat = (xr[c] - mean) * rstd;
      double w = weight.empty() ? 1.0 : weight[size_t(c)];
      r.grad_input[size_t(row * cols + c)] =
          rstd * (gr[c] * w - sum_dxhat / double(cols) - xhat * sum_dxhat_xhat / double(cols));
    }
  }
  return r;
}

}  // namespace

TEST_CASE("layer_norm with and without affine over rows of 1, 3, 17, 129 equals the reference") {
  for (DType dtype : {DType::f32, DType::f64}) {
    double tolerance = dtype == DType::f64 ? 1e-11 : 5e-5;
    for (int64_t cols : {int64_t(1), int64_t(3), int64_t(17), int64_t(129)}) {
      for (bool affine : {false, true}) {
        Tensor x = zt::test::random_tensor({2, 3, cols}, uint32_t(cols), dtype, -3.0, 5.0);
        Tensor weight = affine ? zt::test::random_tensor({cols}, 2, dtype) : Tensor();
        Tensor bias = affine ? zt::test::random_tensor({cols}, 3, dtype) : Tensor();
        Tensor grad_out = zt::test::random_tensor(x.sizes(), 4, dtype);
        ReferenceLayerNorm expected = reference_layer_norm(
            x.to_vector(), cols, affine ? weight.to_vector() : std::vector<double>{},
            affine ? bias.to_vector() : std::vector<double>{}, grad_out.to_vector(), 1e-5);
        zt::ops::LayerNormForward forward = ops::layer_norm(x, {cols}, weight, bias, 1e-5);
        std::string name = "cols=" + std::to_string(cols) + (affine ? " affine" : "");
        CHECK(forward.mean.sizes() == Shape{6});
        zt::test::check_close(forward.out, expected.out, tolerance, tolerance, name);
        zt::test::check_close(forward.mean, expected.mean, tolerance, tolerance, name + " mean");
        zt::test::check_close(forward.rstd, expected.rstd, tolerance, tolerance, name + " rstd");
        zt::ops::LayerNormGrads grads =
            ops::layer_norm_backward(grad_out, x, {cols}, forward, weight, affine, affine);
        // A constant row of length 1 has xhat = 0 and rstd = 1/sqrt(eps): large but exact.
        zt::test::check_close(grads.input, expected.grad_input, tolerance, tolerance,
                              name + " grad input");
        if (affine) {
          zt::test::check_close(grads.weight, expected.grad_weight, tolerance, tolerance,
                                name + " grad weight");
          zt::test::check_close(grads.bias, expected.grad_bias, tolerance, tolerance,
                                name + " grad bias");
        } else {
          CHECK_FALSE(grads.weight.defined());
          CHECK_FALSE(grads.bias.defined());
        }
      }
    }
  }
}

TEST_CASE("layer_norm over the last two dims of a non-contiguous input equals the reference") {
  Tensor stored = zt::test::random_tensor({4, 17, 3}, 5, DType::f64);
  Tensor x = ops::transpose(stored, 1, 2);  // [4, 3, 17], not contiguous
  Tensor weight = zt::test::random_tensor({3, 17}, 6, DType::f64);
  Tensor bias = zt::test::random_tensor({3, 17}, 7, DType::f64);
  Tensor grad_out = zt::test::random_tensor({4, 3, 17}, 8, DType::f64);
  ReferenceLayerNorm expected = reference_layer_norm(x.to_vector(), 51, weight.to_vector(),
                                                     bias.to_vector(), grad_out.to_vector(), 1e-5);
  zt::ops::LayerNormForward forward = ops::layer_norm(x, {3, 17}, weight, bias);
  CHECK(forward.out.sizes() == Shape{4, 3, 17});
  zt::test::check_close(forward.out, expected.out, 1e-12, 1e-12);
  zt::ops::LayerNormGrads grads =
      ops::layer_norm_backward(grad_out, x, {3, 17}, forward, weight, true, false);
  zt::test::check_close(grads.input, expected.grad_input, 1e-11, 1e-11);
  zt::test::check_close(grads.weight, expected.grad_weight, 1e-11, 1e-11);
  CHECK_FALSE(grads.bias.defined());
}

TEST_CASE("f16 and bf16 layer_norm keep f32 statistics and match within their precision") {
  for (DType dtype : {DType::f16, DType::bf16}) {
    Tensor x = zt::test::random_tensor({5, 129}, 9, dtype, -2.0, 2.0);
    Tensor weight = zt::test::random_tensor({129}, 10, dtype);
    Tensor bias = zt::test::random_tensor({129}, 11, dtype);
    Tensor grad_out = zt::test::random_tensor({5, 129}, 12, dtype);
    ReferenceLayerNorm expected = reference_layer_norm(
        x.to_vector(), 129, weight.to_vector(), bias.to_vector(), grad_out.to_vector(), 1e-5);
    zt::ops::LayerNormForward forward = ops::layer_norm(x, {129}, weight, bias);
    CHECK(forward.out.dtype() == dtype);
    CHECK(forward.mean.dtype() == DType::f32);
    CHECK(forward.rstd.dtype() == DType::f32);
    double rtol = 2 * zt::test::unit_roundoff(dtype);
    zt::test::check_close(forward.out, expected.out, rtol, rtol);
    zt::test::check_close(forward.mean, expected.mean, 1e-6, 1e-6);
    zt::ops::LayerNormGrads grads =
        ops::layer_norm_backward(grad_out, x, {129}, forward, weight, true, true);
    zt::test::check_close(grads.input, expected.grad_input, 4 * rtol, 4 * rtol);
    zt::test::check_close(grads.bias, expected.grad_bias, rtol, 10 * rtol);
  }
}

TEST_CASE("layer_norm weight and bias gradients are identical for 1 and 2 threads") {
  Tensor x = zt::test::random_tensor({300, 513}, 13);
  Tensor grad_out = zt::test::random_tensor({300, 513}, 14);
  Tensor weight = zt::test::random_tensor({513}, 15);
  zt::ops::LayerNormForward forward = ops::layer_norm(x, {513}, weight, Tensor());
  int threads_before = zt::num_threads();
  zt::set_num_threads(1);
  zt::ops::LayerNormGrads single =
      ops::layer_norm_backward(grad_out, x, {513}, forward, weight, true, true);
  zt::set_num_threads(2);
  zt::ops::LayerNormGrads parallel =
      ops::layer_norm_backward(grad_out, x, {513}, forward, weight, true, true);
  zt::set_num_threads(threads_before);
  CHECK(zt::test::bitwise_equal(single.weight, parallel.weight));
  CHECK(zt::test::bitwise_equal(single.bias, parallel.bias));
  CHECK(zt::test::bitwise_equal(single.input, parallel.input));
}

TEST_CASE("layer_norm rejects a normalized_shape or weight that does not match the input") {
  Tensor x = zt::zeros({2, 3, 4});
  CHECK_THROWS_WITH_AS(ops::layer_norm(x, {3}, Tensor(), Tensor()),
                       doctest::Contains("layer_norm: normalized_shape [3] must be non-empty and "
                                         "match the last dims of input [2, 3, 4]"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(ops::layer_norm(x, {4}, zt::zeros({5}), Tensor()),
                       doctest::Contains("layer_norm: weight has shape [5], expected [4]"),
                       std::invalid_argument);
}
