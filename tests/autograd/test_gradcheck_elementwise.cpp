// Finite-difference gradient checks (f64) of every differentiable elementwise op, with
// broadcasting and non-contiguous (transposed, strided) inputs.
#include "tests/autograd/gradcheck_helpers.h"

using namespace zt;
using test::check_gradients;
using Inputs = std::vector<Tensor>;

TEST_CASE("gradcheck add with broadcasting [3,1]x[1,4]") {
  check_gradients([](const Inputs& in) { return add(in[0], in[1]); },
                  {test::f64_leaf({3, 1}, 1), test::f64_leaf({1, 4}, 2)});
}

TEST_CASE("gradcheck add with a transposed input and operator+") {
  check_gradients([](const Inputs& in) { return in[0] + in[1]; },
                  {test::transposed_leaf({3, 4}, 3), test::f64_leaf({3, 4}, 4)});
}

TEST_CASE("gradcheck add scalar (tensor + 2 and 2 + tensor)") {
  check_gradients([](const Inputs& in) { return add(in[0], 2.0) + (2.0 + in[0]); },
                  {test::f64_leaf({2, 3}, 5)});
}

TEST_CASE("gradcheck sub with broadcasting [2,3]x[3]") {
  check_gradients([](const Inputs& in) { return sub(in[0], in[1]); },
                  {test::f64_leaf({2, 3}, 6), test::f64_leaf({3}, 7)});
}

TEST_CASE("gradcheck sub scalar (tensor - 2 and 2 - tensor)") {
  check_gradients([](const Inputs& in) { return sub(in[0], 2.0) * (2.0 - in[0]); },
                  {test::f64_leaf({4}, 8)});
}

TEST_CASE("gradcheck mul with broadcasting [3,1]x[1,4]") {
  check_gradients([](const Inputs& in) { return mul(in[0], in[1]); },
                  {test::f64_leaf({3, 1}, 9), test::f64_leaf({1, 4}, 10)});
}

TEST_CASE("gradcheck mul with non-contiguous inputs (transposed x strided)") {
  check_gradients([](const Inputs& in) { return in[0] * in[1]; },
                  {test::transposed_leaf({3, 4}, 11), test::strided_leaf({3, 4}, 12)});
}

TEST_CASE("gradcheck mul scalar (tensor * 3 and 3 * tensor)") {
  check_gradients([](const Inputs& in) { return mul(in[0], 3.0) + 3.0 * in[0]; },
                  {test::f64_leaf({2, 2}, 13)});
}

TEST_CASE("gradcheck mul with a 0-d operand") {
  check_gradients([](const Inputs& in) { return in[0] * in[1]; },
                  {test::f64_leaf({}, 14), test::f64_leaf({2, 3}, 15)});
}

TEST_CASE("gradcheck div with broadcasting [2,3]x[2,1]") {
  check_gradients([](const Inputs& in) { return div(in[0], in[1]); },
                  {test::f64_leaf({2, 3}, 16), test::f64_leaf({2, 1}, 17, 0.5, 2.0)});
}

TEST_CASE("gradcheck div scalar (tensor / 4 and 4 / tensor)") {
  check_gradients([](const Inputs& in) { return div(in[0], 4.0) + 4.0 / in[0]; },
                  {test::f64_leaf({3}, 18, 0.5, 2.0)});
}

TEST_CASE("gradcheck pow tensor exponent with broadcasting [2,3]x[3]") {
  check_gradients([](const Inputs& in) { return pow(in[0], in[1]); },
                  {test::f64_leaf({2, 3}, 19, 0.5, 2.0), test::f64_leaf({3}, 20, -1.5, 2.5)});
}

TEST_CASE("gradcheck pow scalar exponent 3, -0.5 and 0") {
  check_gradients(
      [](const Inputs& in) { return pow(in[0], 3.0) + pow(in[0], -0.5) + pow(in[0], 0.0); },
      {test::f64_leaf({2, 3}, 21, 0.5, 2.0)});
}

