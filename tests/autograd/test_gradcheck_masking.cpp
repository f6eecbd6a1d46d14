// Finite-difference gradient checks (f64) of tril, triu, masked_fill and cumsum, and the
// exact zero gradient of masked_fill where it wrote its value.
#include "core/ops/masking.h"
#include "tests/autograd/gradcheck_helpers.h"

using namespace zt;
using test::check_gradients;
using Inputs = std::vector<Tensor>;

TEST_CASE("gradcheck tril and triu over a batch of matrices") {
  check_gradients([](const Inputs& in) { return tril(in[0], -1); },
                  {test::f64_leaf({2, 3, 4}, 90)});
  check_gradients([](const Inputs& in) { return triu(in[0], 1); },
                  {test::transposed_leaf({2, 4, 3}, 91)});
}

TEST_CASE("gradcheck masked_fill, and its gradient is zero exactly where it filled") {
  Tensor mask = from_values({0, 1, 1, 0, 0, 1}, {2, 1, 3}, {.dtype = DType::u8});
  check_gradients([mask](const Inputs& in) { return masked_fill(in[0], mask, 7.0); },
                  {test::f64_leaf({2, 4, 3}, 92)});
  Tensor x = test::f64_leaf({2, 4, 3}, 93);
  Tensor weights = ops::add(ops::mul(ones({2, 4, 3}, {.dtype = DType::f64}), 2.0), 0.0);
  sum(mul(masked_fill(x, mask, -1.0), weights)).backward();
  std::vector<double> grad = x.grad().to_vector();
  for (size_t i = 0; i < grad.size(); ++i) {
    size_t batch = i / 12, column = i % 3;
    bool filled = (batch == 0 ? std::vector<int>{0, 1, 1} : std::vector<int>{0, 0, 1})[column];
    CHECK(grad[i] == (filled ? 0.0 : 2.0));
  }
}

TEST_CASE("gradcheck cumsum along several dims") {
  check_gradients([](const Inputs& in) { return cumsum(in[0], 1); },
                  {test::f64_leaf({3, 4, 2}, 94)});
  check_gradients([](const Inputs& in) { return cumsum(in[0], -1); },
                  {test::strided_leaf({3, 5}, 95)});
  check_gradients([](const Inputs& in) { return cumsum(in[0], 0); }, {test::f64_leaf({6}, 96)});
}
