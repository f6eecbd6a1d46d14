// The distillation loss and its gradient against formulas worked in double-precision loops,
// and the teacher frozen: no gradients, no graph, evaluation mode.
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "autograd/functions.h"
#include "compress/distillation.h"
#include "core/factory.h"
#include "core/generator.h"
#include "nn/nn.h"

using namespace zt;
using namespace zt::compress;

namespace {

std::vector<double> softmax_row(const std::vector<double>& logits, size_t row, size_t classes,
                                double t) {
  double top = -1e300, total = 0;
  for (size_t c = 0; c < classes; ++c) top = std::max(top, logits[row * classes + c] / t);
  std::vector<double> p(classes);
  for (size_t c = 0; c < classes; ++c)
    total += p[c] = std::exp(logits[row * classes + c] / t - top);
  for (double& value : p) value /= total;
  return p;
}

}  // namespace

TEST_CASE("distillation: CE + alpha T^2 KL and its gradient, against loops") {
  manual_seed(5);
  const size_t n = 4, classes = 5;
  const double alpha = 0.7, t = 3.0;
  Tensor student = randn({int64_t(n), int64_t(classes)}).set_requires_grad(true);
  Tensor teacher = mul(randn({int64_t(n), int64_t(classes)}), 2.0);
  const std::vector<int64_t> y = {0, 3, 4, 1};
  Tensor labels = from_int64(y, {int64_t(n)});
  Tensor loss = distillation_loss(student, teacher, labels, {.alpha = alpha, .temperature = t});
  loss.backward();

  std::vector<double> s = student.to_vector(), z = teacher.to_vector();
  double ce = 0, kl = 0;
  std::vector<double> expected_grad(n * classes);
  for (size_t i = 0; i < n; ++i) {
    std::vector<double> p = softmax_row(s, i, classes, 1.0);
    std::vector<double> ps = softmax_row(s, i, classes, t), pt = softmax_row(z, i, classes, t);
    ce -= std::log(p[size_t(y[i])]);
    for (size_t c = 0; c < classes; ++c) {
      kl += pt[c] * (std::log(pt[c]) - std::log(ps[c]));
      expected_grad[i * classes + c] = (p[c] - (int64_t(c) == y[i] ? 1.0 : 0.0)) / double(n) +
                                       alpha * t * (ps[c] - pt[c]) / double(n);
    }
  }
  CHECK(loss.item() ==
        doctest::Approx(ce / double(n) + alpha * t * t * kl / double(n)).epsilon(1e-5));
  std::vector<double> grad = student.grad().to_vector();
  for (size_t i = 0; i < grad.size(); ++i)
    CHECK(grad[i] == doctest::Approx(expected_grad[i]).epsilon(1e-4));
  // A student that equals the teacher pays cross entropy only.
  Tensor same = distillation_loss(teacher, teacher, labels, {.alpha = alpha, .temperature = t});
  CHECK(same.item() == doctest::Approx(cross_entropy(teacher, labels).item()).epsilon(1e-5));
  CHECK_THROWS_AS(distillation_loss(student, teacher, labels, {.temperature = 0.0}),
                  std::invalid_argument);
}

TEST_CASE("distillation: the teacher is frozen") {
  auto model = std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Linear>(6, 4), std::make_shared<nn::Dropout>(0.5)});
  Teacher teacher(model);
  CHECK(!model->is_training());
  for (const Tensor& parameter : model->parameters()) CHECK(!parameter.requires_grad());
  Tensor input = randn({3, 6});
  Tensor first = teacher(input), second = teacher(input);
  CHECK(!first.requires_grad());
  CHECK(first.grad_fn() == nullptr);
  CHECK(first.to_vector() == second.to_vector());  // dropout off: evaluation mode
}
