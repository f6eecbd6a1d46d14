// Tensor creation (zeros/ones/full/arange/from_values, *_like, tags) and the copy kernel's
// casts among all 7 dtypes: exact where representable, round-to-nearest-even into 16-bit
// types (also from f64, where two-step rounding would go wrong), truncation into integers.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/factory.h"
#include "core/ops/view.h"

using namespace zt;

TEST_CASE("zeros, ones, full and scalar_tensor fill every dtype") {
  for (DType dtype : kAllDTypes) {
    INFO(dtype_name(dtype));
    Tensor z = zeros({2, 3}, {.dtype = dtype});
    CHECK(z.dtype() == dtype);
    CHECK(z.is_contiguous());
    CHECK(z.to_vector() == std::vector<double>(6, 0.0));
    CHECK(ones({17}, {.dtype = dtype}).to_vector() == std::vector<double>(17, 1.0));
    CHECK(full({3}, 7.0, {.dtype = dtype}).to_vector() == std::vector<double>(3, 7.0));
    Tensor scalar = scalar_tensor(5.0, {.dtype = dtype});
    CHECK(scalar.dim() == 0);
    CHECK(scalar.item() == 5.0);
  }
  CHECK(zeros({0, 4}).numel() == 0);
  CHECK_THROWS_AS(empty({2, -1}), std::invalid_argument);
}

TEST_CASE("fill_ writes through a strided view and leaves the rest alone") {
  Tensor x = zeros({4, 5});
  ops::fill_(ops::slice(ops::transpose(x, 0, 1), 0, 1, 5, 2), 3.0);  // columns 1 and 3
  std::vector<double> values = x.to_vector();
  for (size_t i = 0; i < values.size(); ++i)
    CHECK(values[i] == ((i % 5 == 1 || i % 5 == 3) ? 3 : 0));
}

TEST_CASE("arange has ceil((end - start) / step) elements start + i * step") {
  CHECK(arange(0, 5).to_vector() == std::vector<double>{0, 1, 2, 3, 4});
  CHECK(arange(1, 2, 0.25, {.dtype = DType::f64}).to_vector() ==
        std::vector<double>{1, 1.25, 1.5, 1.75});
  CHECK(arange(5, 0, -2, {.dtype = DType::i64}).to_vector() == std::vector<double>{5, 3, 1});
  CHECK(arange(0, 1, 0.3).numel() == 4);
  CHECK(arange(3, 3).numel() == 0);
  CHECK(arange(3, 0).numel() == 0);
  Tensor long_range = arange(0, 100003, 1, {.dtype = DType::i32});
  std::vector<double> values = long_range.to_vector();
  CHECK(values.back() == 100002);
  CHECK(values[70000] == 70000);
  CHECK_THROWS_AS(arange(0, 1, 0), std::invalid_argument);
}

TEST_CASE("from_values and from_int64 convert host values and check their count") {
  Tensor x = from_values({1.5, -2.0, 3.25}, {3}, {.dtype = DType::f64});
  CHECK(x.to_vector() == std::vector<double>{1.5, -2.0, 3.25});
  std::vector<int64_t> big = {int64_t(1) << 60, -7};
  Tensor ints = from_int64(big, {2});
  CHECK(ints.dtype() == DType::i64);
  CHECK(ints.data_ptr<int64_t>()[0] == int64_t(1) << 60);
  CHECK(from_int64(big, {2}, {.dtype = DType::i32}).data_ptr<int32_t>()[1] == -7);
  try {
    from_values({1, 2, 3}, {2, 2});
    FAIL("wrong value count did not throw");
  } catch (const std::invalid_argument& error) {
    CHECK(std::string(error.what()).find("[2, 2]") != std::string::npos);
  }
}

TEST_CASE("new tensors take options.tag, else the current tag; *_like keep the source's") {
  Tensor param = zeros({3}, TensorOptions{}.with_tag(MemoryTag::param));
  CHECK(param.storage()->tag() == MemoryTag::param);
  CHECK(options_of(param).tag == MemoryTag::param);
  {
    MemoryTagGuard guard(MemoryTag::grad);
    CHECK(zeros({3}).storage()->tag() == MemoryTag::grad);
    CHECK(zeros_like(param).storage()->tag() == MemoryTag::param);
    CHECK(empty_like(param).dtype() == DType::f32);
  }
  CHECK(ones_like(param).to_vector() == std::vector<double>{1, 1, 1});
  // A staging tensor for a conversion is never accounted as a param.
  MemoryStats before = cpu_allocator().accounting().stats();
  cpu_allocator().accounting().reset_peak();
  Tensor converted = from_values({1, 2, 3, 4}, {4}, TensorOptions{}.with_tag(MemoryTag::param));
  CHECK(cpu_allocator().accounting().stats().peak(MemoryTag::param) -
            before.live(MemoryTag::param) ==
        16);
}

