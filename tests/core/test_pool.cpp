// max_pool2d (with indices, padding, dilation) and avg_pool2d (count_include_pad on and off),
// forward and backward, against direct loops in double on odd sizes, plus PyTorch's floor-mode
// output sizes, NaN propagation, 3-d inputs and validation messages.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/ops.h"
#include "tests/core/kernel_test_util.h"

namespace {

using zt::DType;
using zt::Pool2dParams;
using zt::Shape;
using zt::Tensor;
namespace ops = zt::ops;

Pool2dParams pool_params(int64_t kernel, int64_t stride, int64_t padding, int64_t dilation = 1,
                         bool count_include_pad = true) {
  Pool2dParams params;
  params.kernel_h = params.kernel_w = kernel;
  params.stride_h = params.stride_w = stride;
  params.padding_h = params.padding_w = padding;
  params.dilation_h = params.dilation_w = dilation;
  params.count_include_pad = count_include_pad;
  return params;
}

int64_t floor_out(int64_t size, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation) {
  return (size + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1;
}

struct ReferenceMaxPool {
  std::vector<double> out;
  std::vector<int64_t> indices;
};

ReferenceMaxPool reference_max_pool(const std::vector<double>& x, int64_t planes, int64_t h,
                                    int64_t w, const Pool2dParams& p) {
  int64_t out_h = floor_out(h, p.kernel_h, p.stride_h, p.padding_h, p.dilation_h);
  int64_t out_w = floor_out(w, p.kernel_w, p.stride_w, p.padding_w, p.dilation_w);
  ReferenceMaxPool result;
  for (int64_t plane = 0; plane < planes; ++plane) {
    for (int64_t oh = 0; oh < out_h; ++oh) {
      for (int64_t ow = 0; ow < out_w; ++ow) {
        double best = -std::numeric_limits<double>::infinity();
        int64_t best_index = -1;
        for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
          for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
            int64_t ih = oh * p.stride_h - p.padding_h + kh * p.dilation_h;
            int64_t iw = ow * p.stride_w - p.padding_w + kw * p.dilation_w;
            if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
            double value = x[size_t((plane * h + ih) * w + iw)];
            if (best_index < 0 || value > best) {
              best = value;
              best_index = ih * w + iw;
            }
          }
        }
        result.out.push_back(best);
        result.indices.push_back(best_index);
      }
    }
  }
  return result;
}

// The average-pool divisor of one window: with padding counted, the window positions inside
// [-padding, size + padding) on each axis; without, only those inside the image.
std::vector<double> reference_avg_pool(const std::vector<double>& x, int64_t planes, int64_t h,
                                       int64_t w, const Pool2dParams& p) {
  int64_t out_h = floor_out(h, p.kernel_h, p.stride_h, p.padding_h, 1);
  int64_t out_w = floor_out(w, p.kernel_w, p.stride_w, p.padding_w, 1);
  std::vector<double> out;
  for (int64_t plane = 0; plane < planes; ++plane) {
    for (int64_t oh = 0; oh < out_h; ++oh) {
      for (int64_t ow = 0; ow < out_w; ++ow) {
        double sum = 0.0;
        int64_t inside = 0, inside_padded = 0;
        for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
          for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
            int64_t ih = oh * p.stride_h - p.padding_h + kh;
            int64_t iw = ow * p.stride_w - p.padding_w + kw;
            if (ih < h + p.padding_h && iw < w + p.padding_w) ++inside_padded;
            if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
            sum += x[size_t((plane * h + ih) * w + iw)];
            ++inside;
          }
        }
        out.push_back(sum / double(p.count_include_pad ? inside_padded : inside));
      }
    }
  }
  return out;
}

