// The reader of ds_config.json's observability blocks: trace (ZeroTrain's own), comms_logger,
// flops_profiler, csv_monitor, tensorboard and memory_breakdown, with DeepSpeed's names and
// defaults (dist/config_monitor_blocks.cpp). Internal to dist/config*.cpp.
#pragma once

#include "dist/config.h"
#include "dist/config_section.h"
#include "observe/observe_config.h"

namespace zt::dist::config_reading {

// Reads the blocks from the top-level section into `config`.
void read_monitor_blocks(Section& top, observe::ObserveConfig& config);

}  // namespace zt::dist::config_reading
