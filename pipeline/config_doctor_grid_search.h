// The config doctor's budget search over grid layouts of the GPT: for a world size, every
// (pipeline, tensor, data) grid the model can be cut into, each stage's rank predicted
// (pipeline/config_doctor_grid.h), and the cheapest that fits a per-rank device budget.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "comm/process_grid.h"
#include "dist/config.h"
#include "models/gpt_config.h"

namespace zt::pipeline {

struct GridChoice {
  comm::GridShape grid;
  int64_t device_bytes = -1;  // the most any stage's rank needs, the reserve included; -1:
                              // its activations are not predicted
  double bytes_per_step = 0;  // the most any stage's rank sends a step, every axis together
  std::string ruled_out;      // why it does not fit ("" when it does)
};

struct GridSearch {
  std::vector<GridChoice> considered;  // cheapest first: least sent a step, then least memory
  std::optional<GridChoice> suggestion;
};

// Grids of `world_size` ranks: tensor sizes dividing the heads, the key and value heads, the
// width, the MLP width and the vocabulary (1 for Llama, whose tensor-parallel layers are built
// elsewhere); pipeline sizes up to the layer count that the schedule accepts; data the rest.
// `config` is kept otherwise (its ZeRO stage, micro-batches, schedule).
GridSearch search_grids(const models::GPTConfig& model, const dist::Config& config, int world_size,
                        int64_t budget_bytes, int64_t reserve_bytes);

// What gpt_train --explain-config prints for the search.
std::string explain_grid_search(const GridSearch& search, int64_t budget_bytes,
                                int64_t reserve_bytes);

}  // namespace zt::pipeline
