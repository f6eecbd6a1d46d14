// conv2d forward, backward-input and backward-weight against direct loops in double, over
// stride, padding, dilation and groups, odd sizes (1, 3, 17), non-contiguous inputs, f16/bf16,
// thread-count independence and the validation messages.
#include <doctest/doctest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/parallel.h"
#include "tests/core/kernel_test_util.h"

namespace {

using zt::Conv2dParams;
using zt::DType;
using zt::Shape;
using zt::Tensor;
namespace ops = zt::ops;

struct ConvCase {
  int64_t batch, in_channels, in_h, in_w, out_channels, kernel_h, kernel_w;
  Conv2dParams params;

  int64_t out_h() const {
    return (in_h + 2 * params.padding_h - params.dilation_h * (kernel_h - 1) - 1) /
               params.stride_h +
           1;
  }
  int64_t out_w() const {
    return (in_w + 2 * params.padding_w - params.dilation_w * (kernel_w - 1) - 1) /
               params.stride_w +
           1;
  }
  Shape input_shape() const { return {batch, in_channels, in_h, in_w}; }
  Shape weight_shape() const {
    return {out_channels, in_channels / params.groups, kernel_h, kernel_w};
  }
  Shape out_shape() const { return {batch, out_channels, out_h(), out_w()}; }
  std::string name() const {
    return "N=" + std::to_string(batch) + " C=" + std::to_string(in_channels) +
           " H=" + std::to_string(in_h) + " W=" + std::to_string(in_w) +
           " Cout=" + std::to_string(out_channels) + " K=" + std::to_string(kernel_h) + "x" +
           std::to_string(kernel_w) + " stride=" + std::to_string(params.stride_h) +
           " pad=" + std::to_string(params.padding_h) +
           " dil=" + std::to_string(params.dilation_h) + " groups=" + std::to_string(params.groups);
  }
};

// Calls visit(n, co, oh, ow, input_index, weight_index) for every product term of the
// convolution whose input position lies inside the image.
template <typename Visit>
void for_each_term(const ConvCase& c, const Visit& visit) {
  int64_t in_per_group = c.in_channels / c.params.groups;
  int64_t out_per_group = c.out_channels / c.params.groups;
  for (int64_t n = 0; n < c.batch; ++n) {
    for (int64_t co = 0; co < c.out_channels; ++co) {
      int64_t group = co / out_per_group;
      for (int64_t oh = 0; oh < c.out_h(); ++oh) {
        for (int64_t ow = 0; ow < c.out_w(); ++ow) {
          for (int64_t ci = 0; ci < in_per_group; ++ci) {
            for (int64_t kh = 0; kh < c.kernel_h; ++kh) {
              int64_t ih = oh * c.params.stride_h - c.params.padding_h + kh * c.params.dilation_h;
              if (ih < 0 || ih >= c.in_h) continue;
              for (int64_t kw = 0; kw < c.kernel_w; ++kw) {
                int64_t iw = ow * c.params.stride_w - c.params.padding_w + kw * c.params.dilation_w;
                if (iw < 0 || iw >= c.in_w) continue;
                int64_t channel = group * in_per_group + ci;
                int64_t input_index = ((n * c.in_channels + channel) * c.in_h + ih) * c.in_w + iw;
                int64_t weight_index =
                    ((co * in_per_group + ci) * c.kernel_h + kh) * c.kernel_w + kw;
                int64_t out_index = ((n * c.out_channels + co) * c.out_h() + oh) * c.out_w() + ow;
                visit(out_index, input_index, weight_index, co);
              }
            }
          }
        }
      }
    }
  }
}

std::vector<double> reference_forward(const ConvCase& c, const std::vector<double>& input,
                                      const std::vector<double>& weight,
                                      const std::vector<double>& bias) {
  std::vector<double> out(size_t(zt::shape_numel(c.out_shape())), 0.0);
  int64_t plane = c.out_h() * c.out_w();
  if (!bias.empty()) {
    for (size_t i = 0; i < out.size(); ++i)
      out[i] = bias[size_t((int64_t(i) / plane) % c.out_channels)];
  }
  for_each_term(c, [&](int64_t o, int64_t i, int64_t w, int64_t) {
    out[size_t(o)] += input[size_t(i)] * weight[size_t(w)];
  });
  return out;
}

std::vector<double> reference_backward_input(const ConvCase& c, const std::vector<double>& grad_out,
                                             const std::vector<double>& weight) {
  std::vector<double> grad_input(size_t(zt::shape_numel(c.input_shape())), 0.0);
  for_each_term(c, [&](int64_t o, int64_t i, int64_t w, int64_t) {
    grad_input[size_t(i)] += grad_out[size_t(o)] * weight[size_t(w)];
  });
  return grad_input;
}

std::vector<double> reference_backward_weight(const ConvCase& c,
                                              const std::vector<double>& grad_out,
                                              const std::vector<double>& input) {
  std::vector<double> grad_weight(size_t(zt::shape_numel(c.weight_shape())), 0.0);
  for_each_term(c, [&](int64_t o, int64_t i, int64_t w, int64_t) {
    grad_weight[size_t(w)] += grad_out[size_t(o)] * input[size_t(i)];
  });
  return grad_weight;
}

Conv2dParams params_of(int64_t stride, int64_t padding, int64_t dilation, int64_t groups) {
  Conv2dParams params;
  params.stride_h = params.stride_w = stride;
  params.padding_h = params.padding_w = padding;
  params.dilation_h = params.dilation_w = dilation;
  params.groups = groups;
  return params;
}

std::vector<ConvCase> odd_cases() {
  return {
      {3, 4, 17, 13, 6, 3, 3, params_of(2, 1, 2, 2)},
      {1, 1, 1, 1, 1, 1, 1, params_of(1, 0, 1, 1)},
      {1, 3, 3, 3, 1, 3, 3, params_of(1, 1, 1, 1)},
      {2, 3, 17, 17, 3, 3, 1, params_of(1, 0, 1, 3)},  // depthwise, non-square kernel
      {3, 2, 9, 11, 4, 2, 3, params_of(3, 1, 1, 1)},
  };
}

void check_case(const ConvCase& c, DType dtype, double tolerance) {
  Tensor input = zt::test::random_tensor(c.input_shape(), 1, dtype);
  Tensor weight = zt::test::random_tensor(c.weight_shape(), 2, dtype);
  Tensor bias = zt::test::random_tensor({c.out_channels}, 3, dtype);
  Tensor grad_out = zt::test::random_tensor(c.out_shape(), 4, dtype);
  std::vector<double> x = input.to_vector(), w = weight.to_vector(), g = grad_out.to_vector();

  Tensor out = ops::conv2d(input, weight, bias, c.params);
  REQUIRE(out.sizes() == c.out_shape());
  zt::test::check_close(out, reference_forward(c, x, w, bias.to_vector()), 0.0, tolerance,
                        "forward " + c.name());
  zt::test::check_close(ops::conv2d(input, weight, Tensor(), c.params),
                        reference_forward(c, x, w, {}), 0.0, tolerance,
                        "forward without bias " + c.name());
  zt::test::check_close(ops::conv2d_backward_input(grad_out, weight, c.input_shape(), c.params),
                        reference_backward_input(c, g, w), 0.0, tolerance,
                        "backward input " + c.name());
  zt::test::check_close(ops::conv2d_backward_weight(grad_out, input, c.weight_shape(), c.params),
                        reference_backward_weight(c, g, x), 0.0, tolerance * 4,
                        "backward weight " + c.name());
}

}  // namespace

