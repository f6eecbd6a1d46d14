// The reader of ds_config.json's compression_training block (dist/config_compression.cpp).
// Internal to dist/config*.cpp.
#pragma once

#include "dist/config_compression.h"
#include "dist/config_section.h"

namespace zt::dist::config_reading {

// Reads compression_training (absent: everything off) with DeepSpeed's defaults and rules.
void read_compression_training(Section& top, CompressionConfig& config);

}  // namespace zt::dist::config_reading