// grad_input of average pooling: each output's gradient spread over its window by the divisor.
std::vector<double> reference_avg_pool_backward(const std::vector<double>& grad_out, int64_t planes,
                                                int64_t h, int64_t w, const Pool2dParams& p) {
  int64_t out_h = floor_out(h, p.kernel_h, p.stride_h, p.padding_h, 1);
  int64_t out_w = floor_out(w, p.kernel_w, p.stride_w, p.padding_w, 1);
  std::vector<double> grad_input(size_t(planes * h * w), 0.0);
  // The forward of a one-hot input at each output gives its divisor; reuse the forward loop.
  std::vector<double> ones(size_t(planes * h * w), 1.0);
  for (int64_t plane = 0; plane < planes; ++plane) {
    for (int64_t oh = 0; oh < out_h; ++oh) {
      for (int64_t ow = 0; ow < out_w; ++ow) {
        int64_t inside = 0, inside_padded = 0;
        for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
          for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
            int64_t ih = oh * p.stride_h - p.padding_h + kh;
            int64_t iw = ow * p.stride_w - p.padding_w + kw;
            if (ih < h + p.padding_h && iw < w + p.padding_w) ++inside_padded;
            if (ih >= 0 && ih < h && iw >= 0 && iw < w) ++inside;
          }
        }
        double divisor = double(p.count_include_pad ? inside_padded : inside);
        double g = grad_out[size_t((plane * out_h + oh) * out_w + ow)];
        for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
          for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
            int64_t ih = oh * p.stride_h - p.padding_h + kh;
            int64_t iw = ow * p.stride_w - p.padding_w + kw;
            if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
            grad_input[size_t((plane * h + ih) * w + iw)] += g / divisor;
          }
        }
      }
    }
  }
  return grad_input;
}

const int64_t kOddSides[] = {1, 3, 17};

}  // namespace

TEST_CASE("max_pool2d with padding and dilation equals the reference loop, indices included") {
  struct Setting {
    int64_t kernel, stride, padding, dilation;
  };
  for (Setting s : {Setting{2, 2, 0, 1}, Setting{3, 2, 1, 2}, Setting{3, 1, 1, 1},
                    Setting{1, 1, 0, 1}, Setting{2, 1, 1, 1}}) {
    for (int64_t h : kOddSides) {
      for (int64_t w : kOddSides) {
        Pool2dParams p = pool_params(s.kernel, s.stride, s.padding, s.dilation);
        if (floor_out(h, s.kernel, s.stride, s.padding, s.dilation) < 1 ||
            floor_out(w, s.kernel, s.stride, s.padding, s.dilation) < 1) {
          continue;
        }
        for (DType dtype : {DType::f32, DType::f64}) {
          Tensor input = zt::test::random_tensor({2, 3, h, w}, uint32_t(h * 31 + w), dtype);
          zt::ops::MaxPoolForward result = ops::max_pool2d(input, p);
          ReferenceMaxPool expected = reference_max_pool(input.to_vector(), 6, h, w, p);
          std::string name = "h=" + std::to_string(h) + " w=" + std::to_string(w) +
                             " kernel=" + std::to_string(s.kernel) +
                             " dilation=" + std::to_string(s.dilation);
          zt::test::check_close(result.out, expected.out, 0.0, 0.0, name);
          std::vector<double> expected_indices(expected.indices.begin(), expected.indices.end());
          zt::test::check_close(result.indices, expected_indices, 0.0, 0.0, name + " indices");

          // Backward: each output gradient lands on its argmax; overlapping windows add.
          Tensor grad_out = zt::test::random_tensor(result.out.sizes(), 3, dtype);
          std::vector<double> g = grad_out.to_vector();
          std::vector<double> grad_input(size_t(6 * h * w), 0.0);
          int64_t out_plane = result.out.size(2) * result.out.size(3);
          for (size_t i = 0; i < g.size(); ++i) {
            int64_t plane = int64_t(i) / out_plane;
            grad_input[size_t(plane * h * w + expected.indices[i])] += g[i];
          }
          zt::test::check_close(ops::max_pool2d_backward(grad_out, result.indices, input.sizes()),
                                grad_input, 0.0, 1e-6, name + " backward");
        }
      }
    }
  }
}

