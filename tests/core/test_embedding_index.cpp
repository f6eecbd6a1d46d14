// embedding forward/backward, index_select, index_add, cat, stack and split against direct
// loops: duplicate indices, padding_idx, non-contiguous inputs, integer dtypes, out-of-range
// indices (std::out_of_range naming the index and the size) and thread-count independence.
#include <doctest/doctest.h>

#include <stdexcept>
#include <vector>

#include "core/ops.h"
#include "core/parallel.h"
#include "tests/core/kernel_test_util.h"

namespace {

using zt::DType;
using zt::Shape;
using zt::Tensor;
namespace ops = zt::ops;

}  // namespace

TEST_CASE("embedding gathers rows for indices of any shape and its backward sums duplicates") {
  const int64_t vocabulary = 17, width = 129;
  Tensor weight = zt::test::random_tensor({vocabulary, width}, 1, DType::f64);
  std::vector<int64_t> ids = {3, 0, 16, 3, 5, 3};
  Tensor indices = zt::from_int64(ids, {2, 3});
  Tensor out = ops::embedding(weight, indices);
  REQUIRE(out.sizes() == Shape{2, 3, width});
  std::vector<double> w = weight.to_vector();
  std::vector<double> expected;
  for (int64_t id : ids) {
    expected.insert(expected.end(), w.begin() + id * width, w.begin() + (id + 1) * width);
  }
  zt::test::check_close(out, expected, 0.0, 0.0);

  Tensor grad_out = zt::test::random_tensor({2, 3, width}, 2, DType::f64);
  std::vector<double> g = grad_out.to_vector();
  for (int64_t padding_idx : {int64_t(-1), int64_t(3)}) {
    std::vector<double> grad_weight(size_t(vocabulary * width), 0.0);
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] == padding_idx) continue;
      for (int64_t c = 0; c < width; ++c) {
        grad_weight[size_t(ids[i] * width + c)] += g[i * size_t(width) + size_t(c)];
      }
    }
    zt::test::check_close(ops::embedding_backward(grad_out, indices, vocabulary, padding_idx),
                          grad_weight, 1e-15, 1e-15);
  }
}

TEST_CASE("embedding rejects an out-of-range index naming it and the size") {
  Tensor weight = zt::zeros({5, 3});
  CHECK_THROWS_WITH_AS(ops::embedding(weight, zt::from_int64(std::vector<int64_t>{1, 5}, {2})),
                       "embedding: index 5 is out of range for dimension 0 with size 5",
                       std::out_of_range);
  CHECK_THROWS_AS(ops::embedding(weight, zt::from_int64(std::vector<int64_t>{-1}, {1})),
                  std::out_of_range);
  CHECK_THROWS_WITH_AS(ops::embedding(weight, zt::zeros({2})),
                       doctest::Contains("embedding: indices has dtype f32, expected i64"),
                       std::invalid_argument);
}

TEST_CASE("embedding backward is identical for 1 and 2 threads") {
  std::vector<int64_t> ids(4096);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int64_t((i * 7919) % 31);
  Tensor indices = zt::from_int64(ids, {4096});
  Tensor grad_out = zt::test::random_tensor({4096, 200}, 3);
  int threads_before = zt::num_threads();
  zt::set_num_threads(1);
  Tensor single = ops::embedding_backward(grad_out, indices, 31);
  zt::set_num_threads(2);
  Tensor parallel = ops::embedding_backward(grad_out, indices, 31);
  zt::set_num_threads(threads_before);
  CHECK(zt::test::bitwise_equal(single, parallel));
}

