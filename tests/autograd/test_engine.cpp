// The backward engine and the autograd surface of Tensor: accumulation over shared paths,
// hooks, the grad-ready event of leaves, grad mode, retain_graph and the error messages.
#include <doctest/doctest.h>

#include <stdexcept>
#include <string>

#include "autograd/autograd_meta.h"
#include "autograd/engine.h"
#include "autograd/functions.h"
#include "autograd/node.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "tests/autograd/gradcheck_helpers.h"

using namespace zt;

namespace {

Tensor f64_values(std::initializer_list<double> values, const Shape& shape) {
  return from_values(values, shape, {.dtype = DType::f64});
}

void check_values(const Tensor& tensor, const std::vector<double>& expected) {
  REQUIRE(tensor.defined());
  std::vector<double> values = tensor.to_vector();
  REQUIRE(values.size() == expected.size());
  for (size_t i = 0; i < values.size(); ++i) CHECK(values[i] == doctest::Approx(expected[i]));
}

}  // namespace

TEST_CASE("diamond graph: gradients of both branches are summed into the leaf") {
  Tensor x = test::as_leaf(f64_values({1, 2, 3}, {3}));
  Tensor doubled = x * 2.0;
  Tensor tripled = x * 3.0;
  sum(doubled + tripled).backward();
  check_values(x.grad(), {5, 5, 5});
}

TEST_CASE("a leaf used twice in one op gets both contributions") {
  Tensor x = test::as_leaf(f64_values({1, -2, 3}, {3}));
  sum(x * x).backward();
  check_values(x.grad(), {2, -4, 6});
}

TEST_CASE("gradients accumulate over backward calls until cleared with set_grad") {
  Tensor x = test::as_leaf(f64_values({1, 2}, {2}));
  sum(x * 3.0).backward();
  sum(x * 3.0).backward();
  check_values(x.grad(), {6, 6});
  x.set_grad(Tensor());
  CHECK_FALSE(x.grad().defined());
  sum(x).backward();
  check_values(x.grad(), {1, 1});
}

TEST_CASE("a broadcast input's gradient is summed to its shape and stored in a grad buffer") {
  Tensor row = test::as_leaf(f64_values({1, 2, 3}, {3}));
  Tensor matrix = test::as_leaf(zeros({2, 3}, {.dtype = DType::f64}));
  sum(row + matrix).backward();
  check_values(row.grad(), {2, 2, 2});
  CHECK(row.grad().is_contiguous());
  CHECK(row.grad().storage()->tag() == MemoryTag::grad);
  CHECK(row.grad().storage() != row.storage());
}

TEST_CASE("backward with an explicit gradient for a non-scalar output") {
  Tensor x = test::as_leaf(f64_values({1, 2, 3}, {3}));
  Tensor y = x * x;
  y.backward(f64_values({1, 10, 100}, {3}));
  check_values(x.grad(), {2, 40, 600});
}

TEST_CASE("grad_fn names the op and leaves have none") {
  Tensor x = test::as_leaf(f64_values({1, 2}, {2}));
  Tensor y = x * x;
  CHECK(x.is_leaf());
  CHECK(x.grad_fn() == nullptr);
  CHECK_FALSE(y.is_leaf());
  REQUIRE(y.grad_fn() != nullptr);
  CHECK(y.grad_fn()->name() == "MulBackward");
  CHECK(y.requires_grad());
  CHECK(sum(y).grad_fn()->sequence_nr() > y.grad_fn()->sequence_nr());  // later runs first
}

TEST_CASE("a leaf hook replaces the gradient before it is accumulated") {
  Tensor x = test::as_leaf(f64_values({1, 2}, {2}));
  x.register_hook([](const Tensor& grad) { return ops::mul(grad, 10.0); });
  sum(x * 2.0).backward();
  check_values(x.grad(), {20, 20});
}

TEST_CASE("a non-leaf hook sees the summed gradient and its replacement flows on") {
  Tensor x = test::as_leaf(f64_values({1, 2}, {2}));
  Tensor middle = x * 3.0;
  std::vector<double> seen;
  middle.register_hook([&seen](const Tensor& grad) {
    seen = grad.to_vector();
    return ops::mul(grad, 2.0);
  });
  sum(middle + middle).backward();
  CHECK(seen == std::vector<double>{2, 2});
  check_values(x.grad(), {12, 12});  // 2 (two uses) * 2 (hook) * 3
}

