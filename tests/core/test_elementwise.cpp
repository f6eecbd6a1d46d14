// Elementwise ops against plain reference loops in double: every float dtype, odd shapes,
// NumPy broadcasting, non-contiguous inputs, comparisons, where, fused activation backwards,
// in-place updates, errors, output tags and thread-count independence.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/factory.h"
#include "core/ops/elementwise.h"
#include "core/ops/view.h"
#include "core/parallel.h"

using namespace zt;

namespace {

constexpr DType kFloatDTypes[] = {DType::f32, DType::f64, DType::f16, DType::bf16};

// Deterministic values spread over [low, high), different for each seed.
std::vector<double> spread_values(int64_t count, uint64_t seed, double low = -2.0,
                                  double high = 2.0) {
  std::vector<double> values(static_cast<size_t>(count));
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 12345;
  for (auto& value : values) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    value = low + (high - low) * double(state >> 11) / 9007199254740992.0;
  }
  return values;
}

Tensor spread_tensor(const Shape& shape, DType dtype, uint64_t seed, double low = -2.0,
                     double high = 2.0) {
  return from_values(spread_values(shape_numel(shape), seed, low, high), shape, {.dtype = dtype});
}

// Relative tolerance of one computation in `dtype` (16-bit types round their output).
double tolerance(DType dtype) {
  switch (dtype) {
    case DType::f64:
      return 1e-12;
    case DType::f32:
      return 2e-6;
    case DType::f16:
      return 2e-3;
    case DType::bf16:
      return 1.6e-2;
    default:
      return 0.0;
  }
}

void check_close(const std::vector<double>& actual, const std::vector<double>& expected,
                 DType dtype, const std::string& what) {
  REQUIRE(actual.size() == expected.size());
  double rel = tolerance(dtype);
  for (size_t i = 0; i < actual.size(); ++i) {
    bool both_nan = std::isnan(actual[i]) && std::isnan(expected[i]);
    bool close = both_nan || actual[i] == expected[i] ||
                 std::abs(actual[i] - expected[i]) <= rel * (1.0 + std::abs(expected[i]));
    if (!close) {
      INFO(what << " element " << i << ": got " << actual[i] << ", want " << expected[i]);
      CHECK(close);
      return;
    }
  }
}

// Row-major index of `position` in a shape broadcast from `source` (aligned at the right).
int64_t broadcast_source_index(const Shape& out_shape, const Shape& source, int64_t position) {
  Shape out_index(out_shape.size());
  for (size_t d = out_shape.size(); d-- > 0;) {
    out_index[d] = position % out_shape[d];
    position /= out_shape[d];
  }
  int64_t index = 0;
  size_t lead = out_shape.size() - source.size();
  for (size_t d = 0; d < source.size(); ++d) {
    index = index * source[d] + (source[d] == 1 ? 0 : out_index[d + lead]);
  }
  return index;
}

double gelu_reference(double x) {
  return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
}
double silu_reference(double x) {
  return x / (1.0 + std::exp(-x));
}
double gelu_tanh_reference(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

struct UnaryCase {
  UnaryOp op;
  const char* name;
  std::function<double(double)> reference;
  double low, high;  // input range inside the op's domain
};

std::vector<UnaryCase> unary_cases() {
  return {
      {UnaryOp::neg, "neg", [](double x) { return -x; }, -3, 3},
      {UnaryOp::exp, "exp", [](double x) { return std::exp(x); }, -3, 3},
      {UnaryOp::log, "log", [](double x) { return std::log(x); }, 0.1, 5},
      {UnaryOp::sqrt, "sqrt", [](double x) { return std::sqrt(x); }, 0.1, 5},
      {UnaryOp::rsqrt, "rsqrt", [](double x) { return 1 / std::sqrt(x); }, 0.1, 5},
      {UnaryOp::abs, "abs", [](double x) { return std::abs(x); }, -3, 3},
      {UnaryOp::tanh, "tanh", [](double x) { return std::tanh(x); }, -3, 3},
      {UnaryOp::sigmoid, "sigmoid", [](double x) { return 1 / (1 + std::exp(-x)); }, -6, 6},
      {UnaryOp::relu, "relu", [](double x) { return x > 0 ? x : 0.0; }, -3, 3},
      {UnaryOp::gelu, "gelu", gelu_reference, -4, 4},
      {UnaryOp::gelu_tanh, "gelu_tanh", gelu_tanh_reference, -4, 4},
      {UnaryOp::sign, "sign", [](double x) { return double((x > 0) - (x < 0)); }, -3, 3},
      {UnaryOp::square, "square", [](double x) { return x * x; }, -3, 3},
      {UnaryOp::reciprocal, "reciprocal", [](double x) { return 1 / x; }, 0.2, 4},
      {UnaryOp::silu, "silu", silu_reference, -8, 8},
  };
}

struct ThreadCountGuard {
  int saved = num_threads();
  ~ThreadCountGuard() { set_num_threads(saved); }
};

}  // namespace

