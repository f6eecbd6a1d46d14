// Views share storage and describe the right elements; reshape copies only when it must.
#include <doctest/doctest.h>

#include <stdexcept>

#include "core/factory.h"
#include "core/format.h"
#include "core/ops/view.h"

using namespace zt;

namespace {
// A [rows, cols] f64 tensor holding 0, 1, 2, ... in row-major order.
Tensor counting(const Shape& shape) {
  std::vector<double> values(static_cast<size_t>(shape_numel(shape)));
  for (size_t i = 0; i < values.size(); ++i) values[i] = double(i);
  return from_values(values, shape, {.dtype = DType::f64});
}
}  // namespace

TEST_CASE("transpose and permute are views with swapped strides") {
  Tensor x = counting({2, 3, 4});
  Tensor swapped = ops::transpose(x, 0, 2);
  CHECK(swapped.sizes() == Shape{4, 3, 2});
  CHECK(swapped.strides() == Shape{1, 4, 12});
  CHECK(swapped.storage() == x.storage());
  CHECK_FALSE(swapped.is_contiguous());
  Tensor permuted = ops::permute(x, {1, 2, 0});
  CHECK(permuted.sizes() == Shape{3, 4, 2});
  // permuted[i][j][k] == x[k][i][j] == k*12 + i*4 + j
  std::vector<double> values = permuted.to_vector();
  CHECK(values[size_t((1 * 4 + 2) * 2 + 1)] == 1 * 12 + 1 * 4 + 2);
}

TEST_CASE("slice with a step, narrow and select pick the right elements") {
  Tensor x = counting({5, 6});
  Tensor every_other = ops::slice(x, 1, 1, 6, 2);  // columns 1, 3, 5
  CHECK(every_other.sizes() == Shape{5, 3});
  CHECK(every_other.to_vector()[0] == 1);
  CHECK(every_other.to_vector()[4] == 6 + 3);
  Tensor rows = ops::narrow(x, 0, 2, 2);
  CHECK(rows.to_vector() == std::vector<double>{12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23});
  Tensor column = ops::select(x, 1, -1);
  CHECK(column.to_vector() == std::vector<double>{5, 11, 17, 23, 29});
  CHECK(ops::slice(x, 0, -2, 100).sizes() == Shape{2, 6});  // Python bounds clamp
  CHECK_THROWS_AS(ops::narrow(x, 0, 4, 2), std::out_of_range);
  CHECK_THROWS_AS(ops::select(x, 0, 5), std::out_of_range);
}

TEST_CASE("expand broadcasts with stride 0 and rejects incompatible sizes") {
  Tensor column = counting({3, 1});
  Tensor expanded = ops::expand(column, {2, 3, 4});
  CHECK(expanded.strides() == Shape{0, 1, 0});
  CHECK(expanded.to_vector()[size_t(1 * 12 + 2 * 4 + 3)] == 2);
  CHECK_THROWS_AS(ops::expand(column, {3, 2, 4}), std::invalid_argument);
  CHECK(ops::expand(column, {-1, 5}).sizes() == Shape{3, 5});
}

TEST_CASE("squeeze and unsqueeze add and remove size-1 dims") {
  Tensor x = counting({3, 1, 4});
  CHECK(ops::squeeze(x).sizes() == Shape{3, 4});
  CHECK(ops::squeeze(x, 1).sizes() == Shape{3, 4});
  CHECK(ops::squeeze(x, 0).sizes() == Shape{3, 1, 4});  // not size 1: unchanged
  CHECK(ops::unsqueeze(x, -1).sizes() == Shape{3, 1, 4, 1});
  CHECK(ops::unsqueeze(x, 0).sizes() == Shape{1, 3, 1, 4});
}

TEST_CASE("reshape is a view when strides allow and a copy otherwise") {
  Tensor x = counting({4, 6});
  Tensor viewed = ops::reshape(x, {2, -1, 3});
  CHECK(viewed.sizes() == Shape{2, 4, 3});
  CHECK(viewed.storage() == x.storage());
  Tensor transposed = ops::transpose(x, 0, 1);
  // Splitting the (strided) leading dim of a transpose is still a view...
  Tensor split_view = ops::view(transposed, {2, 3, 4});
  CHECK(split_view.storage() == x.storage());
  // ...but flattening it cannot be one.
  CHECK_THROWS_AS(ops::view(transposed, {24}), std::invalid_argument);
  Tensor flat = ops::reshape(transposed, {24});
  CHECK(flat.storage() != x.storage());
  CHECK(flat.to_vector()[1] == 6);  // transposed[0][1] == x[1][0]
  CHECK_THROWS_AS(ops::reshape(x, {5, -1}), std::invalid_argument);
  CHECK_THROWS_AS(ops::reshape(x, {-1, -1}), std::invalid_argument);
}

TEST_CASE("contiguous copies a non-contiguous view into row-major order") {
  Tensor x = counting({3, 4});
  Tensor transposed_copy = ops::contiguous(ops::transpose(x, 0, 1));
  CHECK(transposed_copy.is_contiguous());
  CHECK(transposed_copy.to_vector() == std::vector<double>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11});
  CHECK(ops::contiguous(x).is_same(x));  // already contiguous: no copy
}

TEST_CASE("clone copies and to_dtype converts") {
  Tensor x = counting({2, 2});
  Tensor copy = ops::clone(x);
  CHECK(copy.storage() != x.storage());
  CHECK(copy.to_vector() == x.to_vector());
  Tensor as_f32 = ops::to_dtype(x, DType::f32);
  CHECK(as_f32.dtype() == DType::f32);
  CHECK(as_f32.to_vector() == x.to_vector());
  Tensor as_i64 = ops::to_dtype(from_values({-1.7, 2.9}, {2}), DType::i64);
  CHECK(as_i64.to_vector() == std::vector<double>{-1, 2});  // truncation toward zero
}

TEST_CASE("copy_ into a view writes through to the base tensor") {
  Tensor x = zeros({3, 3}, {.dtype = DType::f64});
  ops::copy_(ops::select(x, 0, 1), from_values({1, 2, 3}, {3}, {.dtype = DType::f64}));
  ops::fill_(ops::select(x, 1, 2), 7.0);
  CHECK(x.to_vector() == std::vector<double>{0, 0, 7, 1, 2, 7, 0, 0, 7});
}

TEST_CASE("copy_ between overlapping views of one storage reads the original values") {
  Tensor x = counting({6});
  ops::copy_(ops::slice(x, 0, 1, 6), ops::slice(x, 0, 0, 5));  // shift right by one
  CHECK(x.to_vector() == std::vector<double>{0, 0, 1, 2, 3, 4});
}

TEST_CASE("printing shows values, shape, dtype and device") {
  Tensor x = counting({2, 3});
  std::string text = fmt::format("{}", x);
  CHECK(text == "tensor([[0, 1, 2], [3, 4, 5]], shape=[2, 3], dtype=f64, device=cpu)");
  std::string long_text = counting({100}).str();
  CHECK(long_text.find("0, 1, 2, ..., 97, 98, 99") != std::string::npos);
}

TEST_CASE("as_strided rejects views that reach past the storage") {
  Tensor x = counting({4});
  CHECK_THROWS_AS(ops::as_strided(x, {3}, {2}, 0), std::out_of_range);
  CHECK(ops::as_strided(x, {2}, {2}, 1).to_vector() == std::vector<double>{1, 3});
}
