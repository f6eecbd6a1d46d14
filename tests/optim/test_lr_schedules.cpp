// Learning-rate schedules against DeepSpeed's formulas evaluated by hand at chosen iterations.
#include <doctest/doctest.h>

#include <cmath>
#include <numbers>

#include "core/factory.h"
#include "optim/lr_schedules.h"
#include "optim/sgd.h"

using namespace zt;
using namespace zt::optim;

namespace {
struct ScheduleFixture {
  Tensor weight = zeros({1});
  Sgd optimizer{single_group({weight}, 0.5), {.momentum = 0.9}};
};
}  // namespace

TEST_CASE("WarmupLR log warm-up is halfway at sqrt(N) and holds the max afterwards") {
  ScheduleFixture fixture;
  WarmupLR schedule(fixture.optimizer,
                    {.warmup_min_lr = 0.0, .warmup_max_lr = 0.01, .warmup_num_steps = 100});
  CHECK(fixture.optimizer.lr() == 0.0);                // before the first step: the minimum
  CHECK(schedule.lr_at(9) == doctest::Approx(0.005));  // ln(10)/ln(100)
  CHECK(schedule.lr_at(100) == doctest::Approx(0.01));
  for (int i = 0; i < 10; ++i) schedule.step();
  CHECK(schedule.last_batch_iteration() == 9);
  CHECK(fixture.optimizer.lr() == doctest::Approx(0.005));
}

TEST_CASE("WarmupLR linear warm-up is i/N and warmup_num_steps below 2 becomes 2") {
  ScheduleFixture fixture;
  WarmupLR linear(fixture.optimizer, {.warmup_min_lr = 0.1,
                                      .warmup_max_lr = 0.5,
                                      .warmup_num_steps = 10,
                                      .warmup_type = WarmupType::linear});
  CHECK(linear.lr_at(0) == doctest::Approx(0.1));
  CHECK(linear.lr_at(5) == doctest::Approx(0.3));
  WarmupLR tiny(fixture.optimizer,
                {.warmup_max_lr = 1.0, .warmup_num_steps = 1, .warmup_type = WarmupType::linear});
  CHECK(tiny.lr_at(1) == doctest::Approx(0.5));
  CHECK_THROWS_AS(parse_warmup_type("cosine"), std::invalid_argument);
}

TEST_CASE("WarmupDecayLR decays linearly to zero at total_num_steps") {
  ScheduleFixture fixture;
  WarmupDecayLR schedule(
      fixture.optimizer,
      {.warmup_max_lr = 0.02, .warmup_num_steps = 10, .warmup_type = WarmupType::linear}, 110);
  CHECK(schedule.lr_at(10) == doctest::Approx(0.02));
  CHECK(schedule.lr_at(60) == doctest::Approx(0.01));
  CHECK(schedule.lr_at(110) == 0.0);
  CHECK(schedule.lr_at(500) == 0.0);
  CHECK_THROWS_AS(WarmupDecayLR(fixture.optimizer, {.warmup_num_steps = 10}, 5),
                  std::invalid_argument);
}

TEST_CASE("WarmupCosineLR scales the optimizer lr: warm-up ratio then cosine to cos_min_ratio") {
  ScheduleFixture fixture;  // optimizer lr 0.5
  WarmupCosineLR schedule(fixture.optimizer, {.total_num_steps = 110,
                                              .warmup_min_ratio = 0.2,
                                              .warmup_num_steps = 10,
                                              .cos_min_ratio = 0.1,
                                              .warmup_type = WarmupType::linear});
  CHECK(schedule.lr_at(5) == doctest::Approx(0.5 * (0.2 + 0.8 * 0.5)));
  // Halfway through the decay: s = 50 of 100 steps, cos(pi/2) = 0, ratio = c + (1-c)/2.
  CHECK(schedule.lr_at(59) == doctest::Approx(0.5 * (0.1 + 0.9 * 0.5)));
  CHECK(schedule.lr_at(109) == doctest::Approx(0.5 * 0.1));
}