TEST_CASE("unary ops match a reference loop in double on odd shapes for every float dtype") {
  for (const UnaryCase& unary_case : unary_cases()) {
    for (DType dtype : kFloatDTypes) {
      for (const Shape& shape : {Shape{1}, Shape{3}, Shape{17}, Shape{129}, Shape{3, 17}}) {
        Tensor x = spread_tensor(shape, dtype, 7, unary_case.low, unary_case.high);
        Tensor y = ops::unary(unary_case.op, x);
        CHECK(y.sizes() == shape);
        CHECK(y.dtype() == dtype);
        std::vector<double> expected;
        for (double value : x.to_vector()) expected.push_back(unary_case.reference(value));
        check_close(y.to_vector(), expected, dtype,
                    std::string(unary_case.name) + " " + std::string(dtype_name(dtype)));
      }
    }
  }
}

TEST_CASE("gelu is the exact erf form and gelu with tanh_approximation the tanh form") {
  Tensor x = from_values({-1.0, 0.0, 1.0, 2.0}, {4}, {.dtype = DType::f64});
  std::vector<double> exact = ops::gelu(x).to_vector();
  std::vector<double> approximate = ops::gelu(x, /*tanh_approximation=*/true).to_vector();
  CHECK(exact[2] == doctest::Approx(0.8413447460685429).epsilon(1e-14));
  CHECK(approximate[2] == doctest::Approx(0.8411919906082768).epsilon(1e-14));
  CHECK(exact[0] == doctest::Approx(-0.15865525393145707).epsilon(1e-14));
  CHECK(exact[1] == 0.0);
}

TEST_CASE("silu is x * sigmoid(x) on the cpu, element by element like a reference loop") {
  for (DType dtype : {DType::f32, DType::f64}) {
    Tensor x = spread_tensor({4, 33}, dtype, 41, -20, 20);
    std::vector<double> expected;
    for (double value : x.to_vector()) expected.push_back(value / (1.0 + std::exp(-value)));
    check_close(ops::silu(x).to_vector(), expected, dtype,
                "silu " + std::string(dtype_name(dtype)));
  }
  Tensor extremes = from_values({-1000.0, 0.0, 1000.0}, {3}, {.dtype = DType::f32});
  CHECK(ops::silu(extremes).to_vector() == std::vector<double>{0.0, 0.0, 1000.0});
}

TEST_CASE("unary ops on transposed and step-sliced inputs match a reference loop") {
  Tensor base = spread_tensor({5, 7}, DType::f32, 3);
  for (const Tensor& view : {ops::transpose(base, 0, 1), ops::slice(base, 1, 1, 7, 3),
                             ops::expand(ops::slice(base, 0, 0, 1), {4, 7})}) {
    Tensor y = ops::exp(view);
    CHECK(y.is_contiguous());
    std::vector<double> expected;
    for (double value : view.to_vector()) expected.push_back(std::exp(value));
    check_close(y.to_vector(), expected, DType::f32, "exp of a view");
  }
}

