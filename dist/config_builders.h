// The optimizer and learning-rate schedule a Config names, built from optim/. The ZeRO engine
// uses the same optimizers, over the owned slices of its partition, so plain and partitioned
// training update with the same rule and the same numbers.
#pragma once

#include <memory>
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

}  // namespace zt::dist