TEST_CASE("gradcheck maximum with broadcasting [3,1]x[3,4]") {
  check_gradients([](const Inputs& in) { return maximum(in[0], in[1]); },
                  {test::distinct_leaf({3, 1}, 22), test::distinct_leaf({3, 4}, 23)});
}

TEST_CASE("gradcheck minimum with a strided input") {
  Tensor b = test::distinct_leaf({3, 4}, 25);
  check_gradients([](const Inputs& in) { return minimum(in[0], in[1]); },
                  {test::strided_leaf({3, 4}, 24, -0.07, 0.07), b});
}

TEST_CASE("gradcheck maximum tie splits the gradient evenly") {
  Tensor a = test::as_leaf(from_values({1.0, 2.0}, {2}, {.dtype = DType::f64}));
  Tensor b = test::as_leaf(from_values({1.0, 3.0}, {2}, {.dtype = DType::f64}));
  sum(maximum(a, b)).backward();
  CHECK(a.grad().to_vector() == std::vector<double>{0.5, 0.0});
  CHECK(b.grad().to_vector() == std::vector<double>{0.5, 1.0});
}

TEST_CASE("gradcheck neg and unary minus") {
  check_gradients([](const Inputs& in) { return neg(in[0]) * -in[0]; },
                  {test::transposed_leaf({2, 3}, 26)});
}

TEST_CASE("gradcheck exp") {
  check_gradients([](const Inputs& in) { return exp(in[0]); }, {test::f64_leaf({2, 3}, 27)});
}

TEST_CASE("gradcheck log") {
  check_gradients([](const Inputs& in) { return log(in[0]); },
                  {test::f64_leaf({2, 3}, 28, 0.5, 2.0)});
}

TEST_CASE("gradcheck sqrt") {
  check_gradients([](const Inputs& in) { return sqrt(in[0]); },
                  {test::strided_leaf({2, 3}, 29, 0.5, 2.0)});
}

TEST_CASE("gradcheck rsqrt") {
  check_gradients([](const Inputs& in) { return rsqrt(in[0]); },
                  {test::f64_leaf({2, 3}, 30, 0.5, 2.0)});
}

TEST_CASE("gradcheck abs") {
  check_gradients([](const Inputs& in) { return abs(in[0]); },
                  {test::away_from_zero_leaf({3, 4}, 31)});
}

TEST_CASE("gradcheck tanh") {
  check_gradients([](const Inputs& in) { return tanh(in[0]); },
                  {test::transposed_leaf({3, 4}, 32, -2.0, 2.0)});
}

TEST_CASE("gradcheck sigmoid") {
  check_gradients([](const Inputs& in) { return sigmoid(in[0]); },
                  {test::f64_leaf({3, 4}, 33, -3.0, 3.0)});
}

TEST_CASE("gradcheck relu") {
  check_gradients([](const Inputs& in) { return relu(in[0]); },
                  {test::away_from_zero_leaf({3, 4}, 34)});
}

TEST_CASE("gradcheck gelu exact (erf form)") {
  check_gradients([](const Inputs& in) { return gelu(in[0]); },
                  {test::f64_leaf({3, 4}, 35, -3.0, 3.0)});
}

TEST_CASE("gradcheck gelu tanh approximation") {
  check_gradients([](const Inputs& in) { return gelu(in[0], /*tanh_approximation=*/true); },
                  {test::f64_leaf({3, 4}, 36, -3.0, 3.0)});
}

TEST_CASE("gradcheck silu") {
  check_gradients([](const Inputs& in) { return silu(in[0]); },
                  {test::f64_leaf({3, 4}, 37, -4.0, 4.0)});
}

TEST_CASE("gradcheck where with broadcasting condition [3,1], a [3,4], b [4]") {
  Tensor condition = from_values({1, 0, 1}, {3, 1}, {.dtype = DType::u8});
  check_gradients([condition](const Inputs& in) { return where(condition, in[0], in[1]); },
                  {test::f64_leaf({3, 4}, 37), test::f64_leaf({4}, 38)});
}
