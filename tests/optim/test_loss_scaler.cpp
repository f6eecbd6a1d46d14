// The loss scaler against the rules of DeepSpeed's fp16 block, written out step by step: the
// scale doubles after loss_scale_window clean steps, an overflow is absorbed by hysteresis
// before it halves the scale, consecutive_hysteresis restores it on every clean step, the scale
// never drops below min_loss_scale, and a static scale never moves.
#include <doctest/doctest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "optim/loss_scaler.h"

namespace zt::optim {
namespace {

// The scale after each update of `overflows` (1 = overflow).
std::vector<double> scales_after(LossScaler& scaler, const std::vector<int>& overflows) {
  std::vector<double> scales;
  for (int overflow : overflows) {
    scaler.update(overflow != 0);
    scales.push_back(scaler.scale());
  }
  return scales;
}

}  // namespace

TEST_CASE(
    "a dynamic scale starts at 2^initial_scale_power and doubles every window of clean steps") {
  LossScaler scaler({.initial_scale_power = 4, .scale_window = 3, .hysteresis = 1});
  CHECK(scaler.scale() == 16.0);
  CHECK(scales_after(scaler, {0, 0, 0, 0, 0, 0, 0}) ==
        std::vector<double>{16, 16, 32, 32, 32, 64, 64});
}

TEST_CASE("with hysteresis 1 every overflow halves the scale and restarts the window") {
  LossScaler scaler({.initial_scale_power = 4, .scale_window = 3, .hysteresis = 1});
  // The window counts from the last overflow: three clean steps after it, the scale doubles.
  CHECK(scales_after(scaler, {0, 1, 0, 0, 0, 1, 1, 0}) ==
        std::vector<double>{16, 8, 8, 8, 16, 8, 4, 4});
}

TEST_CASE("hysteresis absorbs overflows until it runs out; a window of clean steps restores it") {
  LossScaler scaler({.initial_scale_power = 10, .scale_window = 4, .hysteresis = 2});
  // Overflow 1 takes hysteresis to 1, overflow 2 (not consecutive) halves: without
  // consecutive_hysteresis a clean step in between does not restore it.
  CHECK(scales_after(scaler, {1, 0, 1}) == std::vector<double>{1024, 1024, 512});
  CHECK(scaler.state().hysteresis_left == 1);
  // Every further overflow halves until four clean steps double the scale and restore it.
  CHECK(scales_after(scaler, {1, 0, 0, 0, 0}) == std::vector<double>{256, 256, 256, 256, 512});
  CHECK(scaler.state().hysteresis_left == 2);
  CHECK(scales_after(scaler, {1}) == std::vector<double>{512});
}

TEST_CASE("consecutive_hysteresis restores the hysteresis on every clean step") {
  LossScaler scaler({.initial_scale_power = 10,
                     .scale_window = 100,
                     .hysteresis = 2,
                     .consecutive_hysteresis = true});
  // Only two overflows in a row halve the scale.
  CHECK(scales_after(scaler, {1, 0, 1, 0, 1, 1, 1}) ==
        std::vector<double>{1024, 1024, 1024, 1024, 1024, 512, 256});
}

TEST_CASE("the scale stops at min_loss_scale, and an overflow there is an error") {
  LossScaler scaler(
      {.initial_scale_power = 3, .scale_window = 1000, .hysteresis = 1, .min_scale = 2});
  CHECK(scales_after(scaler, {1, 1}) == std::vector<double>{4, 2});
  CHECK_THROWS_WITH_AS(scaler.update(true),
                       "fp16 loss scale: overflow with the scale already at min_loss_scale 2; "
                       "cannot lower it further",
                       std::runtime_error);
}

TEST_CASE("a static loss scale never changes and still reports skipped steps") {
  LossScaler scaler({.static_scale = 128, .scale_window = 1});
  CHECK_FALSE(scaler.dynamic());
  CHECK(scaler.update(true) == "OVERFLOW! Skipping step. Loss scale 128 (static)");
  CHECK(scales_after(scaler, {0, 0, 1, 0}) == std::vector<double>{128, 128, 128, 128});
}

TEST_CASE("overflow messages give the attempted scale and what replaces it") {
  LossScaler scaler({.initial_scale_power = 16, .hysteresis = 2});
  CHECK(scaler.update(false).empty());
  CHECK(scaler.update(true) ==
        "OVERFLOW! Skipping step. Attempted loss scale: 65536, but hysteresis is 2. Reducing "
        "hysteresis to 1");
  CHECK(scaler.update(true) ==
        "OVERFLOW! Skipping step. Attempted loss scale: 65536, reducing to 32768");
}

TEST_CASE("a scaler restored from its state continues exactly as the original") {
  LossScaler original({.initial_scale_power = 5, .scale_window = 3, .hysteresis = 2});
  std::vector<int> history = {1, 0, 1, 0, 0};
  scales_after(original, history);
  LossScaler restored({.initial_scale_power = 5, .scale_window = 3, .hysteresis = 2});
  restored.set_state(original.state());
  std::vector<int> future = {0, 1, 0, 0, 0, 1, 1};
  CHECK(scales_after(restored, future) == scales_after(original, future));
}

TEST_CASE("bad options are rejected with the values named") {
  CHECK_THROWS_AS(LossScaler({.scale_window = 0}), std::invalid_argument);
  CHECK_THROWS_AS(LossScaler({.hysteresis = 0}), std::invalid_argument);
  CHECK_THROWS_AS(LossScaler({.min_scale = 0}), std::invalid_argument);
}

}  // namespace zt::optim
