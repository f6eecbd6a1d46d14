// The first example of README.md: a differentiable expression and its backward. The gradient
// autograd gives is then checked against the formula worked out by hand; exits 1 when they
// differ.
#include "autograd/functions.h"
#include "core/factory.h"
#include "core/format.h"

int main() {
  zt::Tensor x = zt::randn({64, 784});
  zt::Tensor w = zt::randn({128, 784}).set_requires_grad(true);
  zt::Tensor loss = zt::mean(zt::relu(zt::linear(x, w)));
  loss.backward();
  fmt::print("loss {:.4f}, gradient {}\n", loss.item(), zt::shape_str(w.grad().sizes()));

  // By hand: d mean(relu(x w^T)) / dw = relu'(x w^T)^T x / (64 * 128), relu' = (x w^T > 0).
  zt::Tensor active = zt::gt(zt::linear(x, w.detach()), 0.0).to(zt::DType::f32);
  zt::Tensor by_hand = zt::mm(active.t(), x) / (64.0 * 128.0);
  double difference = zt::amax(zt::abs(w.grad() - by_hand)).item();
  fmt::print("largest difference from the formula: {:.1e}\n", difference);
  return difference <= 1e-6 ? 0 : 1;
}
