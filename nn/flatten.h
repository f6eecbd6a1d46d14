// Flatten: merges dims start_dim..end_dim (by default all but the batch dim).
#pragma once

#include <fmt/format.h>

#include "nn/module.h"

namespace zt::nn {

class Flatten final : public Module {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1)
      : start_dim_(start_dim), end_dim_(end_dim) {}
  std::string type_name() const override { return "Flatten"; }
  std::string extra_repr() const override {
    return fmt::format("start_dim={}, end_dim={}", start_dim_, end_dim_);
  }

 protected:
  Tensor forward(const Tensor& input) override { return input.flatten(start_dim_, end_dim_); }

 private:
  int64_t start_dim_, end_dim_;
};

}  // namespace zt::nn