TEST_CASE("avg_pool2d with and without count_include_pad equals the reference loop") {
  for (bool include_pad : {true, false}) {
    for (int64_t h : kOddSides) {
      for (int64_t w : {int64_t(1), int64_t(3), int64_t(17), int64_t(129)}) {
        for (Pool2dParams p :
             {pool_params(3, 2, 1, 1, include_pad), pool_params(2, 2, 0, 1, include_pad),
              pool_params(3, 1, 1, 1, include_pad)}) {
          if (floor_out(h, p.kernel_h, p.stride_h, p.padding_h, 1) < 1 ||
              floor_out(w, p.kernel_w, p.stride_w, p.padding_w, 1) < 1) {
            continue;
          }
          Tensor input = zt::test::random_tensor({2, 2, h, w}, uint32_t(h + w), DType::f64);
          Tensor out = ops::avg_pool2d(input, p);
          std::string name = "h=" + std::to_string(h) + " w=" + std::to_string(w) +
                             " kernel=" + std::to_string(p.kernel_h) +
                             " include_pad=" + std::to_string(include_pad);
          zt::test::check_close(out, reference_avg_pool(input.to_vector(), 4, h, w, p), 0.0, 1e-12,
                                name);
          Tensor grad_out = zt::test::random_tensor(out.sizes(), 5, DType::f64);
          zt::test::check_close(ops::avg_pool2d_backward(grad_out, input.sizes(), p),
                                reference_avg_pool_backward(grad_out.to_vector(), 4, h, w, p), 0.0,
                                1e-12, name + " backward");
        }
      }
    }
  }
}

TEST_CASE("pooling output sizes follow PyTorch's floor mode") {
  Tensor input = zt::zeros({1, 1, 17, 16});
  CHECK(ops::max_pool2d(input, pool_params(2, 2, 0)).out.sizes() == Shape{1, 1, 8, 8});
  CHECK(ops::max_pool2d(input, pool_params(3, 2, 1, 2)).out.sizes() == Shape{1, 1, 8, 7});
  CHECK(ops::avg_pool2d(input, pool_params(3, 3, 1)).sizes() == Shape{1, 1, 6, 6});
}

TEST_CASE("max_pool2d propagates NaN and pools a non-contiguous 3-d input") {
  std::vector<double> values = {1.0, std::nan(""), 3.0, 4.0};
  Tensor input = zt::from_values(values, {1, 1, 2, 2});
  zt::ops::MaxPoolForward result = ops::max_pool2d(input, pool_params(2, 2, 0));
  CHECK(std::isnan(result.out.item()));
  CHECK(result.indices.item() == 1.0);

  // [C, W, H] transposed to [C, H, W].
  Tensor stored = zt::test::random_tensor({3, 17, 3}, 7, DType::f64);
  Tensor view = ops::transpose(stored, 1, 2);
  zt::ops::MaxPoolForward pooled = ops::max_pool2d(view, pool_params(3, 2, 1));
  CHECK(pooled.out.sizes() == Shape{3, 2, 9});
  zt::test::check_close(pooled.out,
                        reference_max_pool(view.to_vector(), 3, 3, 17, pool_params(3, 2, 1)).out,
                        0.0, 0.0);
}

TEST_CASE("f16 and bf16 pooling match the reference within their precision") {
  for (DType dtype : {DType::f16, DType::bf16}) {
    Tensor input = zt::test::random_tensor({2, 3, 17, 17}, 8, dtype);
    Pool2dParams p = pool_params(3, 2, 1);
    zt::test::check_close(ops::max_pool2d(input, p).out,
                          reference_max_pool(input.to_vector(), 6, 17, 17, p).out, 0.0, 0.0);
    zt::test::check_close(ops::avg_pool2d(input, p),
                          reference_avg_pool(input.to_vector(), 6, 17, 17, p),
                          zt::test::unit_roundoff(dtype), 1e-3);
  }
}

TEST_CASE("pooling rejects oversized padding and too-small inputs naming the sizes") {
  CHECK_THROWS_WITH_AS(ops::max_pool2d(zt::zeros({1, 1, 5, 5}), pool_params(2, 2, 2)),
                       doctest::Contains("max_pool2d: padding (2, 2) should be at most half"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(ops::avg_pool2d(zt::zeros({1, 1, 2, 2}), pool_params(3, 1, 0)),
                       doctest::Contains("avg_pool2d: input [1, 1, 2, 2] is too small"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(ops::avg_pool2d(zt::zeros({4, 4}), pool_params(2, 2, 0)),
                       doctest::Contains("expected a 3-d [C, H, W] or 4-d"), std::invalid_argument);
}
