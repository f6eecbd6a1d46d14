// OptimizerConfig / SchedulerConfig to optim/ objects: a one-to-one copy of fields, since the
// config's validation already matches what the optim/ constructors check.
#include "dist/config_builders.h"

#include <fmt/format.h>

#include <stdexcept>

#include "optim/lamb.h"

namespace zt::dist {
namespace {

void require_type(const OptimizerConfig& config, bool matches, const char* wanted) {
  if (!matches) {
    throw std::invalid_argument(
        fmt::format("{} hyperparameters asked of optimizer type \"{}\"", wanted, config.type));
  }
}

}  // namespace

optim::AdamOptions adam_options(const OptimizerConfig& config) {
  require_type(config, config.is_adam(), "Adam");
  return {.beta1 = config.betas[0],
          .beta2 = config.betas[1],
          .eps = config.eps,
          .decoupled_weight_decay = config.adam_w_mode,
          .bias_correction = config.bias_correction};
}

optim::SgdOptions sgd_options(const OptimizerConfig& config) {
  require_type(config, config.type == "SGD", "SGD");
  return {.momentum = config.momentum, .dampening = config.dampening, .nesterov = config.nesterov};
}

std::unique_ptr<optim::Optimizer> make_optimizer(const OptimizerConfig& config,
                                                 std::vector<optim::ParamGroup> groups) {
  if (!config.present) throw std::invalid_argument("make_optimizer: the config has no optimizer");
  for (optim::ParamGroup& group : groups) {
    group.lr = config.lr;
    group.weight_decay = config.weight_decay;
  }
  if (config.is_adam())
    return std::make_unique<optim::Adam>(std::move(groups), adam_options(config));
  if (config.is_lamb()) {
    return std::make_unique<optim::Lamb>(
        std::move(groups), optim::LambOptions{.beta1 = config.betas[0],
                                              .beta2 = config.betas[1],
                                              .eps = config.eps,
                                              .bias_correction = config.bias_correction,
                                              .eps_inside_sqrt = config.eps_inside_sqrt,
                                              .max_coeff = config.max_coeff,
                                              .min_coeff = config.min_coeff});
  }
  return std::make_unique<optim::Sgd>(std::move(groups), sgd_options(config));
}

OptimizerConfig client_optimizer(const std::string& name, double lr, double weight_decay) {
  OptimizerConfig optimizer;
  optimizer.present = true;
  optimizer.lr = lr;
  optimizer.weight_decay = weight_decay;
  if (name == "adam" || name == "adamw") {
    optimizer.type = name == "adam" ? "Adam" : "AdamW";
    optimizer.adam_w_mode = name == "adamw";
    optimizer.torch_adam = true;
  } else if (name == "sgd") {
    optimizer.type = "SGD";
  } else {
    throw std::invalid_argument(
        fmt::format("optimizer: expected one of adam, adamw, sgd, got '{}'", name));
  }
  return optimizer;
}

Config with_client_optimizer(Config config, const ClientOptimizer& client,
                             std::vector<std::string>* notes) {
  auto note = [&](std::string line) {
    if (notes != nullptr) notes->push_back(std::move(line));
  };
  if (client.optimizer) {
    if (config.optimizer.present) {
      note(
          fmt::format("{}: optimizer: the block is ignored; the program passes its own {} "
                      "(DeepSpeed uses a client optimizer over the config's)",
                      config.source_name, client.optimizer->type));
    }
    config.optimizer = *client.optimizer;
    config.optimizer.present = true;
  } else if (!config.optimizer.present) {
    throw std::invalid_argument(fmt::format(
        "{}: optimizer: the config has no optimizer block and the program passes no optimizer "
        "(give one of them)",
        config.source_name));
  }
  if (client.lr_scheduler) {
    if (config.scheduler.present) {
      note(
          fmt::format("{}: scheduler: the block is ignored; the program passes its own {} "
                      "(DeepSpeed uses a client schedule over the config's)",
                      config.source_name, client.lr_scheduler->type));
    }
    config.scheduler = *client.lr_scheduler;
    config.scheduler.present = true;
  }
  return config;
}

std::unique_ptr<optim::LRSchedule> make_schedule(const SchedulerConfig& config,
                                                 optim::Optimizer& optimizer) {
  if (!config.present) return nullptr;
  std::unique_ptr<optim::LRSchedule> schedule;
  if (config.type == "WarmupLR") {
    schedule = std::make_unique<optim::WarmupLR>(optimizer, config.warmup);
  } else if (config.type == "WarmupDecayLR") {
    schedule =
        std::make_unique<optim::WarmupDecayLR>(optimizer, config.warmup, config.total_num_steps);
  } else if (config.type == "WarmupCosineLR") {
    schedule = std::make_unique<optim::WarmupCosineLR>(optimizer, config.warmup_cosine);
  } else if (config.type == "OneCycle") {
    schedule = std::make_unique<optim::OneCycle>(optimizer, config.one_cycle);
  } else if (config.type == "LRRangeTest") {
    schedule = std::make_unique<optim::LRRangeTest>(optimizer, config.lr_range_test);
  } else {
    throw std::invalid_argument(fmt::format("make_schedule: unknown type \"{}\"", config.type));
  }
  if (config.last_batch_iteration >= 0) {
    schedule->set_last_batch_iteration(config.last_batch_iteration);
  }
  return schedule;
}

}  // namespace zt::dist