TEST_CASE("binary ops broadcast [3,1] with [1,4] like a reference loop") {
  struct BinaryCase {
    BinaryOp op;
    std::function<double(double, double)> reference;
  };
  std::vector<BinaryCase> cases = {
      {BinaryOp::add, [](double a, double b) { return a + b; }},
      {BinaryOp::sub, [](double a, double b) { return a - b; }},
      {BinaryOp::mul, [](double a, double b) { return a * b; }},
      {BinaryOp::div, [](double a, double b) { return a / b; }},
      {BinaryOp::pow, [](double a, double b) { return std::pow(a, b); }},
      {BinaryOp::maximum, [](double a, double b) { return std::max(a, b); }},
      {BinaryOp::minimum, [](double a, double b) { return std::min(a, b); }},
  };
  for (DType dtype : kFloatDTypes) {
    Tensor a = spread_tensor({3, 1}, dtype, 1, 0.5, 3.0);  // positive: pow stays real
    Tensor b = spread_tensor({1, 4}, dtype, 2, -2.0, 2.0);
    std::vector<double> a_values = a.to_vector(), b_values = b.to_vector();
    for (const BinaryCase& binary_case : cases) {
      Tensor out = ops::binary(binary_case.op, a, b);
      REQUIRE(out.sizes() == Shape{3, 4});
      std::vector<double> expected;
      for (int64_t i = 0; i < 3; ++i) {
        for (int64_t j = 0; j < 4; ++j) {
          expected.push_back(binary_case.reference(a_values[size_t(i)], b_values[size_t(j)]));
        }
      }
      check_close(out.to_vector(), expected, dtype, std::string(dtype_name(dtype)));
    }
  }
}

TEST_CASE("binary ops broadcast [2,3,4] with [4], with [3,1] and with a 0-d tensor") {
  for (DType dtype : kFloatDTypes) {
    Tensor a = spread_tensor({2, 3, 4}, dtype, 4);
    std::vector<double> a_values = a.to_vector();
    for (const Shape& b_shape : {Shape{4}, Shape{3, 1}, Shape{}, Shape{1, 1, 1}}) {
      Tensor b = spread_tensor(b_shape, dtype, 5);
      std::vector<double> b_values = b.to_vector();
      for (bool b_first : {false, true}) {
        Tensor out = b_first ? ops::sub(b, a) : ops::sub(a, b);
        REQUIRE(out.sizes() == Shape{2, 3, 4});
        std::vector<double> expected;
        for (int64_t i = 0; i < 24; ++i) {
          double bv = b_values[size_t(broadcast_source_index({2, 3, 4}, b_shape, i))];
          expected.push_back(b_first ? bv - a_values[size_t(i)] : a_values[size_t(i)] - bv);
        }
        check_close(out.to_vector(), expected, dtype, "sub with " + shape_str(b_shape));
      }
    }
  }
  // Two 0-d tensors give a 0-d result.
  Tensor scalar = ops::mul(scalar_tensor(3.0), scalar_tensor(-2.0));
  CHECK(scalar.dim() == 0);
  CHECK(scalar.item() == -6.0);
}

TEST_CASE("binary ops on transposed, step-sliced and expanded inputs match a reference loop") {
  Tensor base = spread_tensor({6, 9}, DType::f64, 11);
  Tensor other = spread_tensor({9, 6}, DType::f64, 12);
  Tensor transposed = ops::transpose(other, 0, 1);  // [6, 9], strides (1, 6)
  Tensor sliced = ops::slice(spread_tensor({6, 27}, DType::f64, 13), 1, 0, 27, 3);  // [6, 9]
  Tensor expanded = ops::expand(spread_tensor({1, 9}, DType::f64, 14), {6, 9});
  for (const Tensor& b : {transposed, sliced, expanded}) {
    for (const Tensor& a :
         {base, ops::transpose(ops::contiguous(ops::transpose(base, 0, 1)), 0, 1)}) {
      Tensor out = ops::mul(a, b);
      std::vector<double> a_values = a.to_vector(), b_values = b.to_vector(), expected;
      for (size_t i = 0; i < a_values.size(); ++i) expected.push_back(a_values[i] * b_values[i]);
      check_close(out.to_vector(), expected, DType::f64, "mul of views");
    }
  }
}

