// Learning-rate schedules with DeepSpeed's names, parameters and formulas: WarmupLR,
// WarmupDecayLR, WarmupCosineLR, OneCycle and LRRangeTest.
// State is one counter, last_batch_iteration: -1 before the first step(), then 0, 1, ...
// step() is called once per optimizer step; it advances the counter and writes the new
// learning rate (and, for OneCycle, the momentum) into the optimizer.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "optim/optimizer.h"

namespace zt::optim {

class LRSchedule {
 public:
  virtual ~LRSchedule() = default;
  virtual std::string name() const = 0;
  // The learning rate at iteration i (i >= -1); pure, so tests and resumption can query it.
  virtual double lr_at(int64_t iteration) const = 0;
  // The momentum (SGD momentum / Adam beta1) at iteration i, for schedules that cycle it.
  virtual bool cycles_momentum() const { return false; }
  virtual double momentum_at(int64_t /*iteration*/) const { return 0.0; }

  // Applies iteration last_batch_iteration() + 1 to the optimizer.
  void step();
  int64_t last_batch_iteration() const { return last_batch_iteration_; }
  // Resumes at a saved position and writes its values into the optimizer.
  void set_last_batch_iteration(int64_t iteration);
  double current_lr() const { return lr_at(last_batch_iteration_); }

 protected:
  explicit LRSchedule(Optimizer& optimizer) : optimizer_(optimizer) {}
  void apply();  // writes lr (and momentum) of the current iteration into the optimizer
  Optimizer& optimizer_;
  int64_t last_batch_iteration_ = -1;
};

enum class WarmupType { log, linear };
WarmupType parse_warmup_type(const std::string& text);  // "log" | "linear", else throws

struct WarmupLRParams {
  double warmup_min_lr = 0.0;
  double warmup_max_lr = 0.001;
  int64_t warmup_num_steps = 1000;  // raised to 2 when smaller, as DeepSpeed does
  WarmupType warmup_type = WarmupType::log;
};

// Warms up from warmup_min_lr to warmup_max_lr over warmup_num_steps, then holds.
class WarmupLR : public LRSchedule {
 public:
  WarmupLR(Optimizer& optimizer, WarmupLRParams params);
  std::string name() const override { return "WarmupLR"; }
  double lr_at(int64_t iteration) const override;

 protected:
  // The warm-up fraction gamma in [0, 1] at an iteration; 1 after warm-up.
  virtual double gamma_at(int64_t iteration) const;
  WarmupLRParams params_;
};

// WarmupLR, then a linear decay to 0 at total_num_steps.
class WarmupDecayLR final : public WarmupLR {
 public:
  WarmupDecayLR(Optimizer& optimizer, WarmupLRParams params, int64_t total_num_steps);
  std::string name() const override { return "WarmupDecayLR"; }

 protected:
  double gamma_at(int64_t iteration) const override;

 private:
  int64_t total_num_steps_;
};

struct WarmupCosineLRParams {
  int64_t total_num_steps = 0;  // required
  double warmup_min_ratio = 0.0;
  int64_t warmup_num_steps = 1000;
  double cos_min_ratio = 0.0001;
  WarmupType warmup_type = WarmupType::log;
};

// Scales the optimizer's initial learning rate: a warm-up of the ratio from warmup_min_ratio
// to 1, then a cosine decay to cos_min_ratio at total_num_steps.
class WarmupCosineLR final : public LRSchedule {
 public:
  WarmupCosineLR(Optimizer& optimizer, WarmupCosineLRParams params);
  std::string name() const override { return "WarmupCosineLR"; }
  double lr_at(int64_t iteration) const override;
  double ratio_at(int64_t iteration) const;

 private:
  WarmupCosineLRParams params_;
  double base_lr_;
};

struct OneCycleParams {
  double cycle_min_lr = 0.0;  // required
  double cycle_max_lr = 0.0;  // required
  int64_t cycle_first_step_size = 2000;
  int64_t cycle_second_step_size = -1;  // -1: same as the first
  int64_t decay_step_size = 0;
  double decay_lr_rate = 0.0;
  bool cycle_momentum = true;
  double cycle_min_mom = 0.8;
  double cycle_max_mom = 0.9;
  double decay_mom_rate = 0.0;
};

// One triangular cycle of the learning rate (and inversely of the momentum), then decay.
// Unlike DeepSpeed, which overwrites Adam's beta2 with 0.99 when it cycles momentum, only
// beta1 is cycled here: beta2 keeps its configured value.
class OneCycle final : public LRSchedule {
 public:
  OneCycle(Optimizer& optimizer, OneCycleParams params);
  std::string name() const override { return "OneCycle"; }
  double lr_at(int64_t iteration) const override;
  bool cycles_momentum() const override { return params_.cycle_momentum; }
  double momentum_at(int64_t iteration) const override;

 private:
  double cycle_scale_at(int64_t iteration) const;  // the triangle's height in [0, 1]
  OneCycleParams params_;
  int64_t total_cycle_size_;
};

struct LRRangeTestParams {
  double lr_range_test_min_lr = 0.001;
  int64_t lr_range_test_step_size = 2000;
  double lr_range_test_step_rate = 1.0;
  bool lr_range_test_staircase = false;
};

// Grows the learning rate linearly (or in stairs) from its minimum, to find a good range.
class LRRangeTest final : public LRSchedule {
 public:
  LRRangeTest(Optimizer& optimizer, LRRangeTestParams params);
  std::string name() const override { return "LRRangeTest"; }
  double lr_at(int64_t iteration) const override;

 private:
  LRRangeTestParams params_;
};

}  // namespace zt::optim