TEST_CASE("OneCycle peaks at the end of the first step size and returns to the min") {
  ScheduleFixture fixture;
  OneCycle schedule(fixture.optimizer, {.cycle_min_lr = 0.01,
                                        .cycle_max_lr = 0.1,
                                        .cycle_first_step_size = 10,
                                        .decay_step_size = 5,
                                        .decay_lr_rate = 0.5});
  CHECK(schedule.lr_at(9) == doctest::Approx(0.1));  // t = 10 = first step size
  CHECK(schedule.momentum_at(9) == doctest::Approx(0.8));
  CHECK(schedule.lr_at(4) == doctest::Approx(0.01 + 0.09 * 0.5));
  CHECK(schedule.lr_at(19) == doctest::Approx(0.01));  // end of the cycle
  CHECK(schedule.momentum_at(19) == doctest::Approx(0.9));
  CHECK(schedule.lr_at(29) == doctest::Approx(0.01 / (1 + 0.5 * 10.0 / 5.0)));
  for (int i = 0; i < 10; ++i) schedule.step();
  CHECK(fixture.optimizer.momentum() == doctest::Approx(0.8));
}

TEST_CASE("LRRangeTest grows linearly or in stairs") {
  ScheduleFixture fixture;
  LRRangeTest smooth(fixture.optimizer, {.lr_range_test_min_lr = 0.001,
                                         .lr_range_test_step_size = 10,
                                         .lr_range_test_step_rate = 2.0});
  CHECK(smooth.lr_at(4) == doctest::Approx(0.001 * (1 + 2.0 * 0.5)));
  LRRangeTest stairs(fixture.optimizer, {.lr_range_test_min_lr = 0.001,
                                         .lr_range_test_step_size = 10,
                                         .lr_range_test_step_rate = 2.0,
                                         .lr_range_test_staircase = true});
  CHECK(stairs.lr_at(4) == doctest::Approx(0.001));
  CHECK(stairs.lr_at(9) == doctest::Approx(0.003));
}

TEST_CASE("a schedule resumed at a saved iteration sets the same lr as one stepped there") {
  ScheduleFixture first, second;
  WarmupLR stepped(first.optimizer, {.warmup_max_lr = 0.1, .warmup_num_steps = 50});
  for (int i = 0; i < 17; ++i) stepped.step();
  WarmupLR resumed(second.optimizer, {.warmup_max_lr = 0.1, .warmup_num_steps = 50});
  resumed.set_last_batch_iteration(16);
  CHECK(first.optimizer.lr() == second.optimizer.lr());
}

TEST_CASE("a schedule sets each group's lr in proportion: base lr times the group's lr_scale") {
  Tensor weight = zeros({2}), bias = zeros({1});
  // Before any schedule the groups keep the rates they were given.
  Sgd optimizer({{{weight}, 0.5, 0.0}, {{bias}, 0.125, 0.0, 0.25}});
  CHECK(optimizer.lr() == 0.5);
  CHECK(optimizer.param_groups()[1].lr == 0.125);
  WarmupLR schedule(optimizer, {.warmup_min_lr = 0.1,
                                .warmup_max_lr = 0.5,
                                .warmup_num_steps = 10,
                                .warmup_type = WarmupType::linear});
  for (int i = 0; i < 5; ++i) schedule.step();
  CHECK(optimizer.lr() == doctest::Approx(0.26));  // 0.1 + 0.4 * 4 / 10
  CHECK(optimizer.param_groups()[0].lr == doctest::Approx(0.26));
  CHECK(optimizer.param_groups()[1].lr == doctest::Approx(0.065));
  CHECK_THROWS_WITH_AS(Sgd({{{weight}, 0.5, 0.0, -1.0}}), doctest::Contains("lr_scale -1"),
                       std::invalid_argument);
}