TEST_CASE("comparisons return u8 zeros and ones like a reference loop, broadcasting") {
  for (DType dtype :
       {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i32, DType::i64, DType::u8}) {
    Tensor a = from_values({1, 2, 3, 4, 5, 6}, {2, 3}, {.dtype = dtype});
    Tensor b = from_values({2, 2, 7}, {3}, {.dtype = dtype});
    std::vector<double> a_values = a.to_vector(), b_values = b.to_vector();
    struct ComparisonCase {
      BinaryOp op;
      std::function<bool(double, double)> reference;
    };
    for (const ComparisonCase& comparison :
         {ComparisonCase{BinaryOp::eq, std::equal_to<double>()},
          ComparisonCase{BinaryOp::ne, std::not_equal_to<double>()},
          ComparisonCase{BinaryOp::lt, std::less<double>()},
          ComparisonCase{BinaryOp::le, std::less_equal<double>()},
          ComparisonCase{BinaryOp::gt, std::greater<double>()},
          ComparisonCase{BinaryOp::ge, std::greater_equal<double>()}}) {
      Tensor out = ops::binary(comparison.op, a, b);
      CHECK(out.dtype() == DType::u8);
      std::vector<double> expected;
      for (size_t i = 0; i < 6; ++i) {
        expected.push_back(comparison.reference(a_values[i], b_values[i % 3]) ? 1.0 : 0.0);
      }
      CHECK(out.to_vector() == expected);
    }
  }
  Tensor x = from_values({-1, 0.5, 2}, {3});
  CHECK(ops::gt(x, 0.0).to_vector() == std::vector<double>{0, 1, 1});
  CHECK(ops::lt(x, 0.5).to_vector() == std::vector<double>{1, 0, 0});
}

TEST_CASE("where picks from a or b by a broadcast u8 condition") {
  for (DType dtype : {DType::f32, DType::bf16, DType::i64}) {
    Tensor condition = from_values({1, 0, 1}, {3}, {.dtype = DType::u8});
    Tensor a = from_values({10, 20, 30, 40, 50, 60}, {2, 3}, {.dtype = dtype});
    Tensor b = scalar_tensor(-1, {.dtype = dtype});
    Tensor out = ops::where(condition, a, b);
    CHECK(out.sizes() == Shape{2, 3});
    CHECK(out.dtype() == dtype);
    CHECK(out.to_vector() == std::vector<double>{10, -1, 30, 40, -1, 60});
  }
  Tensor wrong_condition = from_values({1, 0, 1}, {3});
  CHECK_THROWS_AS(ops::where(wrong_condition, from_values({1, 2, 3}, {3}), scalar_tensor(0)),
                  std::invalid_argument);
}

TEST_CASE("fused activation backward ops equal upstream times the derivative of the forward") {
  Tensor x = spread_tensor({129}, DType::f64, 21, -4, 4);
  Tensor upstream = spread_tensor({129}, DType::f64, 22);
  std::vector<double> xs = x.to_vector(), gs = upstream.to_vector();
  auto derivative = [](const std::function<double(double)>& f, double at) {
    double h = 1e-5;
    return (f(at + h) - f(at - h)) / (2 * h);
  };
  auto sigmoid = [](double v) { return 1 / (1 + std::exp(-v)); };
  auto tanh = [](double v) { return std::tanh(v); };
  auto relu = [](double v) { return v > 0 ? v : 0.0; };
  struct BackwardCase {
    BinaryOp op;
    std::function<double(double)> forward;
    bool saves_output;  // sigmoid/tanh backward take the forward output, the others the input
  };
  for (const BackwardCase& backward :
       {BackwardCase{BinaryOp::relu_backward, relu, false},
        BackwardCase{BinaryOp::gelu_backward, gelu_reference, false},
        BackwardCase{BinaryOp::gelu_tanh_backward, gelu_tanh_reference, false},
        BackwardCase{BinaryOp::sigmoid_backward, sigmoid, true},
        BackwardCase{BinaryOp::tanh_backward, tanh, true},
        BackwardCase{BinaryOp::silu_backward, silu_reference, false}}) {
    std::vector<double> saved;
    for (double v : xs) saved.push_back(backward.saves_output ? backward.forward(v) : v);
    Tensor grad =
        ops::binary(backward.op, upstream, from_values(saved, {129}, {.dtype = DType::f64}));
    std::vector<double> values = grad.to_vector();
    for (size_t i = 0; i < xs.size(); ++i) {
      CHECK(values[i] ==
            doctest::Approx(gs[i] * derivative(backward.forward, xs[i])).epsilon(1e-6));
    }
  }
}

