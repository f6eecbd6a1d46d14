// The readers of ds_config.json's offload blocks (zero_optimization.offload_optimizer and
// offload_param, the deprecated cpu_offload booleans) and the top-level aio block, with
// DeepSpeed's names, defaults and rules (dist/config_offload_blocks.cpp). Internal to
// dist/config*.cpp.
#pragma once

#include "dist/config.h"
#include "dist/config_section.h"

namespace zt::dist::config_reading {

// Reads the offload keys of `zero` (its stage already read) and checks them against the stage.
void read_offload_blocks(Section& zero, ZeroConfig& config);
// The top-level aio block: how NVMe swapping submits its reads and writes.
void read_aio(Section& top, AioConfig& aio, const ParseContext& context);

}  // namespace zt::dist::config_reading
