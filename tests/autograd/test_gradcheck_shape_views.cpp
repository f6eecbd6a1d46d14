// Finite-difference gradient checks (f64) of joining, splitting and indexing (cat, stack,
// split, split_with_sizes, index_select) and of every differentiable view and conversion
// method of Tensor.
#include "tests/autograd/gradcheck_helpers.h"

using namespace zt;
using test::check_gradients;
using Inputs = std::vector<Tensor>;

TEST_CASE("gradcheck cat of three inputs along dim 1, one transposed") {
  check_gradients(
      [](const Inputs& in) {
        return cat({in[0], in[1], in[2]}, 1);
      },
      {test::f64_leaf({2, 3}, 120), test::transposed_leaf({2, 1}, 121),
       test::f64_leaf({2, 4}, 122)});
}

TEST_CASE("gradcheck cat along a negative dim with an input not requiring grad") {
  Tensor constant = from_values({1, 2}, {2, 1}, {.dtype = DType::f64});
  check_gradients(
      [constant](const Inputs& in) {
        return cat({constant, in[0]}, -1);
      },
      {test::f64_leaf({2, 3}, 123)});
}

TEST_CASE("gradcheck stack along dim 0 and dim 2") {
  check_gradients(
      [](const Inputs& in) {
        return stack({in[0], in[1]}, 0) * stack({in[1], in[0]}, 0);
      },
      {test::f64_leaf({2, 3}, 124), test::strided_leaf({2, 3}, 125)});
  check_gradients(
      [](const Inputs& in) {
        return stack({in[0], in[1]}, 2);
      },
      {test::f64_leaf({2, 3}, 126), test::f64_leaf({2, 3}, 127)});
}

TEST_CASE("gradcheck split into pieces of 2 along dim 1 (last piece smaller)") {
  check_gradients(
      [](const Inputs& in) {
        std::vector<Tensor> pieces = split(in[0], 2, 1);
        REQUIRE(pieces.size() == 3);
        return cat({pieces[2] * 3.0, pieces[0] * pieces[1]}, 1);
      },
      {test::f64_leaf({3, 5}, 128)});
}

TEST_CASE("gradcheck split_with_sizes {1,3} along dim 0") {
  check_gradients(
      [](const Inputs& in) {
        std::vector<Tensor> pieces = split_with_sizes(in[0], {1, 3}, 0);
        return pieces[1] * exp(pieces[0]);
      },
      {test::transposed_leaf({4, 2}, 129)});
}

TEST_CASE("gradcheck index_select with repeated indices along dim 1") {
  Tensor indices = test::indices_tensor({2, 0, 2, 3}, {4});
  check_gradients([indices](const Inputs& in) { return index_select(in[0], 1, indices); },
                  {test::f64_leaf({3, 4}, 130)});
}

TEST_CASE("gradcheck index_select along dim 0 of a transposed input") {
  Tensor indices = test::indices_tensor({1, 1, 0}, {3});
  check_gradients([indices](const Inputs& in) { return index_select(in[0], 0, indices); },
                  {test::transposed_leaf({2, 3}, 131)});
}

TEST_CASE("gradcheck reshape of a transposed input (a copy) with -1") {
  check_gradients(
      [](const Inputs& in) {
        return in[0].reshape({2, -1}) * in[0].reshape({2, 6});
      },
      {test::transposed_leaf({3, 4}, 132)});
}

TEST_CASE("gradcheck view") {
  check_gradients(
      [](const Inputs& in) {
        return in[0].view({2, 2, 3});
      },
      {test::f64_leaf({4, 3}, 133)});
}

TEST_CASE("gradcheck flatten dims 1..2") {
  check_gradients([](const Inputs& in) { return in[0].flatten(1, 2) * 2.0; },
                  {test::f64_leaf({2, 3, 2, 2}, 134)});
}

TEST_CASE("gradcheck transpose dims 0 and 2") {
  Tensor weights = from_values({1, 2, 3, 4, 5, 6}, {2, 3, 1}, {.dtype = DType::f64});
  check_gradients([weights](const Inputs& in) { return in[0].transpose(0, 2) * weights; },
                  {test::f64_leaf({1, 3, 2}, 135)});
}

TEST_CASE("gradcheck t") {
  check_gradients([](const Inputs& in) { return mm(in[0].t(), in[0]); },
                  {test::f64_leaf({3, 2}, 136)});
}

TEST_CASE("gradcheck permute {2,0,1}") {
  check_gradients(
      [](const Inputs& in) {
        return in[0].permute({2, 0, 1}) * in[1];
      },
      {test::f64_leaf({2, 3, 4}, 137), test::f64_leaf({4, 2, 3}, 138)});
}

TEST_CASE("gradcheck narrow") {
  check_gradients([](const Inputs& in) { return in[0].narrow(1, 1, 2) * 3.0; },
                  {test::f64_leaf({3, 4}, 139)});
}

TEST_CASE("gradcheck slice with step 2 and negative start") {
  check_gradients([](const Inputs& in) { return in[0].slice(1, -4, 5, 2) * in[0].slice(1, 0, 2); },
                  {test::f64_leaf({2, 5}, 140)});
}

TEST_CASE("gradcheck select") {
  check_gradients([](const Inputs& in) { return in[0].select(1, 2) * in[0].select(0, -1); },
                  {test::f64_leaf({3, 3}, 141)});
}

TEST_CASE("gradcheck expand [3,1] to [2,3,4]") {
  check_gradients(
      [](const Inputs& in) {
        return in[0].expand({2, 3, 4}) * in[1];
      },
      {test::f64_leaf({3, 1}, 142), test::f64_leaf({2, 3, 4}, 143)});
}

TEST_CASE("gradcheck expand with -1 keeping a size") {
  check_gradients(
      [](const Inputs& in) {
        return in[0].expand({-1, 5}) * 2.0;
      },
      {test::f64_leaf({3, 1}, 144)});
}

TEST_CASE("gradcheck squeeze a dim and squeeze all") {
  check_gradients([](const Inputs& in) { return in[0].squeeze(1) * in[0].squeeze(); },
                  {test::f64_leaf({3, 1, 2}, 145)});
}

TEST_CASE("gradcheck unsqueeze") {
  check_gradients([](const Inputs& in) { return in[0].unsqueeze(0) * in[0].unsqueeze(-1); },
                  {test::f64_leaf({3}, 146)});
}

TEST_CASE("gradcheck contiguous of a transposed input") {
  check_gradients([](const Inputs& in) { return in[0].contiguous() * 2.0; },
                  {test::transposed_leaf({3, 4}, 147)});
}

TEST_CASE("gradcheck to f32 and back (looser tolerance for f32 rounding)") {
  check_gradients([](const Inputs& in) { return in[0].to(DType::f32).to(DType::f64) * 2.0; },
                  {test::f64_leaf({2, 3}, 148)}, /*eps=*/1e-2, /*atol=*/1e-3, /*rtol=*/1e-3);
}

TEST_CASE("gradcheck clone") {
  check_gradients([](const Inputs& in) { return in[0].clone() * in[0]; },
                  {test::strided_leaf({2, 3}, 149)});
}