TEST_CASE("integer add, sub, mul, maximum, neg, abs and relu work on i32, i64 and u8") {
  for (DType dtype : {DType::i32, DType::i64}) {
    Tensor a = from_values({-3, 5, 7}, {3}, {.dtype = dtype});
    Tensor b = from_values({4, -2, 7}, {3}, {.dtype = dtype});
    CHECK(ops::add(a, b).to_vector() == std::vector<double>{1, 3, 14});
    CHECK(ops::sub(a, b).to_vector() == std::vector<double>{-7, 7, 0});
    CHECK(ops::mul(a, b).to_vector() == std::vector<double>{-12, -10, 49});
    CHECK(ops::maximum(a, b).to_vector() == std::vector<double>{4, 5, 7});
    CHECK(ops::neg(a).to_vector() == std::vector<double>{3, -5, -7});
    CHECK(ops::abs(a).to_vector() == std::vector<double>{3, 5, 7});
    CHECK(ops::relu(a).to_vector() == std::vector<double>{0, 5, 7});
    CHECK(ops::add(a, 2.0).dtype() == dtype);
  }
  Tensor mask = from_values({1, 0, 1}, {3}, {.dtype = DType::u8});
  CHECK(ops::add(mask, mask).to_vector() == std::vector<double>{2, 0, 2});
  // Math that needs a floating dtype says so.
  CHECK_THROWS_AS(ops::exp(from_values({1}, {1}, {.dtype = DType::i32})), std::invalid_argument);
  CHECK_THROWS_AS(ops::div(mask, mask), std::invalid_argument);
}

TEST_CASE("maximum, minimum and relu propagate NaN like PyTorch") {
  double nan = std::nan("");
  Tensor a = from_values({nan, 1.0, 2.0}, {3});
  Tensor b = from_values({0.0, nan, 1.0}, {3});
  std::vector<double> biggest = ops::maximum(a, b).to_vector();
  CHECK(std::isnan(biggest[0]));
  CHECK(std::isnan(biggest[1]));
  CHECK(biggest[2] == 2.0);
  CHECK(std::isnan(ops::minimum(a, b).to_vector()[1]));
  CHECK(std::isnan(ops::relu(a).to_vector()[0]));
}

TEST_CASE("mismatched shapes and dtypes throw with a message naming the op, shapes and dtypes") {
  Tensor a = zeros({3, 2});
  Tensor b = zeros({4});
  try {
    ops::add(a, b);
    FAIL("add of [3, 2] and [4] did not throw");
  } catch (const std::invalid_argument& error) {
    std::string message = error.what();
    CHECK(message.find("add") != std::string::npos);
    CHECK(message.find("[3, 2]") != std::string::npos);
    CHECK(message.find("[4]") != std::string::npos);
  }
  try {
    ops::mul(zeros({2}), zeros({2}, {.dtype = DType::f64}));
    FAIL("mul of f32 and f64 did not throw");
  } catch (const std::invalid_argument& error) {
    std::string message = error.what();
    CHECK(message.find("mul") != std::string::npos);
    CHECK(message.find("f32") != std::string::npos);
    CHECK(message.find("f64") != std::string::npos);
  }
  CHECK_THROWS_AS(ops::broadcast_shapes({2, 3}, {3, 2}), std::invalid_argument);
  CHECK(ops::broadcast_shapes({3, 1}, {1, 4}) == Shape{3, 4});
  CHECK(ops::broadcast_shapes({}, {2, 1}) == Shape{2, 1});
  CHECK_THROWS_AS(ops::add_(zeros({3}), zeros({2, 3})), std::invalid_argument);
}

