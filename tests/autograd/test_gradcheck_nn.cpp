// Finite-difference gradient checks (f64) of the neural-network ops and losses: softmax,
// log_softmax, cross_entropy (ignore_index, label smoothing, every reduction), nll_loss,
// mse_loss, conv2d, max/avg pooling, layer_norm, embedding and dropout.
#include "tests/autograd/gradcheck_helpers.h"

using namespace zt;
using test::check_gradients;
using Inputs = std::vector<Tensor>;

TEST_CASE("gradcheck softmax over the last dim") {
  check_gradients([](const Inputs& in) { return softmax(in[0], -1); },
                  {test::f64_leaf({3, 5}, 80, -2.0, 2.0)});
}

TEST_CASE("gradcheck softmax over dim 0 of a transposed input") {
  check_gradients([](const Inputs& in) { return softmax(in[0], 0); },
                  {test::transposed_leaf({4, 3}, 81, -2.0, 2.0)});
}

TEST_CASE("gradcheck log_softmax over dim 1 of a 3-d input") {
  check_gradients([](const Inputs& in) { return log_softmax(in[0], 1); },
                  {test::f64_leaf({2, 4, 3}, 82, -2.0, 2.0)});
}

TEST_CASE("gradcheck cross_entropy mean") {
  Tensor target = test::indices_tensor({1, 0, 4, 2}, {4});
  check_gradients([target](const Inputs& in) { return cross_entropy(in[0], target); },
                  {test::f64_leaf({4, 5}, 83, -2.0, 2.0)});
}

TEST_CASE("gradcheck cross_entropy with ignore_index and label_smoothing, mean") {
  Tensor target = test::indices_tensor({1, -1, 4, 2}, {4});
  check_gradients(
      [target](const Inputs& in) {
        return cross_entropy(in[0], target, /*ignore_index=*/-1, /*label_smoothing=*/0.1);
      },
      {test::f64_leaf({4, 5}, 84, -2.0, 2.0)});
}

TEST_CASE("gradcheck cross_entropy reduction sum on a transposed input") {
  Tensor target = test::indices_tensor({2, 0, 1}, {3});
  check_gradients(
      [target](const Inputs& in) {
        return cross_entropy(in[0], target, -100, 0.0, Reduction::sum);
      },
      {test::transposed_leaf({3, 4}, 85, -2.0, 2.0)});
}

TEST_CASE("gradcheck cross_entropy reduction none with label_smoothing") {
  Tensor target = test::indices_tensor({2, 0, 3}, {3});
  check_gradients(
      [target](const Inputs& in) { return cross_entropy(in[0], target, 3, 0.2, Reduction::none); },
      {test::f64_leaf({3, 4}, 86, -2.0, 2.0)});
}

TEST_CASE("cross_entropy mean divides by the targets that are not ignored") {
  Tensor logits = from_values({0, 0, 0, 0, 0, 0}, {3, 2}, {.dtype = DType::f64});
  Tensor target = test::indices_tensor({0, -100, 1}, {3});
  CHECK(cross_entropy(logits, target).item() == doctest::Approx(std::log(2.0)));
}

TEST_CASE("gradcheck nll_loss mean with ignore_index") {
  Tensor target = test::indices_tensor({1, 0, -100, 2}, {4});
  check_gradients([target](const Inputs& in) { return nll_loss(in[0], target); },
                  {test::f64_leaf({4, 3}, 87)});
}

TEST_CASE("gradcheck nll_loss of log_softmax, reduction none and sum") {
  Tensor target = test::indices_tensor({1, 0, 2}, {3});
  check_gradients(
      [target](const Inputs& in) {
        Tensor log_probs = log_softmax(in[0], 1);
        return nll_loss(log_probs, target, -100, Reduction::none) +
               nll_loss(log_probs, target, -100, Reduction::sum);
      },
      {test::f64_leaf({3, 3}, 88)});
}

TEST_CASE("nll_loss of log_softmax equals the fused cross_entropy") {
  Tensor logits = test::f64_leaf({4, 5}, 89, -2.0, 2.0);
  Tensor target = test::indices_tensor({1, 0, 4, 2}, {4});
  CHECK(nll_loss(log_softmax(logits, 1), target).item() ==
        doctest::Approx(cross_entropy(logits, target).item()).epsilon(1e-12));
}

TEST_CASE("gradcheck mse_loss mean, sum and none, both inputs requiring grad") {
  check_gradients(
      [](const Inputs& in) {
        return mse_loss(in[0], in[1]) + mse_loss(in[0], in[1], Reduction::sum) +
               sum(mse_loss(in[0], in[1], Reduction::none));
      },
      {test::f64_leaf({3, 4}, 90), test::transposed_leaf({3, 4}, 91)});
}

TEST_CASE("gradcheck conv2d with bias, stride 1, no padding") {
  check_gradients([](const Inputs& in) { return conv2d(in[0], in[1], in[2]); },
                  {test::f64_leaf({2, 3, 5, 5}, 92), test::f64_leaf({4, 3, 3, 3}, 93),
                   test::f64_leaf({4}, 94)});
}

TEST_CASE("gradcheck conv2d stride 2 padding 1 dilation 2 groups 2") {
  Conv2dParams params{.stride_h = 2,
                      .stride_w = 2,
                      .padding_h = 1,
                      .padding_w = 1,
                      .dilation_h = 2,
                      .dilation_w = 2,
                      .groups = 2};
  check_gradients([params](const Inputs& in) { return conv2d(in[0], in[1], in[2], params); },
                  {test::f64_leaf({2, 4, 7, 6}, 95), test::f64_leaf({6, 2, 3, 2}, 96),
                   test::f64_leaf({6}, 97)});
}

