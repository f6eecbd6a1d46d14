// Reductions against reference loops in double: every subset of dims with and without
// keepdim, non-contiguous inputs, ties, NaN, zero-size dims, integer and 16-bit dtypes,
// sum_to_shape, and bitwise thread-count independence of long rows and full reductions.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/factory.h"
#include "core/ops/reduce.h"
#include "core/ops/view.h"
#include "core/parallel.h"

using namespace zt;

namespace {

std::vector<double> spread_values(int64_t count, uint64_t seed) {
  std::vector<double> values(static_cast<size_t>(count));
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 777;
  for (auto& value : values) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    value = -2.0 + 4.0 * double(state >> 11) / 9007199254740992.0;
  }
  return values;
}

Tensor spread_tensor(const Shape& shape, DType dtype, uint64_t seed) {
  return from_values(spread_values(shape_numel(shape), seed), shape, {.dtype = dtype});
}

struct ThreadCountGuard {
  int saved = num_threads();
  ~ThreadCountGuard() { set_num_threads(saved); }
};

// Reference reduction of a row-major tensor of `shape` over the dims flagged in `reduced`:
// one group of values per output element, in the order of the kept dims.
std::vector<std::vector<double>> reference_groups(const std::vector<double>& values,
                                                  const Shape& shape,
                                                  const std::vector<bool>& reduced) {
  int64_t groups = 1;
  for (size_t d = 0; d < shape.size(); ++d) groups *= reduced[d] ? 1 : shape[d];
  std::vector<std::vector<double>> result(static_cast<size_t>(groups));
  for (int64_t position = 0; position < int64_t(values.size()); ++position) {
    int64_t remaining = position;
    Shape index(shape.size());
    for (size_t d = shape.size(); d-- > 0;) {
      index[d] = remaining % shape[d];
      remaining /= shape[d];
    }
    int64_t group = 0;
    for (size_t d = 0; d < shape.size(); ++d) {
      if (!reduced[d]) group = group * shape[d] + index[d];
    }
    result[size_t(group)].push_back(values[size_t(position)]);
  }
  return result;
}

double reference(ReduceOp op, const std::vector<double>& group) {
  double sum = 0;
  for (double v : group) sum += v;
  double mean = sum / double(group.size());
  switch (op) {
    case ReduceOp::sum:
      return sum;
    case ReduceOp::mean:
      return mean;
    case ReduceOp::max:
      return *std::max_element(group.begin(), group.end());
    case ReduceOp::min:
      return *std::min_element(group.begin(), group.end());
    case ReduceOp::argmax:
      return double(std::max_element(group.begin(), group.end()) - group.begin());
    case ReduceOp::argmin:
      return double(std::min_element(group.begin(), group.end()) - group.begin());
    case ReduceOp::var: {
      double squares = 0;
      for (double v : group) squares += (v - mean) * (v - mean);
      return squares / double(group.size() - 1);
    }
  }
  return 0;
}

}  // namespace

TEST_CASE("sum, mean, amax, amin and var over every subset of dims match a reference loop") {
  const Shape shape = {2, 3, 5};
  for (DType dtype : {DType::f32, DType::f64, DType::bf16}) {
    Tensor x = spread_tensor(shape, dtype, 1);
    std::vector<double> values = x.to_vector();
    double tolerance = dtype == DType::bf16 ? 1e-2 : (dtype == DType::f32 ? 1e-6 : 1e-12);
    for (int mask = 0; mask < 8; ++mask) {
      Shape dims;
      std::vector<bool> reduced(3);
      for (int64_t d = 0; d < 3; ++d) {
        reduced[size_t(d)] = (mask >> d) & 1;
        if (reduced[size_t(d)]) dims.push_back(d);
      }
      if (dims.empty()) reduced.assign(3, true);  // empty dims reduce everything
      auto groups = reference_groups(values, shape, reduced);
      for (ReduceOp op :
           {ReduceOp::sum, ReduceOp::mean, ReduceOp::max, ReduceOp::min, ReduceOp::var}) {
        for (bool keepdim : {false, true}) {
          Tensor out = ops::reduce(op, x, dims, keepdim);
          Shape expected_shape;
          for (size_t d = 0; d < 3; ++d) {
            if (!reduced[d])
              expected_shape.push_back(shape[d]);
            else if (keepdim)
              expected_shape.push_back(1);
          }
          CHECK(out.sizes() == expected_shape);
          CHECK(out.dtype() == dtype);
          std::vector<double> got = out.to_vector();
          REQUIRE(got.size() == groups.size());
          for (size_t g = 0; g < groups.size(); ++g) {
            INFO("op " << int(op) << " dims " << shape_str(dims) << " " << dtype_name(dtype));
            double want = reference(op, groups[g]);
            CHECK(std::abs(got[g] - want) <= tolerance * (1 + std::abs(want)));
          }
        }
      }
    }
  }
}

