// Finite-difference gradient checks (f64) of the reductions (any dims, keepdim) and the matrix
// products (matmul in all its rank cases, mm, bmm, linear), including non-contiguous inputs.
#include "autograd/node.h"
#include "tests/autograd/gradcheck_helpers.h"

using namespace zt;
using test::check_gradients;
using Inputs = std::vector<Tensor>;

TEST_CASE("gradcheck detects a wrong backward") {
  auto wrong_square = [](const Inputs& in) {
    Tensor x = in[0];
    return autograd::record("WrongSquareBackward", {x}, ops::mul(x, x),
                            [x = x.detach()](const Tensor& g) {
                              return std::vector<Tensor>{ops::mul(g, x)};  // misses a factor 2
                            });
  };
  autograd::GradcheckResult result =
      autograd::gradcheck(wrong_square, {test::f64_leaf({3}, 99, 0.5, 1.0)});
  CHECK_FALSE(result.passed);
  CHECK(result.worst_ratio > 1.0);
  CHECK(result.message.find("FAILED") != std::string::npos);
}

TEST_CASE("gradcheck sum over all dims") {
  check_gradients([](const Inputs& in) { return sum(in[0]); }, {test::f64_leaf({2, 3, 4}, 40)});
}

TEST_CASE("gradcheck sum dims {0,2} keepdim on a strided input") {
  check_gradients(
      [](const Inputs& in) {
        return sum(in[0], {0, 2}, true);
      },
      {test::strided_leaf({2, 3, 4}, 41)});
}

TEST_CASE("gradcheck sum negative dim without keepdim on a transposed input") {
  check_gradients([](const Inputs& in) { return sum(in[0], {-1}); },
                  {test::transposed_leaf({3, 4}, 42)});
}

TEST_CASE("gradcheck mean over all dims") {
  check_gradients([](const Inputs& in) { return mean(in[0]); }, {test::f64_leaf({3, 4}, 43)});
}

TEST_CASE("gradcheck mean dim 1 keepdim") {
  check_gradients([](const Inputs& in) { return mean(in[0], {1}, true); },
                  {test::transposed_leaf({2, 3, 4}, 44)});
}

TEST_CASE("gradcheck amax dim 1") {
  check_gradients([](const Inputs& in) { return amax(in[0], {1}); },
                  {test::distinct_leaf({3, 4}, 45)});
}

TEST_CASE("gradcheck amax over all dims keepdim") {
  check_gradients([](const Inputs& in) { return amax(in[0], {}, true); },
                  {test::distinct_leaf({2, 3, 2}, 46)});
}

TEST_CASE("gradcheck amin dims {0,2}") {
  check_gradients(
      [](const Inputs& in) {
        return amin(in[0], {0, 2});
      },
      {test::distinct_leaf({2, 3, 4}, 47)});
}

TEST_CASE("gradcheck amax ties share the gradient evenly") {
  Tensor x = test::as_leaf(from_values({1, 3, 3, 2}, {4}, {.dtype = DType::f64}));
  amax(x).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{0, 0.5, 0.5, 0});
}

TEST_CASE("gradcheck var dim 1 correction 1") {
  check_gradients([](const Inputs& in) { return var(in[0], {1}); }, {test::f64_leaf({3, 5}, 48)});
}

TEST_CASE("gradcheck var dims {0,2} correction 0 keepdim on a strided input") {
  check_gradients(
      [](const Inputs& in) {
        return var(in[0], {0, 2}, 0, true);
      },
      {test::strided_leaf({2, 3, 4}, 49)});
}

TEST_CASE("gradcheck var over all dims") {
  check_gradients([](const Inputs& in) { return var(in[0]); }, {test::f64_leaf({3, 4}, 50)});
}

TEST_CASE("gradcheck matmul 2-d x 2-d") {
  check_gradients([](const Inputs& in) { return matmul(in[0], in[1]); },
                  {test::f64_leaf({3, 4}, 51), test::f64_leaf({4, 5}, 52)});
}

TEST_CASE("gradcheck matmul batched with broadcasting [2,1,3,4]x[3,4,5]") {
  check_gradients([](const Inputs& in) { return matmul(in[0], in[1]); },
                  {test::f64_leaf({2, 1, 3, 4}, 53), test::f64_leaf({3, 4, 5}, 54)});
}

TEST_CASE("gradcheck matmul 1-d x 2-d and 2-d x 1-d") {
  check_gradients([](const Inputs& in) { return matmul(in[0], in[1]); },
                  {test::f64_leaf({4}, 55), test::f64_leaf({4, 3}, 56)});
  check_gradients([](const Inputs& in) { return matmul(in[0], in[1]); },
                  {test::f64_leaf({3, 4}, 57), test::f64_leaf({4}, 58)});
}

TEST_CASE("gradcheck matmul 1-d x 1-d (dot)") {
  check_gradients([](const Inputs& in) { return matmul(in[0], in[1]); },
                  {test::f64_leaf({5}, 59), test::f64_leaf({5}, 60)});
}

TEST_CASE("gradcheck matmul batched 1-d x 3-d") {
  check_gradients([](const Inputs& in) { return matmul(in[0], in[1]); },
                  {test::f64_leaf({4}, 61), test::f64_leaf({2, 4, 3}, 62)});
}

TEST_CASE("gradcheck mm with transposed and strided inputs") {
  check_gradients([](const Inputs& in) { return mm(in[0], in[1]); },
                  {test::transposed_leaf({3, 4}, 63), test::strided_leaf({4, 2}, 64)});
}

TEST_CASE("gradcheck bmm") {
  check_gradients([](const Inputs& in) { return bmm(in[0], in[1]); },
                  {test::f64_leaf({2, 3, 4}, 65), test::transposed_leaf({2, 4, 5}, 66)});
}

TEST_CASE("gradcheck linear with bias on a 3-d input") {
  check_gradients(
      [](const Inputs& in) { return linear(in[0], in[1], in[2]); },
      {test::f64_leaf({2, 3, 4}, 67), test::f64_leaf({5, 4}, 68), test::f64_leaf({5}, 69)});
}

TEST_CASE("gradcheck linear without bias, transposed weight, 1-d input") {
  check_gradients([](const Inputs& in) { return linear(in[0], in[1]); },
                  {test::f64_leaf({4}, 70), test::transposed_leaf({3, 4}, 71)});
}

TEST_CASE("gradcheck linear with an input that does not require grad") {
  Generator generator(72);
  Tensor x = uniform({2, 4}, -1, 1, {.dtype = DType::f64}, &generator);
  check_gradients([x](const Inputs& in) { return linear(x, in[0], in[1]); },
                  {test::f64_leaf({3, 4}, 73), test::f64_leaf({3}, 74)});
}