TEST_CASE("index_select along each dim of a non-contiguous tensor equals the reference loop") {
  Tensor stored = zt::test::random_tensor({17, 3, 4}, 4, DType::f64);
  Tensor x = ops::permute(stored, {1, 0, 2});  // [3, 17, 4]
  std::vector<double> values = x.to_vector();
  std::vector<int64_t> ids = {2, 0, 2, 1};
  Tensor indices = zt::from_int64(ids, {4});
  for (int64_t dim = 0; dim < 3; ++dim) {
    std::vector<int64_t> picks = ids;
    if (dim == 1) picks = {16, 0, 3, 16};
    Tensor idx = zt::from_int64(picks, {4});
    Tensor out = ops::index_select(x, dim, idx);
    Shape shape = x.sizes();
    shape[size_t(dim)] = 4;
    REQUIRE(out.sizes() == shape);
    std::vector<double> expected;
    for (int64_t a = 0; a < shape[0]; ++a) {
      for (int64_t b = 0; b < shape[1]; ++b) {
        for (int64_t c = 0; c < shape[2]; ++c) {
          int64_t source[3] = {a, b, c};
          source[dim] = picks[size_t(source[dim])];
          expected.push_back(values[size_t((source[0] * 17 + source[1]) * 4 + source[2])]);
        }
      }
    }
    zt::test::check_close(out, expected, 0.0, 0.0);
  }
  // Integer tensors are selected as well.
  Tensor ints = zt::from_int64(std::vector<int64_t>{10, 11, 12}, {3});
  zt::test::check_close(ops::index_select(ints, 0, indices), {12, 10, 12, 11}, 0.0, 0.0);
  CHECK_THROWS_WITH_AS(ops::index_select(x, 1, zt::from_int64(std::vector<int64_t>{17}, {1})),
                       "index_select: index 17 is out of range for dimension 1 with size 17",
                       std::out_of_range);
}

TEST_CASE("index_add adds duplicate indices and leaves the input unchanged") {
  Tensor x = zt::test::random_tensor({3, 5}, 5, DType::f64);
  Tensor source = zt::test::random_tensor({3, 4}, 6, DType::f64);
  std::vector<int64_t> ids = {4, 1, 4, 0};
  Tensor out = ops::index_add(x, 1, zt::from_int64(ids, {4}), source);
  std::vector<double> expected = x.to_vector(), s = source.to_vector();
  for (int64_t row = 0; row < 3; ++row) {
    for (size_t i = 0; i < ids.size(); ++i) {
      expected[size_t(row * 5 + ids[i])] += s[size_t(row * 4) + i];
    }
  }
  zt::test::check_close(out, expected, 1e-15, 1e-15);
  CHECK_FALSE(zt::test::bitwise_equal(out, x));
  CHECK_THROWS_WITH_AS(ops::index_add(x, 1, zt::from_int64(ids, {4}), zt::zeros({3, 4})),
                       doctest::Contains("index_add: source must be defined and share"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(
      ops::index_add(x, 1, zt::from_int64(ids, {4}), zt::zeros({3, 3}, {.dtype = DType::f64})),
      doctest::Contains("index_add: source has shape [3, 3], expected [3, 4]"),
      std::invalid_argument);
}

TEST_CASE("cat, stack and split round-trip through narrow views") {
  Tensor a = zt::test::random_tensor({2, 3}, 7, DType::f64);
  Tensor b = ops::transpose(zt::test::random_tensor({3, 1}, 8, DType::f64), 0, 1);  // [1, 3]
  Tensor joined = ops::cat({a, b}, 0);
  REQUIRE(joined.sizes() == Shape{3, 3});
  std::vector<double> expected = a.to_vector();
  for (double v : b.to_vector()) expected.push_back(v);
  zt::test::check_close(joined, expected, 0.0, 0.0);
  zt::test::check_close(ops::cat({a, zt::zeros({0}, {.dtype = DType::f64})}, 1), a.to_vector(), 0.0,
                        0.0);

  std::vector<Tensor> pieces = ops::split(joined, 2, 0);
  REQUIRE(pieces.size() == 2);
  CHECK(pieces[1].sizes() == Shape{1, 3});
  zt::test::check_close(pieces[0], a.to_vector(), 0.0, 0.0);
  std::vector<Tensor> columns = ops::split_with_sizes(joined, {1, 2}, 1);
  CHECK(columns[1].sizes() == Shape{3, 2});
  zt::test::check_close(ops::cat(columns, 1), joined.to_vector(), 0.0, 0.0);

  Tensor stacked = ops::stack({a, a, a}, 1);
  REQUIRE(stacked.sizes() == Shape{2, 3, 3});
  zt::test::check_close(ops::select(stacked, 1, 2), a.to_vector(), 0.0, 0.0);

  CHECK_THROWS_WITH_AS(ops::cat({a, zt::zeros({2, 2}, {.dtype = DType::f64})}, 0),
                       doctest::Contains("cat: tensors must match in every dim but 0: got [2, 3], "
                                         "[2, 2]"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(ops::split_with_sizes(joined, {1, 1}, 0),
                       doctest::Contains("split_with_sizes: sizes [1, 1] sum to 2"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(ops::stack({a, b}, 0), doctest::Contains("stack: tensors must all have"),
                       std::invalid_argument);
}
