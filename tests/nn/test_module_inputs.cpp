// Modules with several inputs and outputs: calling forms, optional (undefined) inputs, hooks
// that see and replace every input and output, Sequential chaining lists, checkpoint_sequential
// over such layers, and the errors of a call with the wrong number of tensors.
#include <doctest/doctest.h>

#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "core/factory.h"
#include "nn/checkpoint_sequential.h"
#include "nn/nn.h"

using namespace zt;

namespace {

// (x, shift or None) -> (tanh(fc(x)) + shift, 2 * that): two inputs, one optional; two outputs.
class ShiftedBlock final : public nn::Module {
 public:
  ShiftedBlock(int64_t in, int64_t out) {
    fc = register_module("fc", std::make_shared<nn::Linear>(in, out));
  }
  std::string type_name() const override { return "ShiftedBlock"; }
  std::shared_ptr<nn::Linear> fc;

 protected:
  nn::TensorList forward_many(const nn::TensorList& inputs) override {
    if (inputs.size() != 2) throw std::invalid_argument("ShiftedBlock: takes (x, shift)");
    Tensor hidden = tanh((*fc)(inputs[0]));
    if (inputs[1].defined()) hidden = hidden + inputs[1];
    return {hidden, hidden * 2.0};
  }
};

// (a, b) -> (a + b, a - b): what a layer of a Sequential of two-tensor layers passes on.
class SumAndDifference final : public nn::Module {
 public:
  std::string type_name() const override { return "SumAndDifference"; }

 protected:
  nn::TensorList forward_many(const nn::TensorList& inputs) override {
    return {inputs.at(0) + inputs.at(1), inputs.at(0) - inputs.at(1)};
  }
};

// x -> (x, x): one input, two outputs.
class Duplicate final : public nn::Module {
 public:
  std::string type_name() const override { return "Duplicate"; }

 protected:
  nn::TensorList forward_many(const nn::TensorList& inputs) override {
    return {inputs.at(0), inputs.at(0)};
  }
};

std::vector<double> gradient_of(const Tensor& leaf) {
  return leaf.grad().to_vector();
}

}  // namespace

TEST_CASE("a two-input module takes module(a, b) and a None input as an undefined tensor") {
  manual_seed(5);
  ShiftedBlock block(3, 4);
  Tensor x = randn({2, 3});
  Tensor shift = full({2, 4}, 0.25);
  nn::TensorList shifted = block(x, shift);
  nn::TensorList plain = block(x, Tensor());
  REQUIRE(shifted.size() == 2);
  REQUIRE(plain.size() == 2);
  std::vector<double> with_shift = shifted[0].to_vector(), without = plain[0].to_vector();
  for (size_t i = 0; i < with_shift.size(); ++i)
    CHECK(with_shift[i] == doctest::Approx(without[i] + 0.25));
  std::vector<double> doubled = shifted[1].to_vector();
  for (size_t i = 0; i < with_shift.size(); ++i) CHECK(doubled[i] == 2.0 * with_shift[i]);
  // The list form is the same call.
  CHECK(block(nn::TensorList{x, shift})[0].to_vector() == with_shift);
}

TEST_CASE("calls with the wrong number of tensors name the module and the counts") {
  ShiftedBlock block(3, 4);
  nn::Linear linear(3, 4);
  CHECK_THROWS_WITH_AS(block(zeros({2, 3})), doctest::Contains("ShiftedBlock"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(linear(zeros({2, 3}), zeros({2, 3})),
                       doctest::Contains("Linear: forward takes 1 input, got 2"),
                       std::invalid_argument);
  Duplicate duplicate;
  // One tensor in, two out: the one-tensor form cannot return them.
  CHECK_THROWS_WITH_AS(duplicate(zeros({2})), doctest::Contains("Duplicate: returned 2 outputs"),
                       std::invalid_argument);
  CHECK(duplicate(nn::TensorList{zeros({2})}).size() == 2);
}

TEST_CASE("hooks see every input and output and may replace them, as PyTorch's may") {
  manual_seed(6);
  ShiftedBlock block(3, 4);
  Tensor x = randn({2, 3});
  std::vector<size_t> seen;
  block.register_forward_pre_hook([&](nn::Module&, const nn::TensorList& inputs) {
    seen.push_back(inputs.size());
    return std::optional<nn::TensorList>(nn::TensorList{inputs[0], full({2, 4}, 1.0)});
  });
  block.register_forward_hook(
      [&](nn::Module&, const nn::TensorList& inputs, const nn::TensorList& outputs) {
        seen.push_back(inputs.size() * 10 + outputs.size());
        CHECK(inputs[1].defined());  // the hook sees the inputs forward was given
        return std::optional<nn::TensorList>(nn::TensorList{outputs[0]});
      });
  nn::TensorList replaced = block(x, Tensor());
  CHECK(seen == std::vector<size_t>{2, 22});
  REQUIRE(replaced.size() == 1);
  ShiftedBlock reference(3, 4);
  reference.load_state_dict(block.state_dict());
  CHECK(replaced[0].to_vector() == reference(x, full({2, 4}, 1.0))[0].to_vector());
}

TEST_CASE("Sequential passes each layer's outputs to the next as its inputs") {
  nn::Sequential chain{std::make_shared<SumAndDifference>(), std::make_shared<SumAndDifference>()};
  Tensor a = from_values({3.0, 5.0}, {2}), b = from_values({1.0, 2.0}, {2});
  nn::TensorList out = chain(a, b);
  // (a + b) + (a - b) = 2a, (a + b) - (a - b) = 2b.
  REQUIRE(out.size() == 2);
  CHECK(out[0].to_vector() == std::vector<double>{6.0, 10.0});
  CHECK(out[1].to_vector() == std::vector<double>{2.0, 4.0});
}

TEST_CASE("checkpoint_sequential over two-tensor layers gives the plain gradients bitwise") {
  auto make_chain = [] {
    return std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
        std::make_shared<SumAndDifference>(), std::make_shared<SumAndDifference>(),
        std::make_shared<SumAndDifference>(), std::make_shared<SumAndDifference>()});
  };
  auto gradients = [](const std::function<nn::TensorList(const nn::TensorList&)>& run) {
    Tensor a = from_values({0.5, -1.5, 2.0}, {3});
    Tensor b = from_values({1.25, 0.75, -3.0}, {3});
    a.set_requires_grad(true);
    b.set_requires_grad(true);
    nn::TensorList out = run({a, b});
    Tensor loss = sum(out[0] * out[0]) + sum(out[1] * 3.0);
    loss.backward();
    return std::vector<std::vector<double>>{gradient_of(a), gradient_of(b)};
  };
  auto plain_chain = make_chain();
  auto checkpointed_chain = make_chain();
  auto plain = gradients([&](const nn::TensorList& in) { return (*plain_chain)(in); });
  auto checkpointed = gradients([&](const nn::TensorList& in) {
    return nn::checkpoint_sequential(*checkpointed_chain, 2, in);
  });
  CHECK(checkpointed == plain);
}
