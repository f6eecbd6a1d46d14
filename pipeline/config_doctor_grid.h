// The config doctor on (pipeline, tensor, data) grids of the GPT: for one rank, its stage's
// layers and its tensor shards as model states over the data axis (the ZeRO formulas of
// dist/config_doctor.h), its stage's activations replayed in its schedule's order, and the
// bytes it sends a step on each axis, all before anything is built.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "comm/communicator.h"
#include "comm/process_grid.h"
#include "dist/config.h"
#include "dist/config_doctor.h"
#include "models/gpt_config.h"

namespace zt::pipeline {

// One layer of the GPT as pipeline/gpt_layers.h lays it out, in elements on one tensor rank.
struct GridLayer {
  std::string type_name;   // "GPTEmbedding", "GPT2Block", "LayerNorm", "LMHead", ...
  int64_t split = 0;       // elements of the weights split over the tensor axis, per rank
  int64_t replicated = 0;  // elements every tensor rank holds whole
  bool tied_head = false;  // the head's copy of the tied embedding (one tensor on its stage)
  int64_t numel() const { return split + replicated; }
};
// The embedding, the blocks, the final norm and the head, each counted at `tensor` ranks.
std::vector<GridLayer> gpt_grid_layers(const models::GPTConfig& model, int tensor);

struct GridPrediction {
  comm::GridShape grid;
  comm::GridCoordinates at;
  std::vector<int> layers;      // this rank's layers (indices into gpt_grid_layers)
  int64_t in_flight = 0;        // micro-batches whose activations the stage holds at once
  dist::RankPrediction rank;    // model states over the data axis, activations, data bytes
  int64_t parameter_count = 0;  // this rank's Psi: its stage's layers, its shards
  std::vector<std::pair<comm::CollectiveKind, double>> tensor_traffic;    // payload per step
  std::vector<std::pair<comm::CollectiveKind, double>> pipeline_traffic;  // payload per step
  // The tied embedding's gradient sum between the stages holding its copies (a communicator
  // of their own, the engine's tied_communicator), once a step.
  std::vector<std::pair<comm::CollectiveKind, double>> tied_traffic;
};

// The prediction for the rank at `at` of `grid`. `config` is resolved against the data axis
// (world_size = grid.data, gradient_accumulation_steps the pipeline's micro-batches). ZeRO 0-2
// only (the pipeline engine refuses 3): std::invalid_argument otherwise. Activations are
// predicted for GPT-2 and Llama (Llama without a tensor axis), 1F1B or interleaved, with no
// dropout; with pipeline activation checkpoints only on 1F1B without a tensor axis, where a
// segment holds the final norm and the head together (else -1).
GridPrediction predict_grid_rank(const models::GPTConfig& model, const dist::Config& config,
                                 const comm::GridShape& grid, const comm::GridCoordinates& at);

// The table gpt_train --explain-config prints for a grid.
std::string explain_grid_prediction(const GridPrediction& prediction);

}  // namespace zt::pipeline
