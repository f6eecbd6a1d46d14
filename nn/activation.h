// Parameter-free activation layers: ReLU, GELU (exact or tanh), Tanh, Sigmoid, SiLU.
#pragma once

#include "autograd/functions.h"
#include "nn/module.h"

namespace zt::nn {

class ReLU final : public Module {
 public:
  std::string type_name() const override { return "ReLU"; }

 protected:
  Tensor forward(const Tensor& input) override { return relu(input); }
};

class GELU final : public Module {
 public:
  explicit GELU(bool tanh_approximation = false) : tanh_approximation_(tanh_approximation) {}
  std::string type_name() const override { return "GELU"; }
  std::string extra_repr() const override {
    return tanh_approximation_ ? "approximate='tanh'" : "";
  }

 protected:
  Tensor forward(const Tensor& input) override { return gelu(input, tanh_approximation_); }

 private:
  bool tanh_approximation_;
};

class Tanh final : public Module {
 public:
  std::string type_name() const override { return "Tanh"; }

 protected:
  Tensor forward(const Tensor& input) override { return zt::tanh(input); }
};

class Sigmoid final : public Module {
 public:
  std::string type_name() const override { return "Sigmoid"; }

 protected:
  Tensor forward(const Tensor& input) override { return sigmoid(input); }
};

class SiLU final : public Module {
 public:
  std::string type_name() const override { return "SiLU"; }

 protected:
  Tensor forward(const Tensor& input) override { return silu(input); }
};

}  // namespace zt::nn
