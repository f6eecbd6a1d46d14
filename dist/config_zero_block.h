// The reader of ds_config.json's zero_optimization block (dist/config_zero_block.cpp), called by
// parse_config. Internal to dist/config*.cpp.
#pragma once

#include "dist/config.h"
#include "dist/config_section.h"

namespace zt::dist::config_reading {

// zero_optimization: the stage, buckets, the ZeRO-3 keys under both of DeepSpeed's spellings,
// the offload blocks, and the keys that are performance-only here.
void read_zero(Section& top, ZeroConfig& zero, const ParseContext& context);

}  // namespace zt::dist::config_reading
