// cross_entropy and nll_loss in PyTorch's layouts beyond [N, C]: [C] with a 0-d target and
// [N, C, d1, ..., dk] with [N, d1, ..., dk], with ignore_index, label_smoothing and every
// reduction, and class-probability targets. Values against a loop of PyTorch's formula
// (loss = (1 - s) nll + s/C * sum_c -log p_c, 0 where ignored, mean over the targets kept),
// gradients by f64 finite differences, errors that name the argument.
#include <cmath>
#include <string>
#include <vector>

#include "tests/autograd/gradcheck_helpers.h"
#include "tests/error_of.h"

using namespace zt;
using test::check_gradients;
using Inputs = std::vector<Tensor>;

namespace {

// Per-position losses of logits [N, C, inner] (inner = d1 * ... * dk) in PyTorch's formula.
std::vector<double> cross_entropy_loop(const std::vector<double>& logits, int64_t batch,
                                       int64_t classes, int64_t inner,
                                       const std::vector<int64_t>& target, int64_t ignore_index,
                                       double smoothing) {
  std::vector<double> losses;
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t p = 0; p < inner; ++p) {
      auto logit = [&](int64_t c) { return logits[size_t((n * classes + c) * inner + p)]; };
      double largest = logit(0), total = 0, sum_log_probs = 0;
      for (int64_t c = 1; c < classes; ++c) largest = std::max(largest, logit(c));
      for (int64_t c = 0; c < classes; ++c) total += std::exp(logit(c) - largest);
      const double log_normaliser = largest + std::log(total);
      for (int64_t c = 0; c < classes; ++c) sum_log_probs += logit(c) - log_normaliser;
      const int64_t t = target[size_t(n * inner + p)];
      if (t == ignore_index) {
        losses.push_back(0.0);
        continue;
      }
      const double nll = log_normaliser - logit(t);
      losses.push_back((1 - smoothing) * nll - smoothing / double(classes) * sum_log_probs);
    }
  }
  return losses;
}

void check_close(const std::vector<double>& actual, const std::vector<double>& expected,
                 const std::string& what) {
  REQUIRE_MESSAGE(actual.size() == expected.size(), what);
  for (size_t i = 0; i < actual.size(); ++i) {
    CHECK_MESSAGE(std::abs(actual[i] - expected[i]) <= 1e-12 * (1 + std::abs(expected[i])),
                  what << " element " << i << ": " << actual[i] << " vs " << expected[i]);
  }
}

double total(const std::vector<double>& values) {
  double sum = 0;
  for (double value : values) sum += value;
  return sum;
}

}  // namespace

TEST_CASE("cross_entropy over [N, C, d1, d2] equals PyTorch's formula for every reduction") {
  const std::vector<int64_t> labels{0, 2, -1, 1, 2, -1, 0, 0, 1, 1, 2, -1};
  Tensor target = test::indices_tensor(labels, {2, 3, 2});
  Tensor logits = test::f64_leaf({2, 3, 3, 2}, 601, -3.0, 3.0);
  for (double smoothing : {0.0, 0.2}) {
    std::vector<double> expected =
        cross_entropy_loop(logits.to_vector(), 2, 3, 6, labels, -1, smoothing);
    Tensor none = cross_entropy(logits, target, -1, smoothing, Reduction::none);
    CHECK(none.sizes() == Shape{2, 3, 2});
    check_close(none.to_vector(), expected, "none");
    check_close(cross_entropy(logits, target, -1, smoothing, Reduction::sum).to_vector(),
                {total(expected)}, "sum");
    check_close(cross_entropy(logits, target, -1, smoothing, Reduction::mean).to_vector(),
                {total(expected) / 9.0}, "mean over the 9 targets kept");
  }
}

TEST_CASE("cross_entropy of input [C] and a 0-d target gives a 0-d loss, as one row of [1, C]") {
  Tensor logits = test::f64_leaf({5}, 602, -2.0, 2.0);
  Tensor target = test::indices_tensor({3}, {});
  Tensor loss = cross_entropy(logits, target, -100, 0.1, Reduction::none);
  CHECK(loss.dim() == 0);
  check_close(loss.to_vector(), cross_entropy_loop(logits.to_vector(), 1, 5, 1, {3}, -100, 0.1),
              "[C]");
  check_gradients([target](const Inputs& in) { return cross_entropy(in[0], target, -100, 0.1); },
                  {logits});
}

