// The compressed-communication optimizers over the owned slices (dist/zero/optimizer_shard.h).
// DeepSpeed runs OneBitAdam, ZeroOneAdam and OneBitLamb without ZeRO only (its engine asserts
// "1bit-Adam is not compatible with ZeRO"): each rank updates every element from a momentum
// that all ranks hold alike, which P_os would cut. So stage 0 only, here too.
#include <fmt/format.h>

#include <stdexcept>

#include "dist/config_builders.h"
#include "dist/zero/optimizer_shard.h"
#include "optim/onebit_adam.h"
#include "optim/onebit_lamb.h"
#include "optim/zero_one_adam.h"

namespace zt::dist {

std::unique_ptr<optim::Optimizer> OptimizerShard::make_shard_optimizer(
    std::vector<optim::ParamGroup> groups) {
  const OptimizerConfig& config = config_.optimizer;
  if (!config.is_compressed_communication()) return make_optimizer(config, std::move(groups));
  if (partitioning_.optimizer_states) {
    throw std::invalid_argument(fmt::format(
        "{}: optimizer.type: {} runs at zero_optimization.stage 0 only, as in DeepSpeed (its "
        "momentum is averaged whole on every rank, which partitioned optimizer states would "
        "cut), got stage {}",
        config_.source_name, config.type, config_.zero_optimization.stage));
  }
  for (optim::ParamGroup& group : groups) {
    group.lr = config.lr;
    group.weight_decay = config.weight_decay;
  }
  const optim::OneBitOptions base{.beta1 = config.betas[0],
                                  .beta2 = config.betas[1],
                                  .eps = config.eps,
                                  .freeze_step = config.freeze_step,
                                  .exact_average = config.zerotrain_exact_average};
  if (config.type == "OneBitAdam")
    return std::make_unique<optim::OneBitAdam>(std::move(groups), data_parallel_host_, base);
  if (config.type == "ZeroOneAdam") {
    return std::make_unique<optim::ZeroOneAdam>(
        std::move(groups), data_parallel_host_,
        optim::ZeroOneAdamOptions{.base = base,
                                  .var_freeze_step = config.var_freeze_step,
                                  .var_update_scaler = config.var_update_scaler,
                                  .local_step_scaler = config.local_step_scaler,
                                  .local_step_clipper = config.local_step_clipper});
  }
  return std::make_unique<optim::OneBitLamb>(
      std::move(groups), data_parallel_host_,
      optim::OneBitLambOptions{.base = base,
                               .max_coeff = config.max_coeff,
                               .min_coeff = config.min_coeff,
                               .coeff_beta = config.coeff_beta,
                               .factor_max = config.factor_max,
                               .factor_min = config.factor_min,
                               .factor_threshold = config.factor_threshold});
}

bool OptimizerShard::gradients_stay_local() const {
  const auto* compressed =
      dynamic_cast<const optim::CompressedCommunicationOptimizer*>(optimizer_.get());
  return compressed != nullptr && compressed->gradients_stay_local();
}

}  // namespace zt::dist
