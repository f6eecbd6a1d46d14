// The schedule formulas, each a pure function of the iteration (DeepSpeed's lr_schedules).
#include "optim/lr_schedules.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>

namespace zt::optim {

void LRSchedule::step() {
  last_batch_iteration_ += 1;
  apply();
}

void LRSchedule::set_last_batch_iteration(int64_t iteration) {
  if (iteration < -1) {
    throw std::invalid_argument(
        fmt::format("{}: last_batch_iteration {} must be >= -1", name(), iteration));
  }
  last_batch_iteration_ = iteration;
  apply();
}

void LRSchedule::apply() {
  optimizer_.set_lr(lr_at(last_batch_iteration_));
  if (cycles_momentum()) optimizer_.set_momentum(momentum_at(last_batch_iteration_));
}

WarmupType parse_warmup_type(const std::string& text) {
  if (text == "log") return WarmupType::log;
  if (text == "linear") return WarmupType::linear;
  throw std::invalid_argument(
      fmt::format("warmup_type: expected \"log\" or \"linear\", got \"{}\"", text));
}

static double warmup_fraction(int64_t iteration, int64_t warmup_steps, WarmupType type) {
  if (iteration < 0) return 0.0;  // before the first step the schedule sits at its minimum
  if (type == WarmupType::log)
    return std::log(double(iteration + 1)) / std::log(double(warmup_steps));
  return double(iteration) / double(warmup_steps);
}

WarmupLR::WarmupLR(Optimizer& optimizer, WarmupLRParams params)
    : LRSchedule(optimizer), params_(params) {
  params_.warmup_num_steps = std::max<int64_t>(2, params_.warmup_num_steps);
  if (params_.warmup_min_lr < 0 || params_.warmup_max_lr < 0) {
    throw std::invalid_argument("WarmupLR: warmup_min_lr and warmup_max_lr must be >= 0");
  }
  apply();
}

double WarmupLR::gamma_at(int64_t iteration) const {
  if (iteration < params_.warmup_num_steps) {
    return warmup_fraction(iteration, params_.warmup_num_steps, params_.warmup_type);
  }
  return 1.0;
}

double WarmupLR::lr_at(int64_t iteration) const {
  return params_.warmup_min_lr +
         (params_.warmup_max_lr - params_.warmup_min_lr) * gamma_at(iteration);
}

WarmupDecayLR::WarmupDecayLR(Optimizer& optimizer, WarmupLRParams params, int64_t total_num_steps)
    : WarmupLR(optimizer, params), total_num_steps_(total_num_steps) {
  if (total_num_steps_ < params_.warmup_num_steps) {
    throw std::invalid_argument(
        fmt::format("WarmupDecayLR: total_num_steps {} must be >= warmup_num_steps {}",
                    total_num_steps_, params_.warmup_num_steps));
  }
  apply();
}

double WarmupDecayLR::gamma_at(int64_t iteration) const {
  if (iteration < params_.warmup_num_steps) return WarmupLR::gamma_at(iteration);
  double remaining = double(total_num_steps_ - iteration);
  double decay_steps = double(std::max<int64_t>(1, total_num_steps_ - params_.warmup_num_steps));
  return std::max(0.0, remaining / decay_steps);
}

WarmupCosineLR::WarmupCosineLR(Optimizer& optimizer, WarmupCosineLRParams params)
    : LRSchedule(optimizer), params_(params), base_lr_(optimizer.lr()) {
  if (params_.total_num_steps <= 0) {
    throw std::invalid_argument("WarmupCosineLR: total_num_steps is required and must be > 0");
  }
  params_.warmup_num_steps = std::max<int64_t>(2, params_.warmup_num_steps);
  if (params_.total_num_steps < params_.warmup_num_steps) {
    throw std::invalid_argument(
        fmt::format("WarmupCosineLR: total_num_steps {} must be >= warmup_num_steps {}",
                    params_.total_num_steps, params_.warmup_num_steps));
  }
  apply();
}

double WarmupCosineLR::ratio_at(int64_t iteration) const {
  if (iteration < params_.warmup_num_steps) {
    double gamma = warmup_fraction(iteration, params_.warmup_num_steps, params_.warmup_type);
    return params_.warmup_min_ratio + (1.0 - params_.warmup_min_ratio) * gamma;
  }
  double step_in_decay = double(iteration - params_.warmup_num_steps + 1);
  double decay_steps =
      double(std::max<int64_t>(1, params_.total_num_steps - params_.warmup_num_steps));
  double cosine = (1.0 + std::cos(std::numbers::pi * step_in_decay / decay_steps)) / 2.0;
  return std::max(0.0, params_.cos_min_ratio + (1.0 - params_.cos_min_ratio) * cosine);
}

double WarmupCosineLR::lr_at(int64_t iteration) const {
  return base_lr_ * ratio_at(iteration);
}

OneCycle::OneCycle(Optimizer& optimizer, OneCycleParams params)
    : LRSchedule(optimizer), params_(params) {
  if (params_.cycle_first_step_size <= 0) {
    throw std::invalid_argument("OneCycle: cycle_first_step_size must be > 0");
  }
  if (params_.cycle_second_step_size < 0)
    params_.cycle_second_step_size = params_.cycle_first_step_size;
  if (params_.cycle_min_lr < 0 || params_.cycle_max_lr < params_.cycle_min_lr) {
    throw std::invalid_argument(
        fmt::format("OneCycle: expected 0 <= cycle_min_lr <= cycle_max_lr, got {} and {}",
                    params_.cycle_min_lr, params_.cycle_max_lr));
  }
  total_cycle_size_ = params_.cycle_first_step_size + params_.cycle_second_step_size;
  apply();
}

double OneCycle::cycle_scale_at(int64_t iteration) const {
  double position = double(iteration + 1) / double(total_cycle_size_);
  double x = 1.0 + position - std::floor(1.0 + position);
  double rising_fraction = double(params_.cycle_first_step_size) / double(total_cycle_size_);
  return x <= rising_fraction ? x / rising_fraction : (x - 1.0) / (rising_fraction - 1.0);
}

double OneCycle::lr_at(int64_t iteration) const {
  if (iteration < total_cycle_size_) {
    return params_.cycle_min_lr +
           (params_.cycle_max_lr - params_.cycle_min_lr) * cycle_scale_at(iteration);
  }
  if (params_.decay_lr_rate == 0.0 || params_.decay_step_size == 0) return params_.cycle_min_lr;
  double decay_steps = double(iteration - total_cycle_size_ + 1);
  return params_.cycle_min_lr /
         (1.0 + params_.decay_lr_rate * decay_steps / double(params_.decay_step_size));
}

double OneCycle::momentum_at(int64_t iteration) const {
  if (iteration < total_cycle_size_) {
    return params_.cycle_max_mom -
           (params_.cycle_max_mom - params_.cycle_min_mom) * cycle_scale_at(iteration);
  }
  if (params_.decay_mom_rate == 0.0 || params_.decay_step_size == 0) return params_.cycle_max_mom;
  double decay_steps = double(iteration - total_cycle_size_ + 1);
  return params_.cycle_max_mom *
         (1.0 + params_.decay_mom_rate * decay_steps / double(params_.decay_step_size));
}

LRRangeTest::LRRangeTest(Optimizer& optimizer, LRRangeTestParams params)
    : LRSchedule(optimizer), params_(params) {
  if (params_.lr_range_test_step_size <= 0) {
    throw std::invalid_argument("LRRangeTest: lr_range_test_step_size must be > 0");
  }
  if (params_.lr_range_test_min_lr < 0) {
    throw std::invalid_argument("LRRangeTest: lr_range_test_min_lr must be >= 0");
  }
  apply();
}

double LRRangeTest::lr_at(int64_t iteration) const {
  double interval = double(iteration + 1) / double(params_.lr_range_test_step_size);
  if (params_.lr_range_test_staircase) interval = std::floor(interval);
  return params_.lr_range_test_min_lr * (1.0 + params_.lr_range_test_step_rate * interval);
}

}  // namespace zt::optim
