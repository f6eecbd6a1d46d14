// Activation checkpointing: gradients of inputs and parameters bitwise equal to running the
// same piece without it (dropout included, so the RNG replay is exercised), nesting, several
// inputs and outputs, the RNG stream afterwards, errors, and the activation-memory saving.
#include <doctest/doctest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/autograd_meta.h"
#include "autograd/checkpoint.h"
#include "autograd/functions.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "core/generator.h"
#include "nn/checkpoint_sequential.h"
#include "nn/nn.h"

using namespace zt;

namespace {

std::shared_ptr<nn::Sequential> mlp(int64_t width, int64_t depth, double dropout_p) {
  auto model = std::make_shared<nn::Sequential>();
  for (int64_t layer = 0; layer < depth; ++layer) {
    model->push_back(std::make_shared<nn::Linear>(width, width));
    model->push_back(std::make_shared<nn::ReLU>());
    if (dropout_p > 0.0) model->push_back(std::make_shared<nn::Dropout>(dropout_p));
  }
  return model;
}

// Every gradient a step produced, in a fixed order: the input's, then each parameter's.
std::vector<std::vector<double>> gradients_of(const Tensor& input, nn::Module& model) {
  std::vector<std::vector<double>> grads;
  grads.push_back(input.grad().defined() ? input.grad().to_vector() : std::vector<double>{});
  for (const Tensor& param : model.parameters()) {
    REQUIRE(param.grad().defined());
    grads.push_back(param.grad().to_vector());
  }
  return grads;
}

// Seeds, runs forward (plain or checkpointed) and backward of sum(y * y), returns every
// gradient and one draw from the generator afterwards, and clears the gradients.
struct StepResult {
  std::vector<std::vector<double>> grads;
  std::vector<double> output;
  std::vector<double> draw_after;
};

StepResult step(nn::Sequential& model, const Tensor& input,
                const std::function<Tensor(const Tensor&)>& forward) {
  manual_seed(1234);
  Tensor out = forward(input);
  sum(out * out).backward();
  StepResult result{gradients_of(input, model), out.to_vector(),
                    uniform({8}, 0.0, 1.0).to_vector()};
  model.zero_grad();
  input.set_grad(Tensor());
  return result;
}

Tensor leaf(const Shape& shape, uint64_t seed, bool requires_grad = true) {
  Generator generator(seed);
  Tensor values = uniform(shape, -1.0, 1.0, {}, &generator);
  if (requires_grad) values.set_requires_grad(true);
  return values;
}

}  // namespace

TEST_CASE("checkpointed MLP with dropout: gradients, outputs and RNG stream bitwise equal") {
  manual_seed(7);
  auto model = mlp(16, 4, 0.3);
  Tensor x = leaf({5, 16}, 11);
  StepResult plain = step(*model, x, [&](const Tensor& in) { return (*model)(in); });
  StepResult checkpointed = step(*model, x, [&](const Tensor& in) {
    return checkpoint([&](const Tensor& piece) { return (*model)(piece); }, in);
  });
  CHECK(checkpointed.output == plain.output);
  CHECK(checkpointed.grads == plain.grads);
  CHECK(checkpointed.draw_after == plain.draw_after);
}

TEST_CASE("checkpoint_sequential at every segment count matches the plain model bitwise") {
  manual_seed(8);
  auto model = mlp(12, 5, 0.25);  // 15 layers
  Tensor x = leaf({3, 12}, 12);
  StepResult plain = step(*model, x, [&](const Tensor& in) { return (*model)(in); });
  for (int64_t segments : {1, 2, 4, 7, 15}) {
    CAPTURE(segments);
    StepResult checkpointed = step(
        *model, x, [&](const Tensor& in) { return checkpoint_sequential(*model, segments, in); });
    CHECK(checkpointed.output == plain.output);
    CHECK(checkpointed.grads == plain.grads);
    CHECK(checkpointed.draw_after == plain.draw_after);
  }
  CHECK_THROWS_AS(checkpoint_sequential(*model, 0, x), std::invalid_argument);
  CHECK_THROWS_AS(checkpoint_sequential(*model, 16, x), std::invalid_argument);
}

