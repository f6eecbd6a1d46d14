// Block-sparse attention layouts with DeepSpeed's modes, keys and defaults: a layout is a
// [heads, T/block, T/block] table of active blocks, a pure function of (config, heads, T,
// seed), so every rank and every step builds the same one. The random blocks of variable and
// bigbird draw from Philox counters of the given seed, never from a global state.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace zt {

enum class SparsityMode { dense, fixed, variable, bigbird, bslongformer };

// "dense", "fixed", ...; parse_sparsity_mode throws std::invalid_argument naming the choices.
std::string sparsity_mode_name(SparsityMode mode);
SparsityMode parse_sparsity_mode(const std::string& name);

// The sparse_attention block of ds_config.json. Each mode reads only some of these (the keys
// of its DeepSpeed class); the others keep their defaults and are ignored.
struct SparsityConfig {
  SparsityMode mode = SparsityMode::fixed;
  int64_t block = 16;
  bool different_layout_per_head = false;
  bool unidirectional = false;  // "attention": "unidirectional" (causal) or "bidirectional"
  // fixed
  int64_t num_local_blocks = 4;
  int64_t num_global_blocks = 1;             // fixed and bigbird
  bool horizontal_global_attention = false;  // fixed and variable, bidirectional only
  int64_t num_different_global_patterns = 1;
  // variable and bigbird. DeepSpeed's config reader defaults it to 0 for both; its BigBird
  // class alone would default to 1. The config reader is what users meet, so 0.
  int64_t num_random_blocks = 0;
  // variable
  std::vector<int64_t> local_window_blocks{4};
  // variable and bslongformer; an empty end list means "not given" (one block per index)
  std::vector<int64_t> global_block_indices{0};
  std::vector<int64_t> global_block_end_indices;
  // bigbird and bslongformer
  int64_t num_sliding_window_blocks = 3;

  // The checks DeepSpeed's classes make at construction, as std::invalid_argument naming the
  // key ("sparse_attention.num_local_blocks: ...").
  void validate() const;
};

// The keys of the sparse_attention block that `mode` reads (besides "mode").
const std::vector<std::string>& sparsity_keys_of(SparsityMode mode);

struct SparseLayout {
  int64_t heads = 0, blocks = 0, block = 0;
  std::vector<uint8_t> active;  // [heads, blocks, blocks], 1 where the block is attended

  bool at(int64_t head, int64_t row, int64_t col) const {
    return active[size_t((head * blocks + row) * blocks + col)] != 0;
  }
  int64_t active_blocks() const;
  double density() const;  // active blocks over heads * blocks^2
};

// The layout for `heads` heads and sequence length `seq_len`. Throws std::invalid_argument
// when seq_len is not a positive multiple of config.block or the layout's own checks fail
// (more random, sliding or global blocks than a row has).
SparseLayout make_sparse_layout(const SparsityConfig& config, int64_t heads, int64_t seq_len,
                                uint64_t seed = 0);

}  // namespace zt
