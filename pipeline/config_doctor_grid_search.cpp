// See pipeline/config_doctor_grid_search.h. Each layout is judged by its most loaded stage:
// every rank of a grid must fit the budget, and the step waits for the rank that sends most.
#include "pipeline/config_doctor_grid_search.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "pipeline/config_doctor_grid.h"

namespace zt::pipeline {

namespace {

bool splits_over(const models::GPTConfig& model, int tensor) {
  if (tensor == 1) return true;
  if (model.architecture == models::Architecture::llama) return false;
  return model.n_head % tensor == 0 && model.n_embd % tensor == 0 &&
         model.vocab_size % tensor == 0 && model.resolved_intermediate_size() % tensor == 0;
}

double sent_per_step(const GridPrediction& p) {
  double total = 0.0;
  for (const auto* traffic :
       {&p.rank.traffic, &p.tensor_traffic, &p.pipeline_traffic, &p.tied_traffic})
    for (const auto& [kind, bytes] : *traffic) total += bytes;
  return total;
}

// The layout's most loaded stage, or why it cannot be judged.
GridChoice judge(const models::GPTConfig& model, const dist::Config& config,
                 const comm::GridShape& grid, int64_t reserve_bytes) {
  GridChoice choice{.grid = grid, .device_bytes = 0};
  for (int stage = 0; stage < grid.pipeline; ++stage) {
    const GridPrediction p = predict_grid_rank(model, config, grid, {.pipeline = stage});
    choice.bytes_per_step = std::max(choice.bytes_per_step, sent_per_step(p));
    if (p.rank.activation_bytes < 0) {
      choice.device_bytes = -1;
      choice.ruled_out = "its activations are not predicted";
    }
    if (choice.device_bytes >= 0)
      choice.device_bytes = std::max(choice.device_bytes, p.rank.device_bytes() + reserve_bytes);
  }
  return choice;
}

}  // namespace

GridSearch search_grids(const models::GPTConfig& model, const dist::Config& config, int world_size,
                        int64_t budget_bytes, int64_t reserve_bytes) {
  GridSearch search;
  const int layers = int(model.n_layer) + 3;  // the embedding, the blocks, the norm, the head
  for (int tensor = 1; tensor <= world_size; ++tensor) {
    if (world_size % tensor != 0 || !splits_over(model, tensor)) continue;
    for (int pipeline = 1; pipeline <= world_size / tensor; ++pipeline) {
      if ((world_size / tensor) % pipeline != 0 ||
          pipeline * config.pipeline.virtual_stages > layers)
        continue;
      const comm::GridShape grid{
          .data = world_size / tensor / pipeline, .pipeline = pipeline, .tensor = tensor};
      GridChoice choice;
      try {
        choice = judge(model, config, grid, reserve_bytes);
      } catch (const std::invalid_argument& refused) {
        choice = {.grid = grid, .ruled_out = refused.what()};
      }
      if (choice.ruled_out.empty() && choice.device_bytes > budget_bytes)
        choice.ruled_out = fmt::format(
            "needs {:.3f} MiB, over by {:.3f} MiB", double(choice.device_bytes) / double(1 << 20),
            double(choice.device_bytes - budget_bytes) / double(1 << 20));
      search.considered.push_back(choice);
    }
  }
  // Unjudged layouts last; then least sent a step, then least memory.
  std::stable_sort(search.considered.begin(), search.considered.end(),
                   [](const GridChoice& a, const GridChoice& b) {
                     if ((a.device_bytes < 0) != (b.device_bytes < 0)) return b.device_bytes < 0;
                     if (a.bytes_per_step != b.bytes_per_step)
                       return a.bytes_per_step < b.bytes_per_step;
                     return a.device_bytes < b.device_bytes;
                   });
  for (const GridChoice& choice : search.considered)
    if (choice.ruled_out.empty()) {
      search.suggestion = choice;
      break;
    }
  return search;
}

std::string explain_grid_search(const GridSearch& search, int64_t budget_bytes,
                                int64_t reserve_bytes) {
  auto mib = [](int64_t bytes) { return double(bytes) / double(1 << 20); };
  std::string text =
      search.suggestion
          ? fmt::format("suggested for {:.3f} MiB per rank ({:.3f} MiB reserved for buffers): {}\n",
                        mib(budget_bytes), mib(reserve_bytes), search.suggestion->grid.str())
          : fmt::format("no grid fits {:.3f} MiB per rank ({:.3f} MiB reserved for buffers)\n",
                        mib(budget_bytes), mib(reserve_bytes));
  text += "cheapest first (least sent a step by the busiest rank, then least memory):\n";
  for (const GridChoice& choice : search.considered) {
    text += fmt::format("{}: ", choice.grid.str());
    if (!choice.ruled_out.empty())
      text += choice.ruled_out + "\n";
    else
      text += fmt::format("{:.3f} MiB on the busiest rank fits, sending {:.0f} bytes a step\n",
                          mib(choice.device_bytes), choice.bytes_per_step);
  }
  return text;
}

}  // namespace zt::pipeline
