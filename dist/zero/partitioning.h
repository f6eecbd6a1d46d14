// ZeRO's three partitions as switches, derived from the stage number in this one place: every
// piece of the engine decides against these, never against the number. P_os: optimizer state
// (and fp32 master weights) exists only for the owned slice; P_g: gradients too; P_p: parameters
// too. Each stage adds one switch to the one before, so P_p implies P_g implies P_os.
#pragma once

#include <stdexcept>
#include <string>

namespace zt::dist {

struct ZeroPartitioning {
  bool optimizer_states = false;  // P_os (stage >= 1)
  bool gradients = false;         // P_g  (stage >= 2)
  bool parameters = false;        // P_p  (stage 3)

  static ZeroPartitioning for_stage(int stage) {
    if (stage < 0 || stage > 3) {
      throw std::invalid_argument("ZeRO stage: expected 0..3, got " + std::to_string(stage));
    }
    return {.optimizer_states = stage >= 1, .gradients = stage >= 2, .parameters = stage >= 3};
  }
};

}  // namespace zt::dist