TEST_CASE("gradcheck conv2d without bias on a non-contiguous input, asymmetric stride") {
  Conv2dParams params{.stride_h = 1, .stride_w = 2, .padding_h = 0, .padding_w = 1};
  check_gradients([params](const Inputs& in) { return conv2d(in[0], in[1], Tensor(), params); },
                  {test::transposed_leaf({1, 2, 5, 4}, 98), test::f64_leaf({3, 2, 2, 3}, 99)});
}

TEST_CASE("gradcheck max_pool2d kernel 2 stride 2") {
  Pool2dParams params{.kernel_h = 2, .kernel_w = 2, .stride_h = 2, .stride_w = 2};
  check_gradients([params](const Inputs& in) { return max_pool2d(in[0], params); },
                  {test::distinct_leaf({2, 2, 4, 6}, 100)});
}

TEST_CASE("gradcheck max_pool2d kernel 3 stride 1 padding 1 dilation 1 (overlapping windows)") {
  Pool2dParams params{
      .kernel_h = 3, .kernel_w = 3, .stride_h = 1, .stride_w = 1, .padding_h = 1, .padding_w = 1};
  check_gradients([params](const Inputs& in) { return max_pool2d(in[0], params); },
                  {test::distinct_leaf({1, 2, 4, 5}, 101)});
}

TEST_CASE("gradcheck avg_pool2d kernel 2 stride 2") {
  Pool2dParams params{.kernel_h = 2, .kernel_w = 2, .stride_h = 2, .stride_w = 2};
  check_gradients([params](const Inputs& in) { return avg_pool2d(in[0], params); },
                  {test::f64_leaf({2, 2, 4, 6}, 102)});
}

TEST_CASE("gradcheck avg_pool2d kernel 3 padding 1 without counting padding") {
  Pool2dParams params{.kernel_h = 3,
                      .kernel_w = 3,
                      .stride_h = 2,
                      .stride_w = 2,
                      .padding_h = 1,
                      .padding_w = 1,
                      .count_include_pad = false};
  check_gradients([params](const Inputs& in) { return avg_pool2d(in[0], params); },
                  {test::f64_leaf({1, 2, 5, 5}, 103)});
}

TEST_CASE("gradcheck layer_norm with weight and bias") {
  check_gradients(
      [](const Inputs& in) { return layer_norm(in[0], {5}, in[1], in[2]); },
      {test::f64_leaf({3, 5}, 104), test::f64_leaf({5}, 105), test::f64_leaf({5}, 106)});
}

TEST_CASE("gradcheck layer_norm over two dims without affine on a transposed input") {
  check_gradients(
      [](const Inputs& in) {
        return layer_norm(in[0], {3, 4});
      },
      {test::transposed_leaf({2, 3, 4}, 107)});
}

TEST_CASE("gradcheck embedding with repeated indices") {
  Tensor indices = test::indices_tensor({1, 3, 1, 0, 4, 3}, {2, 3});
  check_gradients([indices](const Inputs& in) { return embedding(in[0], indices); },
                  {test::f64_leaf({5, 3}, 108)});
}

TEST_CASE("gradcheck embedding padding_idx 0: other rows exact, padding row gets none") {
  Tensor indices = test::indices_tensor({1, 0, 2, 0}, {4});
  // The loss ignores the padded positions, so the true gradient of row 0 is zero too.
  Tensor keep = from_values({1, 0, 1, 0}, {4, 1}, {.dtype = DType::f64});
  check_gradients([indices, keep](const Inputs& in) { return embedding(in[0], indices, 0) * keep; },
                  {test::f64_leaf({3, 2}, 109)});
  Tensor weight = test::f64_leaf({3, 2}, 110);
  sum(embedding(weight, indices, 0)).backward();
  CHECK(weight.grad().to_vector() == std::vector<double>{0, 0, 1, 1, 1, 1});
}

TEST_CASE("embedding rejects a padding_idx outside the table, naming it") {
  Tensor weight = test::f64_leaf({3, 2}, 111);
  Tensor indices = test::indices_tensor({1, 0}, {2});
  CHECK_THROWS_WITH_AS(embedding(weight, indices, 3),
                       "embedding: padding_idx must be -1 (none) or in [0, 3), got 3",
                       std::invalid_argument);
  CHECK_THROWS_AS(embedding(weight, indices, -2), std::invalid_argument);
  // The last row as padding: its gradient stays zero, the others are counted.
  sum(embedding(weight, test::indices_tensor({2, 0, 2}, {3}), 2)).backward();
  CHECK(weight.grad().to_vector() == std::vector<double>{1, 1, 0, 0, 0, 0});
}

TEST_CASE("gradcheck dropout training p 0.3 with a fixed generator") {
  check_gradients(
      [](const Inputs& in) {
        Generator generator(111);  // the same mask at every evaluation
        return dropout(in[0], 0.3, /*training=*/true, &generator);
      },
      {test::f64_leaf({4, 5}, 112)});
}

TEST_CASE("dropout in eval mode or with p 0 returns its input; p 1 zeroes") {
  Tensor x = test::f64_leaf({3}, 113);
  CHECK(dropout(x, 0.5, false).is_same(x));
  CHECK(dropout(x, 0.0, true).is_same(x));
  CHECK(dropout(x, 1.0, true).to_vector() == std::vector<double>{0, 0, 0});
  CHECK_THROWS_AS(dropout(x, 1.5, true), std::invalid_argument);
}
