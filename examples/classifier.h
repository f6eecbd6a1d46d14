// The modules docs/modules.md writes, from a layer with parameters of its own to a model with
// several inputs and outputs. Quoted there region by region; used by custom_module.cpp and
// stage3_module.cpp.
#pragma once

#include <fmt/format.h>

#include <cmath>
#include <memory>
#include <string>

#include "autograd/functions.h"
#include "core/factory.h"
#include "nn/nn.h"

namespace examples {

// y = x W^T + b: a layer with parameters of its own.
class Affine final : public zt::nn::Module {
 public:
  Affine(int64_t in_features, int64_t out_features) {
    weight = register_parameter("weight", zt::empty({out_features, in_features}));
    bias = register_parameter("bias", zt::zeros({out_features}));
    zt::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));  // as nn::Linear
  }
  // Optional: what repr() prints between the parentheses.
  std::string extra_repr() const override {
    return fmt::format("in={}, out={}", weight.size(1), weight.size(0));
  }
  zt::Tensor weight, bias;

 protected:
  zt::Tensor forward(const zt::Tensor& x) override { return zt::matmul(x, weight.t()) + bias; }
};

// x + gelu(fc(norm(x))): children registered once and called through operator().
class ResidualBlock final : public zt::nn::Module {
 public:
  explicit ResidualBlock(int64_t width) {
    norm = register_module("norm", std::make_shared<zt::nn::LayerNorm>(zt::Shape{width}));
    fc = register_module("fc", std::make_shared<Affine>(width, width));
  }
  std::shared_ptr<zt::nn::LayerNorm> norm;
  std::shared_ptr<Affine> fc;

 protected:
  zt::Tensor forward(const zt::Tensor& x) override { return x + zt::gelu((*fc)((*norm)(x))); }
};

// (inputs, targets or None) -> (logits, loss or None), as a GPT's (idx, targets) ->
// (logits, loss).
class Classifier final : public zt::nn::Module {
 public:
  Classifier(int64_t features, int64_t width, int64_t classes) {
    embed = register_module("embed", std::make_shared<Affine>(features, width));
    block = register_module("block", std::make_shared<ResidualBlock>(width));
    head = register_module("head", std::make_shared<zt::nn::Linear>(width, classes));
  }
  std::shared_ptr<Affine> embed;
  std::shared_ptr<ResidualBlock> block;
  std::shared_ptr<zt::nn::Linear> head;

 protected:
  zt::nn::TensorList forward_many(const zt::nn::TensorList& inputs) override {
    zt::Tensor logits = (*head)((*block)((*embed)(inputs.at(0))));
    bool has_targets = inputs.size() > 1 && inputs[1].defined();
    return {logits, has_targets ? zt::cross_entropy(logits, inputs[1]) : zt::Tensor()};
  }
};

}  // namespace examples
