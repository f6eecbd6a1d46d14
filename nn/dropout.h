// Dropout: active in training mode only; draws from the default generator.
#pragma once

#include <fmt/format.h>

#include <stdexcept>

#include "autograd/functions.h"
#include "nn/module.h"

namespace zt::nn {

class Dropout final : public Module {
 public:
  explicit Dropout(double p = 0.5) : p_(p) {
    if (!(p >= 0.0 && p < 1.0)) {
      throw std::invalid_argument(fmt::format("Dropout: p must be in [0, 1), got {}", p));
    }
  }
  std::string type_name() const override { return "Dropout"; }
  std::string extra_repr() const override { return fmt::format("p={}", p_); }

 protected:
  Tensor forward(const Tensor& input) override { return dropout(input, p_, is_training()); }

 private:
  double p_;
};

}  // namespace zt::nn