TEST_CASE("casts among all 7 dtypes are exact for small integers") {
  std::vector<double> values = {0, 1, 2, 3, 100, 127};
  for (DType from : kAllDTypes) {
    for (DType to : kAllDTypes) {
      INFO(dtype_name(from) << " -> " << dtype_name(to));
      Tensor source = from_values(values, {6}, {.dtype = from});
      Tensor converted = ops::to_dtype(source, to);
      CHECK(converted.dtype() == to);
      CHECK(converted.to_vector() == values);
    }
  }
}

TEST_CASE("casts into f16 and bf16 round to nearest even, also from f64 in one rounding") {
  // Halfway between 1 and the next f16 (1 + 2^-10) goes to the even 1; 1 + 3*2^-11 goes up.
  Tensor halfway = from_values({1 + std::ldexp(1, -11), 1 + 3 * std::ldexp(1, -11)}, {2});
  CHECK(ops::to_dtype(halfway, DType::f16).to_vector() ==
        std::vector<double>{1.0, 1 + std::ldexp(1, -9)});
  Tensor bf16_halfway = from_values({1 + std::ldexp(1, -8), 1 + 3 * std::ldexp(1, -8)}, {2});
  CHECK(ops::to_dtype(bf16_halfway, DType::bf16).to_vector() ==
        std::vector<double>{1.0, 1 + std::ldexp(1, -6)});
  // Just above a halfway point in f64: going through a nearest-rounded f32 would land exactly
  // on the halfway point and round down; one correct rounding goes up.
  double just_above = 1 + std::ldexp(1, -11) + std::ldexp(1, -40);
  Tensor precise = from_values({just_above, -just_above}, {2}, {.dtype = DType::f64});
  CHECK(ops::to_dtype(precise, DType::f16).to_vector() ==
        std::vector<double>{1 + std::ldexp(1, -10), -(1 + std::ldexp(1, -10))});
  double bf16_just_above = 1 + std::ldexp(1, -8) + std::ldexp(1, -40);
  CHECK(ops::to_dtype(from_values({bf16_just_above}, {1}, {.dtype = DType::f64}), DType::bf16)
            .item() == 1 + std::ldexp(1, -7));
  // Overflow goes to infinity, NaN stays NaN.
  Tensor extremes = from_values({1e6, std::nan("")}, {2}, {.dtype = DType::f64});
  std::vector<double> halves = ops::to_dtype(extremes, DType::f16).to_vector();
  CHECK(std::isinf(halves[0]));
  CHECK(std::isnan(halves[1]));
}

TEST_CASE("float to integer casts truncate toward zero and saturate; NaN gives 0") {
  Tensor x =
      from_values({2.7, -2.7, 1e10, -1e10, std::nan(""), 300, -5}, {7}, {.dtype = DType::f64});
  CHECK(ops::to_dtype(x, DType::i32).to_vector() ==
        std::vector<double>{2, -2, 2147483647.0, -2147483648.0, 0, 300, -5});
  CHECK(ops::to_dtype(x, DType::u8).to_vector() == std::vector<double>{2, 0, 255, 0, 0, 255, 0});
  Tensor huge = from_values({1e30, -1e30}, {2});
  std::vector<int64_t> expected = {std::numeric_limits<int64_t>::max(),
                                   std::numeric_limits<int64_t>::min()};
  Tensor as_i64 = ops::to_dtype(huge, DType::i64);
  CHECK(as_i64.data_ptr<int64_t>()[0] == expected[0]);
  CHECK(as_i64.data_ptr<int64_t>()[1] == expected[1]);
  // Integers into integers wrap modulo 2^bits.
  CHECK(ops::to_dtype(from_values({257, -1}, {2}, {.dtype = DType::i32}), DType::u8).to_vector() ==
        std::vector<double>{1, 255});
}

TEST_CASE("copy_ casts into a transposed destination and from an expanded source") {
  Tensor destination = zeros({3, 2}, {.dtype = DType::bf16});
  Tensor source = from_values({1, 2, 3, 4, 5, 6}, {2, 3}, {.dtype = DType::f64});
  ops::copy_(ops::transpose(destination, 0, 1), source);
  CHECK(destination.to_vector() == std::vector<double>{1, 4, 2, 5, 3, 6});
  Tensor row = from_values({7, 8}, {2}, {.dtype = DType::i64});
  ops::copy_(destination, row);
  CHECK(destination.to_vector() == std::vector<double>{7, 8, 7, 8, 7, 8});
}
