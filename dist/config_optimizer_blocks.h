// The readers of ds_config.json's optimizer and scheduler blocks
// (dist/config_optimizer_blocks.cpp), called by parse_config. Internal to dist/config*.cpp.
#pragma once

#include "dist/config.h"
#include "dist/config_section.h"

namespace zt::dist::config_reading {

// optimizer {"type", "params"}: the type matched case-insensitively, its params checked.
void read_optimizer(Section& top, OptimizerConfig& optimizer);
// scheduler {"type", "params"}: the params of the type, checked against DeepSpeed's rules.
void read_scheduler(Section& top, SchedulerConfig& scheduler);

}  // namespace zt::dist::config_reading