TEST_CASE("an input that does not require grad still lets parameters inside get gradients") {
  manual_seed(9);
  auto model = mlp(8, 3, 0.2);
  Tensor x = leaf({4, 8}, 13, /*requires_grad=*/false);
  StepResult plain = step(*model, x, [&](const Tensor& in) { return (*model)(in); });
  StepResult checkpointed =
      step(*model, x, [&](const Tensor& in) { return checkpoint_sequential(*model, 3, in); });
  CHECK_FALSE(x.grad().defined());
  CHECK(checkpointed.grads == plain.grads);
  CHECK(checkpointed.draw_after == plain.draw_after);
}

TEST_CASE("nested checkpoints match the plain computation bitwise") {
  manual_seed(10);
  auto model = mlp(8, 4, 0.2);  // 12 layers
  auto run = [&](size_t begin, size_t end, const Tensor& in) {
    Tensor value = in;
    for (size_t i = begin; i < end; ++i) value = (*(*model)[i])(value);
    return value;
  };
  Tensor x = leaf({3, 8}, 14);
  StepResult plain = step(*model, x, [&](const Tensor& in) { return (*model)(in); });
  StepResult nested = step(*model, x, [&](const Tensor& in) {
    return checkpoint(
        [&](const Tensor& outer) {
          Tensor middle = checkpoint([&](const Tensor& inner) { return run(0, 6, inner); }, outer);
          return checkpoint([&](const Tensor& inner) { return run(6, 12, inner); }, middle);
        },
        in);
  });
  CHECK(nested.output == plain.output);
  CHECK(nested.grads == plain.grads);
  CHECK(nested.draw_after == plain.draw_after);
}

TEST_CASE("several inputs and outputs, one input without grad and one output unused") {
  Tensor a = leaf({3, 4}, 21);
  Tensor b = leaf({3, 4}, 22);
  Tensor c = leaf({3, 4}, 23, /*requires_grad=*/false);
  auto fn = [](const std::vector<Tensor>& in) {
    Tensor product = in[0] * in[1];
    return std::vector<Tensor>{tanh(product) + in[2], exp(in[1]) * in[2], in[0] * 2.0};
  };
  auto run = [&](bool checkpointed) {
    std::vector<Tensor> out = checkpointed ? checkpoint(fn, {a, b, c}) : fn({a, b, c});
    sum(out[0] * out[1]).backward();  // out[2] gets no gradient
    std::vector<std::vector<double>> grads{a.grad().to_vector(), b.grad().to_vector()};
    CHECK_FALSE(c.grad().defined());
    a.set_grad(Tensor());
    b.set_grad(Tensor());
    return grads;
  };
  CHECK(run(true) == run(false));
}

TEST_CASE("checkpoint returning its input unchanged does not touch the input's graph") {
  Tensor x = leaf({4}, 31);
  Tensor y = checkpoint([](const Tensor& in) { return dropout(in, 0.5, /*training=*/false); }, x);
  CHECK_FALSE(y.is_same(x));
  CHECK(x.is_leaf());
  sum(y * 3.0).backward();
  CHECK(x.grad().to_vector() == std::vector<double>(4, 3.0));
}

TEST_CASE("grad-ready hooks of parameters inside a checkpoint fire once, with the final grad") {
  manual_seed(11);
  auto model = mlp(8, 3, 0.0);
  std::vector<int> fired(model->parameters().size(), 0);
  std::vector<std::vector<double>> grad_at_fire(fired.size());
  std::vector<Tensor> params = model->parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    autograd::register_grad_ready_hook(params[i], [&, i](const Tensor& param) {
      ++fired[i];
      grad_at_fire[i] = param.grad().to_vector();
    });
  }
  Tensor x = leaf({4, 8}, 15);
  Tensor out = checkpoint_sequential(*model, 3, x);
  sum(out).backward();
  for (size_t i = 0; i < params.size(); ++i) {
    CAPTURE(i);
    CHECK(fired[i] == 1);
    CHECK(grad_at_fire[i] == params[i].grad().to_vector());
  }
  for (const Tensor& param : params) autograd::clear_grad_ready_hooks(param);
}