TEST_CASE("a hook returning an undefined tensor keeps the gradient") {
  Tensor x = test::as_leaf(f64_values({1, 2}, {2}));
  int calls = 0;
  x.register_hook([&calls](const Tensor&) {
    ++calls;
    return Tensor();
  });
  sum(x).backward();
  CHECK(calls == 1);
  check_values(x.grad(), {1, 1});
}

TEST_CASE("grad-ready hook fires once per leaf per backward, after its gradient is final") {
  Tensor x = test::as_leaf(f64_values({1, 2}, {2}));
  Tensor w = test::as_leaf(f64_values({3, 4}, {2}));
  int x_fired = 0, w_fired = 0;
  std::vector<double> x_grad_when_fired;
  autograd::register_grad_ready_hook(x, [&](const Tensor& leaf) {
    ++x_fired;
    x_grad_when_fired = leaf.grad().to_vector();
  });
  autograd::register_grad_ready_hook(w, [&](const Tensor&) { ++w_fired; });
  // x reaches the loss along three paths of different depth.
  Tensor early = x * w;
  Tensor deep = exp(log(x * 1.0) * 1.0) * 2.0;
  Tensor loss = sum(early + deep + x);
  loss.backward();
  CHECK(x_fired == 1);
  CHECK(w_fired == 1);
  check_values(x.grad(), {3 + 2 + 1, 4 + 2 + 1});
  CHECK(x_grad_when_fired == x.grad().to_vector());

  sum(x * w).backward();
  CHECK(x_fired == 2);
  CHECK(w_fired == 2);
  autograd::clear_grad_ready_hooks(x);
  sum(x).backward();
  CHECK(x_fired == 2);
}

TEST_CASE("grad-ready hook needs a leaf that requires grad") {
  Tensor plain = f64_values({1}, {1});
  CHECK_THROWS_AS(autograd::register_grad_ready_hook(plain, [](const Tensor&) {}),
                  std::invalid_argument);
}

TEST_CASE("no_grad records nothing and restores grad mode at scope end") {
  Tensor x = test::as_leaf(f64_values({1, 2}, {2}));
  {
    NoGradGuard no_grad;
    CHECK_FALSE(is_grad_enabled());
    Tensor y = exp(x * 2.0).reshape({2, 1});
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
  }
  CHECK(is_grad_enabled());
  CHECK((x * 2.0).requires_grad());
}

TEST_CASE("backward runs with grad mode off") {
  Tensor x = test::as_leaf(f64_values({1, 2}, {2}));
  bool enabled_inside = true;
  x.register_hook([&](const Tensor&) {
    enabled_inside = is_grad_enabled();
    return Tensor();
  });
  sum(x).backward();
  CHECK_FALSE(enabled_inside);
}

TEST_CASE("inputs that do not require grad record nothing") {
  Tensor a = f64_values({1, 2}, {2});
  Tensor y = a * a + 1.0;
  CHECK_FALSE(y.requires_grad());
  CHECK(y.grad_fn() == nullptr);
}

TEST_CASE("retain_graph keeps saved tensors for a second backward; without it the second throws") {
  Tensor x = test::as_leaf(f64_values({1, 2}, {2}));
  Tensor loss = sum(x * x);
  loss.backward(Tensor(), /*retain_graph=*/true);
  loss.backward();
  check_values(x.grad(), {4, 8});
  try {
    loss.backward();
    FAIL("a third backward through a released graph must throw");
  } catch (const std::runtime_error& error) {
    std::string message = error.what();
    CHECK(message.find("second time") != std::string::npos);
    CHECK(message.find("retain_graph") != std::string::npos);
  }
}

TEST_CASE("detach shares data but leaves the graph") {
  Tensor x = test::as_leaf(f64_values({1, 2}, {2}));
  Tensor y = x * 2.0;
  Tensor detached = y.detach();
  CHECK_FALSE(detached.requires_grad());
  CHECK(detached.is_leaf());
  CHECK(detached.storage() == y.storage());
}

