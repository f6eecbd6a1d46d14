// The sparse_attention block as JSON text, for files that must remember how a model attends
// (gpt_train's model file and checkpoints): written with the keys its mode reads, read back by
// the ds_config.json reader itself, so a model file obeys the same keys, defaults and rules.
#pragma once

#include <string>

#include "core/sparse_layout.h"

namespace zt::dist {

// {"mode": ..., then every key `config.mode` reads}, one line; global_block_end_indices only
// when given.
std::string sparse_attention_json(const SparsityConfig& config);

// The block `text` holds. ConfigError naming `where` and the key for malformed JSON, a bad
// value, a key its mode does not read or any rule DeepSpeed enforces.
SparsityConfig parse_sparse_attention_json(const std::string& text, const std::string& where);

}  // namespace zt::dist
