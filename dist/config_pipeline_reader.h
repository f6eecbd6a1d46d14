// The reader of ds_config.json's pipeline block (dist/config_pipeline.h). Internal to
// dist/config*.cpp.
#pragma once

#include "dist/config_pipeline.h"
#include "dist/config_section.h"

namespace zt::dist::config_reading {

// Absent block: defaults. Problems are recorded with the block's key paths.
void read_pipeline(Section& top, PipelineConfig& pipeline);

}  // namespace zt::dist::config_reading