TEST_CASE(
    "conv2d forward with stride 2, padding 1, dilation 2, groups 2 equals the reference loop") {
  ConvCase c{3, 4, 17, 13, 6, 3, 3, params_of(2, 1, 2, 2)};
  Tensor input = zt::test::random_tensor(c.input_shape(), 5, DType::f64);
  Tensor weight = zt::test::random_tensor(c.weight_shape(), 6, DType::f64);
  Tensor bias = zt::test::random_tensor({6}, 7, DType::f64);
  Tensor out = ops::conv2d(input, weight, bias, c.params);
  CHECK(out.sizes() == Shape{3, 6, 8, 6});  // (17 + 2 - 4 - 1) / 2 + 1, (13 + 2 - 4 - 1) / 2 + 1
  zt::test::check_close(
      out, reference_forward(c, input.to_vector(), weight.to_vector(), bias.to_vector()), 0.0,
      1e-12);
}

TEST_CASE("conv2d forward and both backward kernels equal the reference loops in f32 and f64") {
  for (const ConvCase& c : odd_cases()) {
    check_case(c, DType::f64, 1e-12);
    check_case(c, DType::f32, 2e-5);
  }
}

TEST_CASE("conv2d of a non-contiguous input equals conv2d of its contiguous copy") {
  ConvCase c{2, 4, 17, 13, 2, 3, 3, params_of(1, 1, 1, 2)};
  // [N, C, W, H] transposed to [N, C, H, W]: a view whose last stride is not 1.
  Tensor stored = zt::test::random_tensor({2, 4, 13, 17}, 8, DType::f64);
  Tensor input = ops::transpose(stored, 2, 3);
  REQUIRE_FALSE(input.is_contiguous());
  Tensor weight = ops::slice(zt::test::random_tensor({4, 2, 3, 3}, 9, DType::f64), 0, 0, 4, 2);
  REQUIRE(weight.sizes() == c.weight_shape());
  Tensor out = ops::conv2d(input, weight, Tensor(), c.params);
  zt::test::check_close(out, reference_forward(c, input.to_vector(), weight.to_vector(), {}), 0.0,
                        1e-12);
}