TEST_CASE("reductions of transposed and sliced inputs equal those of contiguous copies") {
  Tensor base = spread_tensor({7, 17}, DType::f32, 2);
  for (const Tensor& view : {ops::transpose(base, 0, 1), ops::slice(base, 1, 0, 17, 4)}) {
    Tensor copy = ops::contiguous(view);
    for (int64_t dim : {0, 1, -1}) {
      CHECK(ops::sum(view, {dim}).to_vector() == ops::sum(copy, {dim}).to_vector());
      CHECK(ops::amax(view, {dim}).to_vector() == ops::amax(copy, {dim}).to_vector());
      CHECK(ops::argmin(view, dim).to_vector() == ops::argmin(copy, dim).to_vector());
    }
  }
}

TEST_CASE("argmax and argmin return i64 and the first index on ties") {
  Tensor x = from_values({1, 5, 5, 0, 2, 2, 2, 0}, {2, 4});
  Tensor maxima = ops::argmax(x, 1);
  CHECK(maxima.dtype() == DType::i64);
  CHECK(maxima.to_vector() == std::vector<double>{1, 0});
  CHECK(ops::argmin(x, 1).to_vector() == std::vector<double>{3, 3});
  CHECK(ops::argmax(x, 0, /*keepdim=*/true).sizes() == Shape{1, 4});
  CHECK(ops::argmax(x, 0).to_vector() == std::vector<double>{1, 0, 0, 0});  // col 3 ties
  // Ties across the block boundary of a long row keep the earlier index too.
  std::vector<double> long_row(100000, 1.0);
  long_row[40000] = 3.0;
  long_row[90000] = 3.0;
  CHECK(ops::argmax(from_values(long_row, {100000}), 0).item() == 40000);
}

TEST_CASE("argmax and argmin without a dim index the flattened tensor, views included") {
  Tensor x = from_values({1, 5, 7, 0, 2, 7, -3, 0}, {2, 4});
  CHECK(ops::argmax(x).dtype() == DType::i64);
  CHECK(ops::argmax(x).sizes() == Shape{});
  CHECK(ops::argmax(x).item() == 2);  // the first of the two 7s
  CHECK(ops::argmin(x).item() == 6);
  // The transpose reads 1, 2, 5, 7, 7, -3, 0, 0 in its own order.
  CHECK(ops::argmax(ops::transpose(x, 0, 1)).item() == 3);
  CHECK(ops::argmin(ops::transpose(x, 0, 1)).item() == 5);
  CHECK_THROWS_AS(ops::argmax(zeros({0, 3})), std::invalid_argument);
}

TEST_CASE("amax and argmax propagate the first NaN") {
  double nan = std::nan("");
  Tensor x = from_values({1, nan, 3, nan}, {4});
  CHECK(std::isnan(ops::amax(x).item()));
  CHECK(std::isnan(ops::amin(x).item()));
  CHECK(ops::argmax(x, 0).item() == 1);
}

TEST_CASE("reductions are bitwise equal for 1 and 2 threads, for long rows and many rows") {
  ThreadCountGuard restore;
  Tensor long_rows = spread_tensor({3, 200003}, DType::f32, 3);  // split into blocks
  Tensor many_rows = spread_tensor({5003, 61}, DType::f32, 4);
  Tensor all = spread_tensor({1 << 20}, DType::f32, 5);
  auto run_all = [&] {
    std::vector<std::vector<double>> results;
    for (const Tensor& x : {long_rows, many_rows}) {
      for (ReduceOp op :
           {ReduceOp::sum, ReduceOp::mean, ReduceOp::var, ReduceOp::max, ReduceOp::argmax}) {
        results.push_back(ops::reduce(op, x, {1}, false).to_vector());
      }
      results.push_back(ops::sum(x, {0}).to_vector());
    }
    results.push_back(ops::sum(all).to_vector());
    results.push_back(ops::var(all).to_vector());
    return results;
  };
  set_num_threads(1);
  auto single = run_all();
  set_num_threads(2);
  auto both = run_all();
  CHECK(single == both);
}

TEST_CASE("a full sum of 2^20 f32 values and the variance of long rows match a double reference") {
  std::vector<double> values = spread_values(1 << 20, 6);
  Tensor x = from_values(values, {1 << 20});
  double sum = 0;
  for (double v : x.to_vector()) sum += v;
  CHECK(ops::sum(x).item() == doctest::Approx(sum).epsilon(1e-6));
  // var of a row long enough to be combined from several blocks, with a large mean offset.
  std::vector<double> shifted(100000);
  for (size_t i = 0; i < shifted.size(); ++i) shifted[i] = 1000.0 + values[i];
  Tensor row = from_values(shifted, {1, 100000}, {.dtype = DType::f64});
  double mean = 0;
  for (double v : shifted) mean += v;
  mean /= double(shifted.size());
  double squares = 0;
  for (double v : shifted) squares += (v - mean) * (v - mean);
  CHECK(ops::var(row, {1}).item() == doctest::Approx(squares / 99999.0).epsilon(1e-12));
  CHECK(ops::var(row, {1}, /*correction=*/0).item() ==
        doctest::Approx(squares / 100000.0).epsilon(1e-12));
}

