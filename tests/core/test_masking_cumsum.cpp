// tril, triu, masked_fill and cumsum against plain loops: every diagonal offset, leading batch
// dims, non-contiguous inputs, integer dtypes, broadcast masks, negative dims, 0-d inputs,
// 16-bit accumulation, and errors that name the op and the argument.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "core/ops.h"
#include "tests/core/kernel_test_util.h"

namespace {

using zt::DType;
using zt::Shape;
using zt::Tensor;
namespace ops = zt::ops;

// The triangle of a [batch, rows, cols] value list, by index arithmetic.
std::vector<double> reference_triangle(const std::vector<double>& values, int64_t rows,
                                       int64_t cols, int64_t diagonal, bool upper) {
  std::vector<double> out(values.size());
  for (size_t linear = 0; linear < values.size(); ++linear) {
    int64_t j = int64_t(linear) % cols, i = (int64_t(linear) / cols) % rows;
    bool keep = upper ? j - i >= diagonal : j - i <= diagonal;
    out[linear] = keep ? values[linear] : 0.0;
  }
  return out;
}

// Prefix sums of a contiguous [outer, size, inner] value list along the middle dim.
std::vector<double> reference_cumsum(const std::vector<double>& values, int64_t outer, int64_t size,
                                     int64_t inner) {
  std::vector<double> out(values.size());
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t j = 0; j < inner; ++j) {
      double running = 0.0;
      for (int64_t k = 0; k < size; ++k) {
        size_t at = size_t((o * size + k) * inner + j);
        running += values[at];
        out[at] = running;
      }
    }
  }
  return out;
}

}  // namespace

TEST_CASE("tril and triu keep one triangle of every matrix for each diagonal offset") {
  Tensor x = zt::test::random_tensor({2, 3, 4, 5}, 41, DType::f64);
  std::vector<double> values = x.to_vector();
  for (int64_t diagonal = -4; diagonal <= 5; ++diagonal) {
    zt::test::check_close(ops::tril(x, diagonal), reference_triangle(values, 4, 5, diagonal, false),
                          0, 0, "tril");
    zt::test::check_close(ops::triu(x, diagonal), reference_triangle(values, 4, 5, diagonal, true),
                          0, 0, "triu");
  }
  // A transposed (non-contiguous) input and an integer dtype.
  Tensor wide = zt::test::random_tensor({3, 6, 2}, 42, DType::f32);
  Tensor transposed = wide.transpose(-1, -2);
  std::vector<double> expected = ops::contiguous(transposed).to_vector();
  zt::test::check_close(ops::tril(transposed, 1), reference_triangle(expected, 2, 6, 1, false), 0,
                        0, "tril of a transpose");
  Tensor ints = ops::to_dtype(ops::mul(x, 100.0), DType::i32);
  Tensor upper = ops::triu(ints, -1);
  CHECK(upper.dtype() == DType::i32);
  zt::test::check_close(upper, reference_triangle(ints.to_vector(), 4, 5, -1, true), 0, 0,
                        "triu of i32");
}

TEST_CASE("tril and triu reject inputs of fewer than 2 dimensions") {
  CHECK_THROWS_WITH_AS(ops::tril(zt::zeros({4})),
                       doctest::Contains("tril: input must have at least 2 dimensions"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(ops::triu(zt::zeros({})),
                       doctest::Contains("triu: input must have at least 2 dimensions"),
                       std::invalid_argument);
}

TEST_CASE("masked_fill writes the value where a broadcast mask is set and copies elsewhere") {
  Tensor x = zt::test::random_tensor({2, 3, 4}, 43, DType::f32);
  std::vector<double> mask_values = {1, 0, 0, 1};  // [1, 4]: broadcast over dims 0 and 1
  Tensor mask = zt::from_values(mask_values, {1, 4}, {.dtype = DType::u8});
  double negative_infinity = -std::numeric_limits<double>::infinity();
  Tensor out = ops::masked_fill(x, mask, negative_infinity);
  REQUIRE(out.sizes() == x.sizes());
  std::vector<double> expected = x.to_vector();
  for (size_t i = 0; i < expected.size(); ++i) {
    if (mask_values[i % 4] != 0) expected[i] = negative_infinity;
  }
  std::vector<double> got = out.to_vector();
  CHECK(got == expected);
  // The causal mask of attention: fill above the diagonal.
  Tensor scores = zt::test::random_tensor({3, 3}, 44, DType::f64);
  Tensor above = ops::triu(zt::ones({3, 3}, {.dtype = DType::u8}), 1);
  std::vector<double> causal = ops::masked_fill(scores, above, -5.0).to_vector();
  std::vector<double> raw = scores.to_vector();
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t j = 0; j < 3; ++j)
      CHECK(causal[size_t(i * 3 + j)] == (j > i ? -5.0 : raw[size_t(i * 3 + j)]));
  }
}

