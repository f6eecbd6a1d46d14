// SGD with momentum, dampening, Nesterov and L2 weight decay (PyTorch's semantics).
#pragma once

#include "optim/optimizer.h"
#include "optim/update_rules.h"

namespace zt::optim {

struct SgdOptions {
  double momentum = 0.0;
  double dampening = 0.0;
  bool nesterov = false;
};

class Sgd final : public Optimizer {
 public:
  Sgd(std::vector<ParamGroup> groups, SgdOptions options = {});
  void step() override;
  std::string name() const override { return "SGD"; }
  void set_momentum(double momentum) override { options_.momentum = momentum; }
  double momentum() const override { return options_.momentum; }
  // The momentum buffer of one parameter (undefined before its first step).
  const Tensor& momentum_buffer(size_t group, size_t index) const;
  ParamState param_state(size_t group, size_t index) const override;
  void set_param_state(size_t group, size_t index, const ParamState& state) override;

 private:
  SgdOptions options_;
  std::vector<std::vector<Tensor>> momentum_buffers_;  // [group][param]
};

}  // namespace zt::optim