TEST_CASE("f16 and bf16 conv2d match the reference within their precision") {
  ConvCase c{2, 4, 9, 7, 4, 3, 3, params_of(2, 1, 1, 2)};
  for (DType dtype : {DType::f16, DType::bf16}) {
    Tensor input = zt::test::random_tensor(c.input_shape(), 10, dtype);
    Tensor weight = zt::test::random_tensor(c.weight_shape(), 11, dtype);
    Tensor grad_out = zt::test::random_tensor(c.out_shape(), 12, dtype);
    std::vector<double> x = input.to_vector(), w = weight.to_vector(), g = grad_out.to_vector();
    double rtol = 2 * zt::test::unit_roundoff(dtype);
    Tensor out = ops::conv2d(input, weight, Tensor(), c.params);
    CHECK(out.dtype() == dtype);
    zt::test::check_close(out, reference_forward(c, x, w, {}), rtol, 1e-4);
    zt::test::check_close(ops::conv2d_backward_input(grad_out, weight, c.input_shape(), c.params),
                          reference_backward_input(c, g, w), rtol, 1e-4);
    zt::test::check_close(ops::conv2d_backward_weight(grad_out, input, c.weight_shape(), c.params),
                          reference_backward_weight(c, g, x), rtol, 1e-3);
  }
}

TEST_CASE("conv2d backward weight is identical for 1 and 2 threads") {
  // 64 images of 3x32x32 with a 3x3 kernel span several column chunks.
  ConvCase c{64, 3, 32, 32, 8, 3, 3, params_of(1, 1, 1, 1)};
  Tensor input = zt::test::random_tensor(c.input_shape(), 13);
  Tensor grad_out = zt::test::random_tensor(c.out_shape(), 14);
  int threads_before = zt::num_threads();
  zt::set_num_threads(1);
  Tensor single = ops::conv2d_backward_weight(grad_out, input, c.weight_shape(), c.params);
  Tensor single_input = ops::conv2d_backward_input(
      grad_out, zt::test::random_tensor(c.weight_shape(), 15), c.input_shape(), c.params);
  zt::set_num_threads(2);
  Tensor parallel = ops::conv2d_backward_weight(grad_out, input, c.weight_shape(), c.params);
  Tensor parallel_input = ops::conv2d_backward_input(
      grad_out, zt::test::random_tensor(c.weight_shape(), 15), c.input_shape(), c.params);
  zt::set_num_threads(threads_before);
  CHECK(zt::test::bitwise_equal(single, parallel));
  CHECK(zt::test::bitwise_equal(single_input, parallel_input));
}

TEST_CASE("conv2d rejects mismatched channels, groups and too-small inputs with the shapes") {
  Tensor input = zt::zeros({1, 4, 5, 5});
  CHECK_THROWS_WITH_AS(
      ops::conv2d(input, zt::zeros({2, 3, 3, 3}), Tensor(), params_of(1, 0, 1, 1)),
      "conv2d: weight has 3 input channels per group, input has 4 channels and groups=1",
      std::invalid_argument);
  CHECK_THROWS_WITH_AS(ops::conv2d(input, zt::zeros({3, 2, 3, 3}), Tensor(), params_of(1, 0, 1, 2)),
                       doctest::Contains("divisible by groups=2"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(ops::conv2d(input, zt::zeros({2, 4, 7, 7}), Tensor(), params_of(1, 0, 1, 1)),
                       doctest::Contains("smaller than the dilated kernel"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(
      ops::conv2d(input, zt::zeros({2, 4, 3, 3}), zt::zeros({3}), params_of(1, 0, 1, 1)),
      doctest::Contains("conv2d: bias has shape [3], expected [2]"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(
      ops::conv2d(zt::zeros({4, 5, 5}), zt::zeros({2, 4, 3, 3}), Tensor(), params_of(1, 0, 1, 1)),
      doctest::Contains("expected a 4-d input"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(ops::conv2d(input, zt::zeros({2, 4, 3, 3}), Tensor(), params_of(0, 0, 1, 1)),
                       doctest::Contains("stride (0, 0)"), std::invalid_argument);
}