TEST_CASE("masked_fill rejects a non-bool mask and one that does not broadcast to the input") {
  Tensor x = zt::zeros({4, 5});
  CHECK_THROWS_WITH_AS(ops::masked_fill(x, zt::zeros({4, 5}), 1.0),
                       doctest::Contains("masked_fill: mask must be u8"), std::invalid_argument);
  Tensor grows = zt::zeros({2, 4, 5}, {.dtype = DType::u8});
  CHECK_THROWS_WITH_AS(ops::masked_fill(x, grows, 1.0),
                       doctest::Contains("masked_fill: mask of shape [2, 4, 5] does not broadcast"),
                       std::invalid_argument);
  Tensor mismatched = zt::zeros({3, 5}, {.dtype = DType::u8});
  CHECK_THROWS_AS(ops::masked_fill(x, mismatched, 1.0), std::invalid_argument);
}

TEST_CASE("cumsum sums along every dim, negative dims and non-contiguous inputs included") {
  Tensor x = zt::test::random_tensor({3, 4, 5}, 45, DType::f64);
  std::vector<double> values = x.to_vector();
  zt::test::check_close(ops::cumsum(x, 0), reference_cumsum(values, 1, 3, 20), 1e-14, 1e-14,
                        "dim 0");
  zt::test::check_close(ops::cumsum(x, 1), reference_cumsum(values, 3, 4, 5), 1e-14, 1e-14,
                        "dim 1");
  zt::test::check_close(ops::cumsum(x, -1), reference_cumsum(values, 12, 5, 1), 1e-14, 1e-14,
                        "dim -1");
  Tensor transposed = x.transpose(0, 2);  // [5, 4, 3]
  std::vector<double> dense = ops::contiguous(transposed).to_vector();
  zt::test::check_close(ops::cumsum(transposed, -2), reference_cumsum(dense, 5, 4, 3), 1e-14, 1e-14,
                        "transposed");
  Tensor reversed = ops::cumsum(x, 1, /*reverse=*/true);
  std::vector<double> reversed_values = reversed.to_vector();
  CHECK(reversed_values[0] == doctest::Approx(values[0] + values[5] + values[10] + values[15]));
}

TEST_CASE("cumsum gives i64 for integer inputs, keeps 16-bit dtypes and handles 0-d") {
  std::vector<double> bytes = {200, 100, 250, 7};
  Tensor u8 = zt::from_values(bytes, {4}, {.dtype = DType::u8});
  Tensor sums = ops::cumsum(u8, 0);
  CHECK(sums.dtype() == DType::i64);
  CHECK(sums.to_vector() == std::vector<double>{200, 300, 550, 557});  // no u8 wrap-around
  // bf16 sums in f32 and rounds once per element: 1 + 256 * 2^-8 stays exact at 2.
  std::vector<double> small(257, 1.0 / 256.0);
  small[0] = 1.0;
  Tensor halves = zt::from_values(small, {257}, {.dtype = DType::bf16});
  Tensor running = ops::cumsum(halves, 0);
  CHECK(running.dtype() == DType::bf16);
  CHECK(running.to_vector().back() == 2.0);
  Tensor scalar = zt::from_values({3.5}, {}, {.dtype = DType::f32});
  CHECK(ops::cumsum(scalar, -1).to_vector() == std::vector<double>{3.5});
  CHECK(ops::cumsum(scalar, 0).dim() == 0);
  CHECK_THROWS_WITH_AS(ops::cumsum(zt::zeros({2, 3}), 2), doctest::Contains("cumsum: dim"),
                       std::exception);
}