TEST_CASE("a conversion's gradient comes back in the input dtype") {
  Tensor x = test::as_leaf(f64_values({1, 2}, {2}));
  sum(x.to(DType::f32) * 3.0).backward();
  REQUIRE(x.grad().defined());
  CHECK(x.grad().dtype() == DType::f64);
  check_values(x.grad(), {3, 3});
}

TEST_CASE("an op returning its input unchanged records no node") {
  Tensor x = test::as_leaf(f64_values({1, 2}, {2}));
  CHECK(x.contiguous().is_same(x));
  CHECK(x.to(DType::f64).is_same(x));
  CHECK(x.is_leaf());
}

TEST_CASE("set_requires_grad errors: non-leaf, integer dtype") {
  Tensor x = test::as_leaf(f64_values({1, 2}, {2}));
  Tensor y = x * 2.0;
  CHECK_THROWS_AS(y.set_requires_grad(false), std::invalid_argument);
  Tensor integers = from_int64(std::vector<int64_t>{1, 2}, {2});
  CHECK_THROWS_AS(integers.set_requires_grad(true), std::invalid_argument);
  CHECK_NOTHROW(integers.set_requires_grad(false));
  x.set_requires_grad(false);
  CHECK_FALSE(x.requires_grad());
}

TEST_CASE("backward errors: non-scalar without gradient, no grad, wrong gradient shape") {
  Tensor x = test::as_leaf(f64_values({1, 2}, {2}));
  CHECK_THROWS_AS((x * 2.0).backward(), std::invalid_argument);
  CHECK_THROWS_AS(sum(f64_values({1, 2}, {2})).backward(), std::invalid_argument);
  CHECK_THROWS_AS((x * 2.0).backward(f64_values({1, 2, 3}, {3})), std::invalid_argument);
  CHECK_THROWS_AS(f64_values({1}, {1}).register_hook([](const Tensor& g) { return g; }),
                  std::invalid_argument);
  CHECK_THROWS_AS(x.set_grad(f64_values({1, 2, 3}, {3})), std::invalid_argument);
}

TEST_CASE("Engine::backward over two roots sums their contributions") {
  Tensor x = test::as_leaf(f64_values({1, 2}, {2}));
  Tensor first = sum(x * 2.0);
  Tensor second = sum(x * x);
  autograd::Engine::backward({first, second}, {Tensor(), Tensor()});
  check_values(x.grad(), {2 + 2, 2 + 4});
}

TEST_CASE("a root that another root depends on waits for its gradient") {
  Tensor x = test::as_leaf(f64_values({1, 2}, {2}));
  Tensor middle = x * 3.0;
  Tensor top = middle * 2.0;
  autograd::Engine::backward({middle, top},
                             {ones({2}, {.dtype = DType::f64}), ones({2}, {.dtype = DType::f64})});
  check_values(x.grad(), {9, 9});  // (1 + 2) * 3
}

TEST_CASE("a leaf can be the root of backward") {
  Tensor x = test::as_leaf(f64_values({5}, {1}));
  x.backward();
  check_values(x.grad(), {1});
}

TEST_CASE("a graph that is never back-propagated frees everything when dropped") {
  Tensor x = test::as_leaf(f64_values({1, 2, 3}, {3}));
  int64_t live_before = cpu_allocator().accounting().stats().total_live_bytes;
  {
    // exp and sigmoid save their own outputs: the saved copies must not keep a cycle alive.
    Tensor loss = sum(sigmoid(exp(x * 2.0)) + softmax(x, 0));
    CHECK(cpu_allocator().accounting().stats().total_live_bytes > live_before);
  }
  CHECK(cpu_allocator().accounting().stats().total_live_bytes == live_before);
}

TEST_CASE("backward without retain_graph frees the saved activations") {
  Tensor x = test::as_leaf(f64_values({1, 2, 3}, {3}));
  auto live_bytes = [] { return cpu_allocator().accounting().stats().total_live_bytes; };
  Tensor retained_loss = sum(exp(exp(x)));
  retained_loss.backward(Tensor(), /*retain_graph=*/true);
  int64_t live_retained = live_bytes();
  retained_loss = Tensor();
  x.set_grad(Tensor());
  int64_t live_base = live_bytes();
  Tensor loss = sum(exp(exp(x)));
  loss.backward();
  CHECK(live_bytes() < live_retained);
  CHECK(live_bytes() > live_base);  // the loss and x.grad remain
}
