// The reader of ds_config.json's sparse_attention block, with DeepSpeed's keys and defaults
// (core/sparse_layout.h holds the config and builds the layouts). A key of the block that the
// chosen mode does not read gets a warning naming it (DeepSpeed ignores it silently). Internal
// to dist/config*.cpp.
#pragma once

#include <optional>

#include "core/sparse_layout.h"
#include "dist/config_section.h"

namespace zt::dist::config_reading {

// Empty when the block is absent; ConfigError for a bad value or a rule DeepSpeed enforces.
void read_sparse_attention(Section& top, std::optional<SparsityConfig>& sparse,
                           const ParseContext& context);

}  // namespace zt::dist::config_reading
