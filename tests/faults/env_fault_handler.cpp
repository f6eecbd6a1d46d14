// The fault handler of the crash tests (scripts/check-checkpoints), linked only into the
// fault-injecting build of the apps (build/fault-apps/). It installs itself before main and
// SIGKILLs the process, as a crashed node would, at a fault point (dist/fault_points.h) chosen
// by the environment, at a place that does not depend on timing:
//   ZEROTRAIN_CHECKPOINT_KILL_AT=POINT  rank 0 dies at checkpoint point POINT (after_model_file or
//                                       before_latest) of a save;
//   ZEROTRAIN_CHECKPOINT_KILL_AFTER_SAVES=K  ... of the first save after K saves (default 0);
//   ZEROTRAIN_TEST_KILL_RANK_AT_STEP=R:S  rank R dies at the end of optimizer step S.
#include <fmt/format.h>

#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "dist/fault_points.h"

namespace {

using zt::dist::FaultPoint;

[[noreturn]] void die_now() {
  std::fflush(stdout);
  std::fflush(stderr);
  std::raise(SIGKILL);
  std::abort();
}

int64_t saves_started = 0;

void kill_in_checkpoint_save(const FaultPoint& point) {
  if (point.name == "checkpoint_save_begin") ++saves_started;
  const char* requested = std::getenv("ZEROTRAIN_CHECKPOINT_KILL_AT");
  if (point.rank != 0 || requested == nullptr ||
      point.name != "checkpoint_" + std::string(requested)) {
    return;
  }
  const char* after_saves = std::getenv("ZEROTRAIN_CHECKPOINT_KILL_AFTER_SAVES");
  if (after_saves != nullptr && saves_started <= std::atoll(after_saves)) return;
  die_now();
}

void kill_rank_at_step(const FaultPoint& point) {
  const char* text = std::getenv("ZEROTRAIN_TEST_KILL_RANK_AT_STEP");
  if (text == nullptr || point.name != "train_step_end") return;
  int kill_rank = -1;
  int64_t kill_step = -1;
  const char* end = text + std::strlen(text);
  auto [after_rank, rank_error] = std::from_chars(text, end, kill_rank);
  bool valid = rank_error == std::errc() && after_rank != end && *after_rank == ':' &&
               std::from_chars(after_rank + 1, end, kill_step).ptr == end;
  if (!valid) {
    throw std::runtime_error(
        fmt::format("ZEROTRAIN_TEST_KILL_RANK_AT_STEP: expected RANK:STEP, got '{}'", text));
  }
  if (point.rank == kill_rank && point.step == kill_step) die_now();
}

void handle_fault_point(const FaultPoint& point) {
  kill_in_checkpoint_save(point);
  kill_rank_at_step(point);
}

[[maybe_unused]] const bool installed = [] {
  zt::dist::install_fault_handler(handle_fault_point);
  return true;
}();

}  // namespace
