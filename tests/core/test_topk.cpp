// topk against a plain reference loop (each line along dim sorted by value, lower index first
// among ties) over every dim of a 3-d tensor, ties and NaN, integer dtypes, k = 0, bad k and
// dim, and its f64 gradient check (the values' gradient lands on the chosen positions).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "autograd/functions.h"
#include "core/ops.h"
#include "core/ops/topk.h"
#include "tests/autograd/gradcheck_helpers.h"
#include "tests/core/kernel_test_util.h"

namespace {

using zt::DType;
using zt::Shape;
using zt::Tensor;
namespace ops = zt::ops;

struct Expected {
  std::vector<double> values;
  std::vector<double> indices;
};

// The reference: for every line along `dim` of a contiguous [d0, d1, d2] tensor, the positions
// stably sorted by value (no NaN here), written in the output's row-major order.
Expected reference_topk(const std::vector<double>& x, const Shape& shape, int64_t dim, int64_t k,
                        bool largest) {
  Shape out_shape = shape;
  out_shape[size_t(dim)] = k;
  int64_t out_numel = out_shape[0] * out_shape[1] * out_shape[2];
  Expected result{std::vector<double>(size_t(out_numel)), std::vector<double>(size_t(out_numel))};
  Shape strides = {shape[1] * shape[2], shape[2], 1};
  Shape out_strides = {out_shape[1] * out_shape[2], out_shape[2], 1};
  for (int64_t a = 0; a < shape[0]; ++a) {
    for (int64_t b = 0; b < shape[1]; ++b) {
      for (int64_t c = 0; c < shape[2]; ++c) {
        int64_t position[3] = {a, b, c};
        if (position[dim] != 0) continue;  // one visit per line
        auto at = [&](int64_t j) {
          int64_t p[3] = {a, b, c};
          p[dim] = j;
          return x[size_t(p[0] * strides[0] + p[1] * strides[1] + p[2])];
        };
        std::vector<int64_t> order(static_cast<size_t>(shape[size_t(dim)]));
        std::iota(order.begin(), order.end(), int64_t(0));
        std::stable_sort(order.begin(), order.end(), [&](int64_t i, int64_t j) {
          return largest ? at(i) > at(j) : at(i) < at(j);
        });
        for (int64_t j = 0; j < k; ++j) {
          int64_t p[3] = {a, b, c};
          p[dim] = j;
          size_t out_index = size_t(p[0] * out_strides[0] + p[1] * out_strides[1] + p[2]);
          result.values[out_index] = at(order[size_t(j)]);
          result.indices[out_index] = double(order[size_t(j)]);
        }
      }
    }
  }
  return result;
}

}  // namespace

TEST_CASE("topk matches a reference sort along every dim, largest and smallest") {
  const Shape shape = {4, 6, 5};
  // Values on a coarse grid, so that every line has ties for the index rule to settle.
  std::vector<double> values = zt::test::random_values(120, 7, -3.0, 3.0);
  for (double& value : values) value = std::round(value * 2.0) / 2.0;
  Tensor x = zt::from_values(values, shape, {.dtype = DType::f64});
  for (int64_t dim = -3; dim < 3; ++dim) {
    int64_t wrapped = dim < 0 ? dim + 3 : dim;
    for (int64_t k : {int64_t(1), int64_t(3), shape[size_t(wrapped)]}) {
      for (bool largest : {true, false}) {
        CAPTURE(dim);
        CAPTURE(k);
        CAPTURE(largest);
        ops::TopK result = ops::topk(x, k, dim, largest);
        Expected expected = reference_topk(values, shape, wrapped, k, largest);
        Shape out_shape = shape;
        out_shape[size_t(wrapped)] = k;
        REQUIRE(result.values.sizes() == out_shape);
        CHECK(result.indices.dtype() == DType::i64);
        CHECK(result.values.to_vector() == expected.values);
        CHECK(result.indices.to_vector() == expected.indices);
      }
    }
  }
}

TEST_CASE("topk ranks NaN above every number, takes lower indices first on ties, any dtype") {
  double nan = std::numeric_limits<double>::quiet_NaN();
  Tensor x = zt::from_values({1.0, nan, 5.0, 5.0, nan, -2.0}, {6});
  ops::TopK largest = ops::topk(x, 4);
  CHECK(largest.indices.to_vector() == std::vector<double>{1, 4, 2, 3});
  ops::TopK smallest = ops::topk(x, 5, 0, /*largest=*/false);
  CHECK(smallest.indices.to_vector() == std::vector<double>{5, 0, 2, 3, 1});
  for (DType dtype : {DType::i64, DType::i32, DType::f16, DType::bf16}) {
    Tensor ints = zt::from_values({3, -1, 7, 3, 0}, {5}, {.dtype = dtype});
    ops::TopK result = ops::topk(ints, 3);
    CHECK(result.values.dtype() == dtype);
    CHECK(result.values.to_vector() == std::vector<double>{7, 3, 3});
    CHECK(result.indices.to_vector() == std::vector<double>{2, 0, 3});
  }
  // A non-contiguous input and a 0-d one.
  Tensor wide = zt::from_values({1, 9, 2, 8, 3, 7}, {2, 3});
  CHECK(ops::topk(ops::transpose(wide, 0, 1), 1, 0).indices.to_vector() ==
        std::vector<double>{1, 0});
  CHECK(ops::topk(zt::scalar_tensor(4.0), 1).values.item() == 4.0);
  CHECK(ops::topk(wide, 0).values.sizes() == Shape{2, 0});
}

TEST_CASE("topk rejects a k outside [0, size] and a dim outside the rank, naming them") {
  Tensor x = zt::zeros({3, 4});
  CHECK_THROWS_WITH_AS(ops::topk(x, 5), "topk: k (5) must be in [0, 4] for dim -1 of [3, 4]",
                       std::invalid_argument);
  CHECK_THROWS_AS(ops::topk(x, -1), std::invalid_argument);
  CHECK_THROWS_AS(ops::topk(x, 1, 2), std::exception);
  CHECK_THROWS_AS(ops::topk(zt::zeros({3}, {.dtype = DType::u8}), 1), std::invalid_argument);
}

TEST_CASE("gradcheck topk: values' gradient scattered to the chosen positions") {
  using zt::test::check_gradients;
  for (int64_t dim : {int64_t(0), int64_t(-1)}) {
    for (bool largest : {true, false}) {
      check_gradients(
          [dim, largest](const std::vector<Tensor>& in) {
            return zt::topk(in[0], 2, dim, largest).values;
          },
          {zt::test::transposed_leaf({4, 5}, 301)});
    }
  }
  Tensor leaf =
      zt::test::as_leaf(zt::from_values({0.5, 2.0, -1.0, 3.0}, {4}, {.dtype = DType::f64}));
  zt::Tensor weights = zt::from_values({10.0, 1.0}, {2}, {.dtype = DType::f64});
  zt::sum(zt::topk(leaf, 2).values * weights).backward();
  CHECK(leaf.grad().to_vector() == std::vector<double>{0, 1, 0, 10});
}