TEST_CASE("a released checkpoint refuses a second backward; retain_graph allows it") {
  Tensor x = leaf({3}, 41);
  auto fn = [](const Tensor& in) { return in * in; };
  Tensor once = checkpoint(fn, x);
  once.backward(ones({3}));
  CHECK_THROWS_WITH_AS(once.backward(ones({3})),
                       doctest::Contains("through a checkpoint a second time"), std::runtime_error);

  x.set_grad(Tensor());
  Tensor kept = checkpoint(fn, x);
  kept.backward(ones({3}), /*retain_graph=*/true);
  std::vector<double> first = x.grad().to_vector();
  kept.backward(ones({3}));
  std::vector<double> twice = x.grad().to_vector();
  for (size_t i = 0; i < first.size(); ++i) CHECK(twice[i] == 2.0 * first[i]);
}

TEST_CASE("a captured non-leaf that requires grad is refused in backward, naming its op") {
  Tensor w = leaf({3}, 51);
  Tensor captured = w * 2.0;
  Tensor x = leaf({3}, 52);
  Tensor y = checkpoint([&](const Tensor& in) { return in * captured; }, x);
  CHECK_THROWS_WITH_AS(sum(y).backward(), doctest::Contains("outside the checkpoint"),
                       std::invalid_argument);
}

TEST_CASE("module hooks fire in forward and again in recomputation") {
  manual_seed(12);
  auto model = mlp(4, 2, 0.0);  // 4 layers
  int calls = 0;
  for (size_t i = 0; i < model->size(); ++i) {
    (*model)[i]->register_forward_hook(
        [&](nn::Module&, const nn::TensorList&, const nn::TensorList&) { ++calls; });
  }
  Tensor x = leaf({2, 4}, 16);
  Tensor out = checkpoint_sequential(*model, 2, x);  // layers 0-1 checkpointed, 2-3 plain
  CHECK(calls == 4);
  sum(out).backward();
  CHECK(calls == 6);
}

// The Sequential holds 64 modules (Linear, ReLU per layer), so sqrt-ish is 8 segments (3.5x
// here). At 6, PyTorch's split leaves 14 modules to the plain last segment: 3.05x at this size,
// 2.55x at width 512, batch 64, where one 1 MiB weight gradient in flight weighs as much as 8
// activations. bench/checkpoint_mlp prints the whole table.
TEST_CASE("32-layer MLP: checkpoint_sequential with 8 segments cuts peak activation bytes 3x") {
  manual_seed(13);
  const int64_t width = 256;
  const int64_t batch = 256;
  std::shared_ptr<nn::Sequential> model;
  {
    MemoryTagGuard params(MemoryTag::param);
    model = mlp(width, 32, 0.0);
  }
  Tensor x = leaf({batch, width}, 17, /*requires_grad=*/false);
  auto peak_activation_bytes = [&](const std::function<Tensor(const Tensor&)>& forward) {
    MemoryAccounting& accounting = cpu_allocator().accounting();
    int64_t peak = 0;
    {
      MemoryTagGuard activations(MemoryTag::activation);
      accounting.reset_peak();
      const int64_t live_before = accounting.stats().live(MemoryTag::activation);
      Tensor out = forward(x);
      sum(out).backward();
      peak = accounting.stats().peak(MemoryTag::activation) - live_before;
    }
    model->zero_grad();
    return peak;
  };
  const int64_t plain = peak_activation_bytes([&](const Tensor& in) { return (*model)(in); });
  const int64_t checkpointed =
      peak_activation_bytes([&](const Tensor& in) { return checkpoint_sequential(*model, 8, in); });
  MESSAGE("peak activation bytes: plain ", plain, ", checkpoint_sequential(8) ", checkpointed,
          ", ratio ", double(plain) / double(checkpointed));
  CHECK(double(plain) >= 3.0 * double(checkpointed));
}