TEST_CASE("gradcheck cross_entropy over [2, 3, 2, 2] with ignore_index and smoothing, mean") {
  Tensor target = test::indices_tensor({0, 2, -1, 1, 2, -1, 0, 0}, {2, 2, 2});
  check_gradients([target](const Inputs& in) { return cross_entropy(in[0], target, -1, 0.2); },
                  {test::f64_leaf({2, 3, 2, 2}, 603, -2.0, 2.0)});
  check_gradients(
      [target](const Inputs& in) { return cross_entropy(in[0], target, -1, 0.0, Reduction::none); },
      {test::f64_leaf({2, 3, 2, 2}, 604, -2.0, 2.0)});
}

TEST_CASE("nll_loss over [N, C, d] equals cross_entropy of the raw scores, gradients too") {
  Tensor target = test::indices_tensor({1, 0, -100, 2, 2, 1}, {2, 3});
  Tensor scores = test::f64_leaf({2, 3, 3}, 605, -2.0, 2.0);
  for (Reduction reduction : {Reduction::none, Reduction::sum, Reduction::mean}) {
    Tensor nll = nll_loss(log_softmax(scores, 1), target, -100, reduction);
    Tensor fused = cross_entropy(scores, target, -100, 0.0, reduction);
    CHECK(nll.sizes() == fused.sizes());
    check_close(nll.to_vector(), fused.to_vector(), "nll_loss");
  }
  check_gradients(
      [target](const Inputs& in) { return nll_loss(in[0], target, -100, Reduction::sum); },
      {test::f64_leaf({2, 3, 3}, 606)});
  Tensor scalar_target = test::indices_tensor({1}, {});
  CHECK(nll_loss(scores.select(0, 0).select(1, 0), scalar_target).dim() == 0);
}

TEST_CASE("cross_entropy with class probabilities: -sum p log softmax, smoothed, mean per row") {
  Generator generator(607);
  Tensor probabilities =
      softmax(uniform({2, 3, 4}, -1.0, 1.0, {.dtype = DType::f64}, &generator), 1);
  Tensor logits = test::f64_leaf({2, 3, 4}, 608, -2.0, 2.0);
  std::vector<double> x = logits.to_vector(), p = probabilities.to_vector();
  for (double smoothing : {0.0, 0.3}) {
    std::vector<double> expected;
    for (int64_t n = 0; n < 2; ++n) {
      for (int64_t d = 0; d < 4; ++d) {
        double normaliser = 0, loss = 0;
        for (int64_t c = 0; c < 3; ++c) normaliser += std::exp(x[size_t((n * 3 + c) * 4 + d)]);
        for (int64_t c = 0; c < 3; ++c) {
          size_t i = size_t((n * 3 + c) * 4 + d);
          loss -= (p[i] * (1 - smoothing) + smoothing / 3) * (x[i] - std::log(normaliser));
        }
        expected.push_back(loss);
      }
    }
    check_close(cross_entropy(logits, probabilities, -100, smoothing, Reduction::none).to_vector(),
                expected, "probabilities none");
    check_close(cross_entropy(logits, probabilities, -100, smoothing).to_vector(),
                {total(expected) / 8.0}, "probabilities mean over the 8 rows");
  }
  check_gradients(
      [probabilities](const Inputs& in) {
        return cross_entropy(in[0], probabilities, -100, 0.1, Reduction::sum);
      },
      {logits});
}

TEST_CASE("cross_entropy and nll_loss reject targets that do not fit, naming them") {
  Tensor logits = test::f64_leaf({2, 3, 4}, 609);
  CHECK(error_of([&] {
          cross_entropy(logits, test::indices_tensor({0, 1}, {2}));
        }) ==
        "cross_entropy: target has shape [2], expected [2, 4] for input [2, 3, 4] (class dim 1)");
  CHECK(error_of([&] { nll_loss(logits, test::indices_tensor({0}, {})); }) ==
        "nll_loss: target has shape [], expected [2, 4] for input [2, 3, 4] (class dim 1)");
  CHECK(error_of([&] {
          cross_entropy(logits, zeros({2, 4}, {.dtype = DType::i32}));
        }) == "cross_entropy: target must be i64 class indices, got i32");
  CHECK(error_of([&] {
          cross_entropy(logits, zeros({2, 4}, {.dtype = DType::f64}));
        }) ==
        "cross_entropy: a float target holds class probabilities and must have the input's "
        "shape, got target [2, 4] and input [2, 3, 4]");
  CHECK(error_of([&] { cross_entropy(zeros({}), test::indices_tensor({0}, {})); }) ==
        "cross_entropy: input must be [C], [N, C] or [N, C, d1, ...], got a 0-d tensor");
}
