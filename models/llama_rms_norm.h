// Llama's RMSNorm under Hugging Face's name (weight, ones): x / sqrt(mean(x^2) + eps) * weight
// over the last dim, through the fused rms_norm op.
#pragma once

#include <fmt/format.h>

#include "autograd/functions.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "nn/module.h"

namespace zt::models {

class LlamaRMSNorm final : public nn::Module {
 public:
  LlamaRMSNorm(int64_t hidden_size, double eps) : hidden_size_(hidden_size), eps_(eps) {
    MemoryTagGuard as_param(MemoryTag::param);
    weight = register_parameter("weight", ones({hidden_size}));
  }
  std::string type_name() const override { return "LlamaRMSNorm"; }
  std::string extra_repr() const override { return fmt::format("{}, eps={}", hidden_size_, eps_); }
  Tensor weight;

 protected:
  Tensor forward(const Tensor& x) override { return rms_norm(x, {hidden_size_}, weight, eps_); }

 private:
  int64_t hidden_size_;
  double eps_;
};

}  // namespace zt::models
