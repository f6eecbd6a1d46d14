// The optimizer and learning-rate schedule a Config names, built from optim/. The ZeRO engine
// uses the same optimizers, over the owned slices of its partition, so plain and partitioned
// training update with the same rule and the same numbers.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dist/config.h"
#include "optim/adam.h"
#include "optim/lr_schedules.h"
#include "optim/optimizer.h"
#include "optim/sgd.h"

namespace zt::dist {

// The optimizers' options. Each requires the matching optimizer type and throws
// std::invalid_argument otherwise.
optim::AdamOptions adam_options(const OptimizerConfig& config);
optim::SgdOptions sgd_options(const OptimizerConfig& config);

// Adam (for "Adam" and "AdamW"; name() says which decay it applies) or Sgd. Every group's lr
// and weight_decay are set to the config's, as DeepSpeed builds its optimizer from
// optimizer.params. Throws std::invalid_argument when the config has no optimizer.
std::unique_ptr<optim::Optimizer> make_optimizer(const OptimizerConfig& config,
                                                 std::vector<optim::ParamGroup> groups);

// The configured schedule over `optimizer`, or null when the config has none (as
// deepspeed.initialize returns no lr_scheduler). Construction writes the schedule's current lr
// into the optimizer; WarmupCosineLR scales the optimizer's lr at this moment, so build the
// schedule right after the optimizer. A last_batch_iteration >= 0 resumes at that iteration.
std::unique_ptr<optim::LRSchedule> make_schedule(const SchedulerConfig& config,
                                                 optim::Optimizer& optimizer);

// deepspeed.initialize's optimizer and lr_scheduler arguments: the program's own optimizer and
// schedule. The engine builds its optimizer over the slices it owns (as DeepSpeed's ZeRO points
// a client optimizer at its flat partitions), so they are given by type and hyperparameters.
struct ClientOptimizer {
  std::optional<OptimizerConfig> optimizer;
  std::optional<SchedulerConfig> lr_scheduler;
};

// A program's optimizer by its torch.optim name: "adam" (torch.optim.Adam: weight decay added
// to the gradient), "adamw" (decoupled decay) or "sgd" (no momentum), with PyTorch's defaults
// otherwise. Throws std::invalid_argument naming the name.
OptimizerConfig client_optimizer(const std::string& name, double lr, double weight_decay);

// DeepSpeed's rule for the program's optimizer and schedule: one the program passes is used,
// and the config's block, if any, is then ignored (a note says so); a config without an
// optimizer block needs one from the program (std::invalid_argument naming the file otherwise).
// Notes are appended to `notes` (null: none kept).
Config with_client_optimizer(Config config, const ClientOptimizer& client,
                             std::vector<std::string>* notes);

}  // namespace zt::dist