TEST_CASE("scalar overloads and in-place add_ and mul_ update like a reference loop") {
  Tensor x = spread_tensor({17}, DType::f32, 31);
  std::vector<double> xs = x.to_vector();
  std::vector<double> expected_add, expected_div, expected_pow;
  for (double v : xs) {
    expected_add.push_back(double(float(v + 1.5)));
    expected_div.push_back(double(float(v) / 4.0f));
    expected_pow.push_back(v * v);
  }
  check_close(ops::add(x, 1.5).to_vector(), expected_add, DType::f32, "add scalar");
  check_close(ops::div(x, 4.0).to_vector(), expected_div, DType::f32, "div scalar");
  check_close(ops::pow(x, 2.0).to_vector(), expected_pow, DType::f32, "pow scalar");

  Tensor accumulator = from_values({1, 2, 3, 4, 5, 6}, {2, 3});
  const void* data_before = accumulator.raw_data();
  ops::add_(accumulator, from_values({10, 20, 30}, {3}));  // broadcast over rows
  CHECK(accumulator.raw_data() == data_before);
  CHECK(accumulator.to_vector() == std::vector<double>{11, 22, 33, 14, 25, 36});
  ops::mul_(accumulator, 0.5);
  CHECK(accumulator.to_vector() == std::vector<double>{5.5, 11, 16.5, 7, 12.5, 18});
  // In place into a non-contiguous view writes through to the base.
  Tensor column = ops::select(accumulator, 1, 0);
  ops::add_(column, scalar_tensor(100));
  CHECK(accumulator.to_vector() == std::vector<double>{105.5, 11, 16.5, 107, 12.5, 18});
}

TEST_CASE("outputs take the thread's current memory tag, not the input's tag") {
  Tensor weights = ones({4}, TensorOptions{}.with_tag(MemoryTag::param));
  MemoryTagGuard guard(MemoryTag::activation);
  CHECK(ops::exp(weights).storage()->tag() == MemoryTag::activation);
  CHECK(ops::add(weights, weights).storage()->tag() == MemoryTag::activation);
  CHECK(ops::gt(weights, 0.0).storage()->tag() == MemoryTag::activation);
  CHECK(ops::where(ops::gt(weights, 0.0), weights, weights).storage()->tag() ==
        MemoryTag::activation);
}

TEST_CASE("large contiguous, scalar and broadcast binary ops are equal for 1 and 2 threads") {
  ThreadCountGuard restore;
  const int64_t count = 300007;  // several parallel chunks, odd tail
  Tensor a = spread_tensor({count}, DType::f32, 41);
  Tensor b = spread_tensor({count}, DType::f32, 42);
  Tensor rows = spread_tensor({count / 7, 7}, DType::f32, 43);
  Tensor row = spread_tensor({7}, DType::f32, 44);
  set_num_threads(1);
  std::vector<double> sum1 = ops::add(a, b).to_vector();
  std::vector<double> scaled1 = ops::mul(a, 3.0).to_vector();
  std::vector<double> broadcast1 = ops::add(rows, row).to_vector();
  std::vector<double> gelu1 = ops::gelu(a).to_vector();
  set_num_threads(2);
  CHECK(ops::add(a, b).to_vector() == sum1);
  CHECK(ops::mul(a, 3.0).to_vector() == scaled1);
  CHECK(ops::add(rows, row).to_vector() == broadcast1);
  CHECK(ops::gelu(a).to_vector() == gelu1);
  std::vector<double> as = a.to_vector(), bs = b.to_vector();
  for (size_t i = 0; i < as.size(); i += 997) CHECK(sum1[i] == double(float(as[i]) + float(bs[i])));
}

TEST_CASE("elementwise ops on empty tensors return empty tensors") {
  Tensor empty_rows = zeros({0, 3});
  CHECK(ops::exp(empty_rows).sizes() == Shape{0, 3});
  CHECK(ops::add(empty_rows, zeros({3})).sizes() == Shape{0, 3});
}
