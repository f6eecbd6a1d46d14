// See pipeline/config_doctor_grid.h. The layers are counted from the GPT's sizes (the split of
// tensor_parallel/gpt2_tensor_parallel.h), cut into stages by the engine's own partition, and
// the stage's activations replayed through the engine's own instruction list.
#include "pipeline/config_doctor_grid.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "dist/config_doctor_gpt.h"
#include "dist/zero/partitioning.h"
#include "pipeline/partition.h"
#include "pipeline/partitioned_transfer.h"
#include "pipeline/schedule.h"

namespace zt::pipeline {

std::vector<GridLayer> gpt_grid_layers(const models::GPTConfig& model, int tensor) {
  const int64_t C = model.n_embd, V = model.vocab_size, F = model.resolved_intermediate_size();
  const int64_t tp = tensor;
  std::vector<GridLayer> layers;
  const bool llama = model.architecture == models::Architecture::llama;
  if (llama) {
    // No position table; RMSNorms of one weight; no linear biases; grouped keys and values.
    const int64_t kv = model.resolved_n_kv_head() * (C / model.n_head);
    layers.push_back({.type_name = "LlamaEmbedding", .split = V / tp * C});
    for (int64_t i = 0; i < model.n_layer; ++i)
      layers.push_back({.type_name = "LlamaDecoderLayer",
                        .split = (2 * C * C + 2 * kv * C + 3 * C * F) / tp,
                        .replicated = 2 * C});
    layers.push_back({.type_name = "RMSNorm", .replicated = C});
  } else {
    const int64_t bias = model.bias ? 1 : 0;
    layers.push_back({.type_name = "GPTEmbedding",
                      .split = V / tp * C,
                      .replicated = int64_t(model.block_size) * C});
    // Column-parallel c_attn and c_fc split weight and bias; row-parallel c_proj's split
    // their weight's rows and keep the bias whole; the norms are replicated.
    for (int64_t i = 0; i < model.n_layer; ++i)
      layers.push_back({.type_name = "GPT2Block",
                        .split = (3 * C * C + 3 * C * bias + C * C + C * F + F * bias + F * C) / tp,
                        .replicated = 4 * C + 2 * C * bias});
    layers.push_back({.type_name = "LayerNorm", .replicated = 2 * C});
  }
  layers.push_back(
      {.type_name = "LMHead", .split = V / tp * C, .tied_head = model.tie_word_embeddings});
  return layers;
}

namespace {

using Traffic = std::vector<std::pair<comm::CollectiveKind, double>>;

// The most micro-batches between their forward and their backward on `stage`, by its schedule.
int64_t most_in_flight(const ScheduleShape& shape, int stage) {
  int64_t live = 0, most = 0;
  for (const Instruction& instruction : compute_order(shape, stage)) {
    live += instruction.kind == InstructionKind::forward_pass ? 1 : -1;
    most = std::max(most, live);
  }
  return most;
}

// The stage's activation peak: each chunk's passes, and each gradient buffer from its posting
// to its backward, in the engine's order (activations reach a stage outside the passes' tag).
// The engine posts a gradient's receive right after the forward whose output it belongs to:
// the buffer (1/parts of the hidden states with grad_partitioned) is held from then; on its
// arrival the slice gives way to the gathered whole.
int64_t stage_activation_peak(const models::GPTConfig& model,
                              const std::vector<dist::GptStagePart>& parts,
                              const ScheduleShape& shape, int stage, int64_t micro_batch,
                              int64_t element_bytes, int64_t checkpoint_interval, int grad_parts) {
  dist::GptStageReplay replay(dist::gpt_activation_shape(model), parts, micro_batch, element_bytes,
                              checkpoint_interval);
  const int64_t hidden = replay.hidden_bytes();
  const int64_t slice = partition_numel(hidden / element_bytes, grad_parts) * element_bytes;
  for (const Instruction& instruction : train_schedule(shape, stage)) {
    const bool head = parts[size_t(instruction.chunk)].head;
    if (instruction.kind == InstructionKind::forward_pass) {
      replay.forward(instruction.chunk);
      if (!head) replay.hold(slice);
    }
    if (instruction.kind == InstructionKind::recv_grad && grad_parts > 1) {
      replay.hold(hidden);
      replay.release(slice);
    }
    if (instruction.kind == InstructionKind::backward_pass) {
      replay.backward(instruction.chunk);
      // The received gradient goes; the chunk's output does not: its send to the next stage
      // holds it (a view of it, partitioned) until the batch's sends are waited on, at its end.
      if (!head) replay.release(hidden);
      if (!head) replay.hold(hidden);
    }
  }
  return replay.peak();
}

// Each chunk's part of the layer list (0 the embedding, 1..L the blocks, then the final norm
// and the head), or none when a chunk or an activation checkpoint of `interval` layers splits
// the final norm from the head (the replay takes them together).
std::vector<dist::GptStagePart> stage_parts(const models::GPTConfig& model,
                                            const std::vector<int>& bounds,
                                            const ScheduleShape& shape, int stage, int tensor,
                                            int64_t interval) {
  const int64_t L = model.n_layer, norm = L + 1, head = L + 2;
  std::vector<dist::GptStagePart> parts;
  bool embedding_here = false, head_here = false;
  for (int chunk = 0; chunk < shape.chunks; ++chunk) {
    const int virtual_stage = virtual_stage_of(shape, stage, chunk);
    const int64_t first = bounds[size_t(virtual_stage)];
    const int64_t last = bounds[size_t(virtual_stage) + 1] - 1;
    if ((first <= norm && norm <= last) != (first <= head && head <= last)) return {};
    if (interval > 0 && last == head && (norm - first) / interval != (head - first) / interval)
      return {};
    parts.push_back({.first_block = std::min(std::max<int64_t>(first - 1, 0), L),
                     .end_block = std::min(last, L),
                     .embedding = first == 0,
                     .head = last == head,
                     .tensor = tensor});
    embedding_here = embedding_here || first == 0;
    head_here = head_here || last == head;
  }
  for (dist::GptStagePart& part : parts)
    part.tied_here =
        part.head && embedding_here && head_here && tensor == 1 && model.tie_word_embeddings;
  return parts;
}

// The tensor axis per micro-batch (tensor_parallel/gpt2_tensor_parallel.h): two all-reduces of
// the hidden states per block forward and two backward, one forward for the vocabulary-parallel
// embedding, one backward for the head, and three of one f32 per row for the vocabulary-
// parallel loss. With activation checkpoints every layer's forward runs again in backward
// (the loss is outside the layers): two more per block, one more for the embedding.
Traffic tensor_traffic(const std::vector<GridLayer>& all, const std::vector<int>& mine, int tensor,
                       int64_t micro_batches, int64_t hidden_bytes, int64_t rows,
                       bool checkpointed) {
  if (tensor == 1) return {};
  int64_t hidden_reduces = 0, row_reduces = 0;
  for (int index : mine) {
    const std::string& type = all[size_t(index)].type_name;
    if (type == "GPT2Block") hidden_reduces += checkpointed ? 6 : 4;
    if (type == "GPTEmbedding") hidden_reduces += checkpointed ? 2 : 1;
    if (type == "LMHead") {
      hidden_reduces += 1;
      row_reduces += 3;
    }
  }
  auto ring = [&](int64_t bytes) {
    return double(comm::ring_payload_bytes(comm::CollectiveKind::all_reduce, bytes, tensor));
  };
  return {{comm::CollectiveKind::all_reduce,
           double(micro_batches) * (double(hidden_reduces) * ring(hidden_bytes) +
                                    double(row_reduces) * ring(rows * 4))}};
}

// The pipeline axis: per micro-batch and model chunk one activation forward (unless the chunk
// is the last virtual stage) and one gradient back (unless it is the first), each [rows, C]; with
// pipe_partitioned / grad_partitioned and a tensor axis, each tensor rank's 1/tp slice of it
// (pipeline/partitioned_transfer.h, the last slice padded).
struct BoundaryCounts {
  int64_t activations = 0, gradients = 0;  // sent (= received) per micro-batch
};

BoundaryCounts boundary_counts(const ScheduleShape& shape, int stage) {
  BoundaryCounts counts;
  for (int chunk = 0; chunk < shape.chunks; ++chunk) {
    const int virtual_stage = virtual_stage_of(shape, stage, chunk);
    counts.activations += virtual_stage == shape.virtual_stages() - 1 ? 0 : 1;
    counts.gradients += virtual_stage == 0 ? 0 : 1;
  }
  return counts;
}

int64_t slice_bytes(int64_t hidden_elements, int64_t element_bytes, int parts) {
  return partition_numel(hidden_elements, parts) * element_bytes;
}

Traffic pipeline_traffic(const ScheduleShape& shape, int stage, int64_t hidden_elements,
                         int64_t element_bytes, int activation_parts, int grad_parts) {
  if (shape.stages == 1) return {};
  const BoundaryCounts counts = boundary_counts(shape, stage);
  const double bytes =
      double(counts.activations * slice_bytes(hidden_elements, element_bytes, activation_parts) +
             counts.gradients * slice_bytes(hidden_elements, element_bytes, grad_parts));
  return {{comm::CollectiveKind::send, double(shape.micro_batches) * bytes}};
}

// The tensor axis's share of partitioned transfers: the receivers all-gather the slices, one
// all-gather per activation received (the chunk is not the first virtual stage) and per
// gradient received (not the last); the receives mirror the previous and next stages' sends.
Traffic partitioned_gathers(const ScheduleShape& shape, int stage, int64_t hidden_elements,
                            int64_t element_bytes, int activation_parts, int grad_parts) {
  if (shape.stages == 1) return {};
  // A stage receives an activation where it sends a gradient back, and the reverse.
  const BoundaryCounts sent = boundary_counts(shape, stage);
  const int64_t activation_receives = sent.gradients, gradient_receives = sent.activations;
  auto gather = [&](int parts) {
    return double(comm::ring_payload_bytes(
        comm::CollectiveKind::all_gather,
        slice_bytes(hidden_elements, element_bytes, parts) * parts, parts));
  };
  const double bytes =
      double(activation_parts > 1 ? activation_receives : 0) * gather(activation_parts) +
      double(grad_parts > 1 ? gradient_receives : 0) * gather(grad_parts);
  if (bytes == 0.0) return {};
  return {{comm::CollectiveKind::all_gather, double(shape.micro_batches) * bytes}};
}

// The tied embedding's copies (the embedding's weight and the head's, [V/tp, C] in the
// model's dtype) summed once a batch over the stages that hold either: none when one stage
// holds both, or when this stage holds neither.
Traffic tied_traffic(const models::GPTConfig& model, const std::vector<int>& bounds,
                     const ScheduleShape& shape, int stage, int tensor, int64_t element_bytes) {
  if (!model.tie_word_embeddings) return {};
  const int head = bounds.back() - 1;  // the embedding is layer 0, the head the last
  auto stage_of = [&](int layer) {
    for (int virtual_stage = 0; virtual_stage < shape.virtual_stages(); ++virtual_stage)
      if (layer >= bounds[size_t(virtual_stage)] && layer < bounds[size_t(virtual_stage) + 1])
        return virtual_stage % shape.stages;
    return -1;
  };
  const int first = stage_of(0), last = stage_of(head);
  if (first == last || (stage != first && stage != last)) return {};
  const int64_t bytes = model.vocab_size / tensor * model.n_embd * element_bytes;
  return {{comm::CollectiveKind::all_reduce,
           double(comm::ring_payload_bytes(comm::CollectiveKind::all_reduce, bytes, 2))}};
}

}  // namespace

GridPrediction predict_grid_rank(const models::GPTConfig& model, const dist::Config& config,
                                 const comm::GridShape& grid, const comm::GridCoordinates& at) {
  if (config.zero_optimization.stage > 2)
    throw std::invalid_argument(
        fmt::format("{}: zero_optimization.stage: {}: pipeline stages run ZeRO 0, 1 or 2",
                    config.source_name, config.zero_optimization.stage));
  GridPrediction prediction{.grid = grid, .at = at};
  const ScheduleShape shape{.stages = grid.pipeline,
                            .micro_batches = int(config.gradient_accumulation_steps),
                            .chunks = int(config.pipeline.virtual_stages)};
  shape.validate();
  const std::vector<GridLayer> all = gpt_grid_layers(model, grid.tensor);
  std::vector<int64_t> counts;
  std::vector<std::string> types;
  for (const GridLayer& layer : all) {
    counts.push_back(config.pipeline.partition_method == "parameters" ? layer.numel() : 0);
    types.push_back(layer.type_name);
  }
  const std::vector<int> bounds =
      partition_layers(config.pipeline.partition_method, counts, types, shape.virtual_stages());
  bool has_embedding = false;
  for (int chunk = 0; chunk < shape.chunks; ++chunk) {
    const int virtual_stage = virtual_stage_of(shape, at.pipeline, chunk);
    for (int index = bounds[size_t(virtual_stage)]; index < bounds[size_t(virtual_stage) + 1];
         ++index) {
      prediction.layers.push_back(index);
      const GridLayer& layer = all[size_t(index)];
      has_embedding = has_embedding || index == 0;
      // A tied head on the embedding's stage is the embedding's own weight, counted once; a
      // tensor-parallel head holds a copy of the shard even there.
      if (!(layer.tied_head && has_embedding && grid.tensor == 1))
        prediction.parameter_count += layer.numel();
    }
  }
  // The stage's ZeRO engine: one reduction a batch (its accumulation is the pipeline's).
  dist::Config stage_config = config;
  stage_config.train_micro_batch_size_per_gpu *= config.gradient_accumulation_steps;
  stage_config.gradient_accumulation_steps = 1;
  const dist::ModelShape stage_shape{.parameter_count = prediction.parameter_count};
  prediction.rank = dist::predict_rank(stage_shape, stage_config, grid.data);
  const int64_t e = prediction.rank.element_bytes;
  const int64_t micro_batch = config.train_micro_batch_size_per_gpu;
  const int64_t rows = micro_batch * model.block_size, hidden_bytes = rows * model.n_embd * e;
  const bool checkpointed = config.pipeline.activation_checkpoint_interval > 0;
  prediction.in_flight = most_in_flight(shape, at.pipeline);
  // Llama's layers are not split over a tensor axis here (its tensor-parallel layers are
  // built elsewhere); the checkpoints' re-runs are replayed with one model chunk a stage
  // (interleaved, the replay is 5% under the last stage's measured peak: docs/config_doctor.md).
  const bool llama = model.architecture == models::Architecture::llama;
  const int64_t interval = config.pipeline.activation_checkpoint_interval;
  if (model.dropout == 0.0 && !model.sparse_attention && !(llama && grid.tensor > 1) &&
      !(checkpointed && shape.chunks > 1)) {
    const std::vector<dist::GptStagePart> parts =
        stage_parts(model, bounds, shape, at.pipeline, grid.tensor, interval);
    if (!parts.empty())
      prediction.rank.activation_bytes =
          stage_activation_peak(model, parts, shape, at.pipeline, micro_batch, e, interval,
                                config.pipeline.grad_partitioned ? grid.tensor : 1);
  }
  prediction.tensor_traffic = tensor_traffic(all, prediction.layers, grid.tensor,
                                             shape.micro_batches, hidden_bytes, rows, checkpointed);
  const int activation_parts = config.pipeline.pipe_partitioned ? grid.tensor : 1;
  const int grad_parts = config.pipeline.grad_partitioned ? grid.tensor : 1;
  const int64_t hidden_elements = rows * model.n_embd;
  for (const auto& gathers :
       partitioned_gathers(shape, at.pipeline, hidden_elements, e, activation_parts, grad_parts))
    prediction.tensor_traffic.push_back(gathers);
  prediction.pipeline_traffic =
      pipeline_traffic(shape, at.pipeline, hidden_elements, e, activation_parts, grad_parts);
  prediction.tied_traffic = tied_traffic(model, bounds, shape, at.pipeline, grid.tensor, e);
  return prediction;
}

std::string explain_grid_prediction(const GridPrediction& p) {
  auto mib = [](int64_t bytes) { return double(bytes) / double(1 << 20); };
  const dist::RankPrediction& r = p.rank;
  const dist::ExpectedOffloadBytes& s = r.model_states;
  std::string text = fmt::format(
      "config doctor: {}; the rank at pipeline stage {}, tensor rank {}: layers {}-{} of the "
      "pipeline's list, {} parameters of {} bytes, ZeRO stage {} over the data axis, "
      "micro-batches in flight at once: {}, per rank:\n",
      p.grid.str(), p.at.pipeline, p.at.tensor, p.layers.front(), p.layers.back(),
      p.parameter_count, r.element_bytes, r.stage, p.in_flight);
  text += fmt::format("  {:<28} {:>12} {:>12}\n", "memory (MiB)", "device", "host");
  auto row = [&](const char* kind, int64_t device, int64_t host) {
    text += fmt::format("  {:<28} {:12.3f} {:12.3f}\n", kind, mib(device), mib(host));
  };
  row("parameters", s.device.params, s.host_params);
  row("gradients", s.device.grads, s.host_grads);
  row("optimizer state", s.device.optim_state, s.host_optim_state);
  if (r.activation_bytes >= 0) row("activations (peak)", r.activation_bytes, 0);
  row("total", r.device_bytes(), r.host_bytes());
  text +=
      fmt::format("  {:<28} {:>12}\n", r.activation_bytes >= 0 ? "buffers" : "activations, buffers",
                  "not predicted");
  text += fmt::format("  {:<28} {:>12}\n", "sent per step (bytes)", "payload");
  auto axis = [&](const char* name, const Traffic& traffic) {
    double total = 0.0;
    for (const auto& [kind, bytes] : traffic) {
      text += fmt::format("  {:<28} {:12.0f}\n",
                          fmt::format("{} {}", name, comm::collective_kind_name(kind)), bytes);
      total += bytes;
    }
    if (traffic.empty()) text += fmt::format("  {:<28} {:12.0f}\n", name, 0.0);
    return total;
  };
  double total = axis("data", r.traffic);
  total += axis("tensor", p.tensor_traffic);
  total += axis("pipe", p.pipeline_traffic);
  total += axis("tied", p.tied_traffic);
  text += fmt::format("  {:<28} {:12.0f}\n", "total", total);
  return text;
}

}  // namespace zt::pipeline
