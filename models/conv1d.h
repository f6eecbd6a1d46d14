// GPT-2's Conv1D: a linear layer whose weight is stored [in, out] (y = x W + b), the layout of
// Hugging Face's GPT-2 files, so that the model's state dict and those files agree without a
// transpose. The product runs as linear(x, W^T, b) on a transposed view (no copy).
#pragma once

#include "nn/module.h"

namespace zt::models {

class Conv1D final : public nn::Module {
 public:
  // weight N(0, init_std), bias zeros, as GPT-2 initialises its projections.
  Conv1D(int64_t in_features, int64_t out_features, bool bias, double init_std);
  std::string type_name() const override { return "Conv1D"; }
  std::string extra_repr() const override;
  Tensor weight;  // [in, out]
  Tensor bias;    // [out]; undefined without bias

 protected:
  Tensor forward(const Tensor& input) override;

 private:
  int64_t in_features_, out_features_;
};

}  // namespace zt::models