TEST_CASE("16-bit sums accumulate in higher precision than their storage") {
  // bf16 accumulation would stop growing at 256 (256 + 1 rounds back to 256).
  for (DType dtype : {DType::bf16, DType::f16}) {
    Tensor x = ones({4096}, {.dtype = dtype});
    CHECK(ops::sum(x).item() == 4096.0);
    CHECK(ops::mean(x).item() == 1.0);
  }
}

TEST_CASE("integer sums are i64; integer max keeps the dtype; integer mean throws") {
  Tensor x = from_values({250, 250, 250, 3}, {2, 2}, {.dtype = DType::u8});
  Tensor total = ops::sum(x, {1});
  CHECK(total.dtype() == DType::i64);
  CHECK(total.to_vector() == std::vector<double>{500, 253});
  CHECK(ops::amax(x, {0}).dtype() == DType::u8);
  CHECK(ops::amax(x, {0}).to_vector() == std::vector<double>{250, 250});
  CHECK_THROWS_AS(ops::mean(x), std::invalid_argument);
}

TEST_CASE("zero-size reductions: sum gives 0, mean NaN, amax and argmax throw") {
  Tensor x = zeros({0, 3});
  CHECK(ops::sum(x, {0}).to_vector() == std::vector<double>{0, 0, 0});
  CHECK(std::isnan(ops::mean(x, {0}).to_vector()[0]));
  CHECK(ops::sum(x).item() == 0.0);
  CHECK_THROWS_AS(ops::amax(x, {0}), std::invalid_argument);
  CHECK_THROWS_AS(ops::argmax(x, 0), std::invalid_argument);
  CHECK(ops::amax(x, {1}).sizes() == Shape{0});  // nothing to reduce into
}

TEST_CASE("negative dims, 0-d inputs and bad dims") {
  Tensor x = spread_tensor({2, 3, 4}, DType::f64, 7);
  CHECK(ops::sum(x, {-1}).to_vector() == ops::sum(x, {2}).to_vector());
  CHECK(ops::sum(x, {-3, -1}).sizes() == Shape{3});
  Tensor scalar = scalar_tensor(2.5);
  CHECK(ops::sum(scalar).item() == 2.5);
  CHECK(ops::amax(scalar, {0}).item() == 2.5);
  CHECK_THROWS_AS(ops::sum(x, {3}), std::out_of_range);
  try {
    ops::sum(x, {1, -2});
    FAIL("repeated dim did not throw");
  } catch (const std::invalid_argument& error) {
    CHECK(std::string(error.what()).find("[2, 3, 4]") != std::string::npos);
  }
}

TEST_CASE("sum_to_shape inverts broadcasting") {
  Tensor grad = ones({2, 3, 4});
  CHECK(ops::sum_to_shape(grad, {4}).to_vector() == std::vector<double>{6, 6, 6, 6});
  Tensor column = ops::sum_to_shape(grad, {3, 1});
  CHECK(column.sizes() == Shape{3, 1});
  CHECK(column.to_vector() == std::vector<double>{8, 8, 8});
  CHECK(ops::sum_to_shape(grad, {}).item() == 24);
  CHECK(ops::sum_to_shape(grad, {2, 3, 4}).is_same(grad));
  CHECK_THROWS_AS(ops::sum_to_shape(grad, {5}), std::invalid_argument);
}

TEST_CASE("sums over leading dims add pairwise: 2^16 rows of 0.1f sum exactly") {
  // Doubling is exact in binary floating point, so the pairwise sum of 2^16 equal f32 values
  // is exactly 2^16 times the value; a running sum drifts by thousands of ulp.
  const int64_t rows = int64_t(1) << 16;
  Tensor x = zt::full({rows, 3}, 0.1, {.dtype = DType::f32});
  const double exact = double(rows) * double(0.1f);
  CHECK(ops::sum(x, {0}).to_vector() == std::vector<double>(3, exact));
  CHECK(ops::sum(ops::reshape(x, {256, 256, 3}), {0, 1}).to_vector() ==
        std::vector<double>(3, exact));
  // Keeping the reduced dim, and reducing a transposed view the same way.
  CHECK(ops::sum(x, {0}, true).sizes() == zt::Shape{1, 3});
  CHECK(ops::sum(ops::transpose(ops::contiguous(ops::transpose(x, 0, 1)), 0, 1), {0}).to_vector() ==
        std::vector<double>(3, exact));
  // Odd row counts carry the last row into the first pair.
  Tensor odd = zt::from_values({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, {5, 2});
  CHECK(ops::sum(odd, {0}).to_vector() == std::vector<double>{25, 30});
}
