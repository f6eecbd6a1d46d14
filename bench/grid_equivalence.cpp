// The GPT trained on every (pipeline, tensor, data) layout of the world against one process on
// the same global batch, fp32: per layout and ZeRO stage, the largest difference of the batch
// loss over the steps and the largest relative difference of a weight after them (largest
// |difference| over largest |weight| of each tensor, shards joined, the worst tensor).
// Layouts with a pipeline run through the pipeline engine at ZeRO 1 and 2; the others (data
// only, or tensor x data) through the engine at ZeRO 1, 2 and 3. The floor of fp32 is measured
// in the same run (one process summing the same micro-batches in another order) and each
// layout's weight difference is printed beside it, as a multiple of it. --trace prints, per
// step of each layout, the tensor that differs most from the one process at that step.
// Run: mpirun -np 8 bench/grid_equivalence (the layouts are those of 8 ranks; other worlds run
// the ones that fit).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "apps/cli_flags.h"
#include "apps/read_command_line.h"
#include "autograd/functions.h"
#include "comm/mpi_runtime.h"
#include "comm/process_grid.h"
#include "core/factory.h"
#include "core/generator.h"
#include "core/ops/view.h"
#include "dist/config.h"
#include "dist/engine.h"
#include "models/gpt.h"
#include "optim/sgd.h"
#include "pipeline/gpt_layers.h"
#include "pipeline/pipeline_engine.h"
#include "tensor_parallel/gpt2_tensor_parallel.h"
#include "tensor_parallel/sharded_state.h"
#include "tensor_parallel/vocab_parallel.h"

using namespace zt;

namespace {

const apps::CommandLine kCommandLine{
    "bench/grid_equivalence",
    "Trains the GPT at (pp, tp, dp) = (1,1,8), (2,1,4), (1,2,4), (2,2,2), (4,2,1), (8,1,1) and\n"
    "prints the largest loss and relative weight differences from one process; run under\n"
    "mpirun -np 8.",
    {{"steps", "N", "20", "optimizer steps per run"},
     {"lr", "LR", "0.01", "SGD learning rate (momentum 0.9)"},
     {"layout", "PP,TP", "", "run only this layout (the data size is what the world leaves)",
      "every layout"},
     {"growth", "", "",
      "first print per step the worst tensor of one process summing in another order", "off"},
     {"trace", "", "", "print per step each layout's worst tensor against one process", "off"}}};
double kLr = 0.01;  // set once from --lr

constexpr int64_t kSequences = 32;  // the global batch
constexpr int64_t kLength = 16;
constexpr int64_t kMicroRows = 2;  // sequences per pipeline micro-batch
constexpr uint64_t kSeed = 1234;

models::GPTConfig bench_gpt_config() {
  models::GPTConfig config;
  config.vocab_size = 64;
  config.block_size = kLength;
  config.n_layer = 6;  // 9 pipeline layers: enough for 8 stages
  config.n_head = 4;
  config.n_embd = 32;
  return config;
}

struct Layout {
  int pipeline, tensor, data;
};

// Sequences [first, first + count) of step `step`'s global batch: tokens and next tokens.
// Each sequence starts at its own token and follows t -> (7t + 3) mod 64, which the model can
// learn (the loss falls well below log 64 in 20 steps).
pipeline::MicroBatch sequences(int step, int64_t first, int64_t count) {
  std::vector<int64_t> stream(size_t(count * (kLength + 1)));
  for (int64_t row = 0; row < count; ++row) {
    int64_t token = ((first + row) * 131 + int64_t(step) * 17) % 64;
    for (int64_t i = 0; i <= kLength; ++i) {
      stream[size_t(row * (kLength + 1) + i)] = token;
      token = (7 * token + 3) % 64;
    }
  }
  Tensor all = from_int64(stream, {count, kLength + 1});
  return {ops::contiguous(ops::narrow(all, 1, 0, kLength)),
          ops::contiguous(ops::narrow(all, 1, 1, kLength))};
}

struct Trained {
  std::vector<double> losses;
  std::map<std::string, Tensor> weights;  // whole, under the GPT's names
  double largest_move = 0.0;  // of a weight from its initial value, relative as the differences
};

double relative_difference(const Tensor& a, const Tensor& b) {
  Tensor a64 = a.to(DType::f64).contiguous(), b64 = b.to(DType::f64).contiguous();
  double largest_difference = 0.0, largest = 0.0;
  for (int64_t i = 0; i < a64.numel(); ++i) {
    largest_difference = std::max(largest_difference,
                                  std::fabs(a64.data_ptr<double>()[i] - b64.data_ptr<double>()[i]));
    largest = std::max(largest, std::fabs(b64.data_ptr<double>()[i]));
  }
  return largest_difference / std::max(largest, 1e-30);
}

// SGD with momentum, as the pipeline tests: Adam would turn the rounding noise of gradients
// that are zero in exact arithmetic (attention's key bias) into steps of the learning rate.
// `micro_rows` < kSequences: the same batch as micro-batches of that many sequences, each loss
// scaled by 1/count (the same mathematics summed in another order: the floor of fp32).
// `after_step`, when given, sees the model after every step.
Trained train_one_process(int steps, int64_t micro_rows = kSequences,
                          const std::function<void(int, models::GPT&)>& after_step = {}) {
  manual_seed(kSeed);
  models::GPT model(bench_gpt_config());
  std::vector<Tensor> params = model.parameters();
  optim::Sgd sgd(optim::single_group(params, kLr, 0.0), {.momentum = 0.9});
  std::vector<Tensor> initial;
  for (const Tensor& param : params) initial.push_back(param.detach().clone());
  Trained trained;
  for (int step = 0; step < steps; ++step) {
    sgd.zero_grad();
    double loss_sum = 0.0;
    const int64_t count = kSequences / micro_rows;
    for (int64_t first = 0; first < kSequences; first += micro_rows) {
      pipeline::MicroBatch batch = sequences(step, first, micro_rows);
      Tensor loss = pipeline::gpt_next_token_loss(model(batch.inputs), batch.labels);
      loss_sum += loss.item();
      (count == 1 ? loss : loss * (1.0 / double(count))).backward();
    }
    trained.losses.push_back(loss_sum / double(count));
    sgd.step();
    if (after_step) after_step(step, model);
  }
  for (const auto& [name, weight] : model.named_parameters()) trained.weights[name] = weight;
  for (size_t i = 0; i < params.size(); ++i)
    trained.largest_move =
        std::max(trained.largest_move, relative_difference(initial[i], params[i]));
  return trained;
}

std::string optimizer_block(int zero_stage) {
  return fmt::format(R"("steps_per_print": 0,
      "optimizer": {{"type": "SGD", "params": {{"lr": {}, "momentum": 0.9}}}},
      "zero_optimization": {{"stage": {}, "reduce_bucket_size": 2000,
                            "stage3_param_persistence_threshold": 0}})",
                     kLr, zero_stage);
}

struct Differences {
  double loss = 0.0, weight = 0.0;
};

// The one process's weights after every step, for --trace (empty: no trace).
using WeightsPerStep = std::vector<std::map<std::string, Tensor>>;

// After step `step` of a layout's run: the step's loss difference from the one process (the
// forward before any update differs only where the formulas or their summation order do), and
// each tensor's relative difference, the worst over the world (`weights`: this rank's, whole,
// by the GPT's names); rank 0 prints both.
void print_worst_tensor(int step, double loss_difference, const NamedTensors& weights,
                        const WeightsPerStep& reference, comm::Communicator& world) {
  const std::map<std::string, Tensor>& expected = reference.at(size_t(step));
  std::vector<double> differences(expected.size(), 0.0);
  for (const auto& [name, weight] : weights) {
    auto found = expected.find(name == "lm_head.weight" ? "wte.weight" : name);
    if (found == expected.end()) continue;
    double& slot = differences[size_t(std::distance(expected.begin(), found))];
    slot = std::max(slot, relative_difference(weight, found->second));
  }
  Tensor all = from_values(differences, {int64_t(differences.size())}, {.dtype = DType::f64});
  world.all_reduce(all, comm::ReduceOperation::max);
  const double* worst =
      std::max_element(all.data_ptr<double>(), all.data_ptr<double>() + all.numel());
  if (world.rank() == 0)
    fmt::print("  step {} |loss-diff| {:.2e} worst {} {:.2e}\n", step + 1, loss_difference,
               std::next(expected.begin(), worst - all.data_ptr<double>())->first, *worst);
}

// The worst of this rank's weights (the tied head compared with the embedding), then the
// worst over the world.
Differences compare(const std::vector<double>& losses, const NamedTensors& weights,
                    const Trained& reference, comm::Communicator& world) {
  Differences found;
  for (size_t step = 0; step < losses.size(); ++step)
    found.loss = std::max(found.loss, std::fabs(losses[step] - reference.losses[step]));
  for (const auto& [name, weight] : weights) {
    auto expected = reference.weights.find(name == "lm_head.weight" ? "wte.weight" : name);
    if (expected == reference.weights.end())
      throw std::runtime_error(fmt::format("grid_equivalence: no weight {} in the GPT", name));
    found.weight = std::max(found.weight, relative_difference(weight, expected->second));
  }
  Tensor both = from_values({found.loss, found.weight}, {2}, {.dtype = DType::f64});
  world.all_reduce(both, comm::ReduceOperation::max);
  return {both.data_ptr<double>()[0], both.data_ptr<double>()[1]};
}

Differences run_pipeline(comm::Communicator& world, Layout layout, int zero_stage, int steps,
                         const Trained& reference, const WeightsPerStep& trace) {
  comm::ProcessGrid grid(
      world, {.data = layout.data, .pipeline = layout.pipeline, .tensor = layout.tensor});
  const int64_t micro_batches = kSequences / (layout.data * kMicroRows);
  dist::Config config = dist::parse_config(
      fmt::format(R"({{"train_micro_batch_size_per_gpu": {}, "gradient_accumulation_steps": {},
          "tensor_parallel": {{"autotp_size": {}}}, "pipeline": {{"partition": "uniform"}}, {}}})",
                  kMicroRows, micro_batches, layout.tensor, optimizer_block(zero_stage)),
      "grid_equivalence", layout.data * layout.tensor, nullptr);
  manual_seed(kSeed);
  NamedTensors initial = models::GPT(bench_gpt_config()).named_parameters();
  const bool split = layout.tensor > 1;
  pipeline::PipelineEngine engine(
      config,
      split ? pipeline::gpt_layer_specs(bench_gpt_config(), grid.tensor_group())
            : pipeline::gpt_layer_specs(bench_gpt_config()),
      split ? pipeline::gpt_vocab_parallel_loss(grid.tensor_group())
            : pipeline::LossFunction(pipeline::gpt_next_token_loss),
      sequences(0, 0, kMicroRows).inputs, grid, &initial);
  std::vector<double> losses;
  for (int step = 0; step < steps; ++step) {
    int64_t next = grid.coordinates().data * micro_batches * kMicroRows;
    losses.push_back(engine.train_batch([&] {
      pipeline::MicroBatch batch = sequences(step, next, kMicroRows);
      next += kMicroRows;
      return batch;
    }));
    if (!trace.empty())
      print_worst_tensor(step, std::fabs(losses.back() - reference.losses[size_t(step)]),
                         engine.whole_model_weights(), trace, world);
  }
  return compare(losses, engine.whole_model_weights(), reference, world);
}

// No pipeline: the GPT (or its tensor-parallel form) in the engine, each data rank on its
// share of the global batch.
Differences run_engine(comm::Communicator& world, Layout layout, int zero_stage, int steps,
                       const Trained& reference, const WeightsPerStep& trace) {
  comm::ProcessGrid grid(world, {.data = layout.data, .pipeline = 1, .tensor = layout.tensor});
  comm::Communicator& tensor_group = grid.tensor_group();
  const bool split = layout.tensor > 1;
  manual_seed(kSeed);
  auto whole = std::make_shared<models::GPT>(bench_gpt_config());
  std::shared_ptr<nn::Module> model = whole;
  if (split) {
    model = std::make_shared<tensor_parallel::TensorParallelGPT>(bench_gpt_config(), tensor_group);
    tensor_parallel::load_full_state(*model, whole->named_parameters(), tensor_group.rank(),
                                     tensor_group.size());
  }
  dist::Config config = dist::parse_config(
      fmt::format(R"({{"train_batch_size": {}, "tensor_parallel": {{"autotp_size": {}}}, {}}})",
                  kSequences, layout.tensor, optimizer_block(zero_stage)),
      "grid_equivalence", layout.data * layout.tensor, nullptr);
  dist::Engine engine(config, model, grid.data_group(), {}, split ? &tensor_group : nullptr);
  const int64_t rows = kSequences / layout.data;
  std::vector<double> losses;
  for (int step = 0; step < steps; ++step) {
    pipeline::MicroBatch batch = sequences(step, grid.coordinates().data * rows, rows);
    Tensor logits = engine.forward(batch.inputs);
    Tensor loss = split ? pipeline::gpt_vocab_parallel_loss(tensor_group)(logits, batch.labels)
                        : pipeline::gpt_next_token_loss(logits, batch.labels);
    engine.backward(loss);
    engine.step();
    losses.push_back(engine.last_global_loss());
    if (!trace.empty()) {
      NamedTensors weights = engine.consolidated_state_dict();
      if (split) weights = tensor_parallel::gather_full(*model, weights, tensor_group);
      print_worst_tensor(step, std::fabs(losses.back() - reference.losses[size_t(step)]), weights,
                         trace, world);
    }
  }
  NamedTensors weights = engine.consolidated_state_dict();
  if (split) weights = tensor_parallel::gather_full(*model, weights, tensor_group);
  return compare(losses, weights, reference, world);
}

// The floor's growth: one process on the whole batch against one process on micro-batches of
// kMicroRows, the same mathematics summed in another order; after each step the worst
// tensor's relative difference. A chaotic run amplifies the first step's rounding.
void print_floor_growth(int steps) {
  std::vector<std::map<std::string, Tensor>> whole_batch{size_t(steps)};
  train_one_process(steps, kSequences, [&](int step, models::GPT& model) {
    for (const auto& [name, weight] : model.named_parameters())
      whole_batch[size_t(step)][name] = weight.detach().clone();
  });
  fmt::print("step worst-tensor max-rel-weight-diff (one process, micro-batches of {} vs one)\n",
             kMicroRows);
  train_one_process(steps, kMicroRows, [&](int step, models::GPT& model) {
    std::string worst;
    double largest = 0.0;
    for (const auto& [name, weight] : model.named_parameters()) {
      double difference = relative_difference(weight, whole_batch[size_t(step)].at(name));
      if (difference > largest) largest = difference, worst = name;
    }
    fmt::print("{} {} {:.2e}\n", step + 1, worst, largest);
  });
}

}  // namespace

int main(int argc, char** argv) {
  int steps = 20;
  std::optional<std::pair<int, int>> only;  // --layout
  bool growth = false, trace = false;
  std::optional<int> status =
      apps::read_command_line(argc, argv, kCommandLine, [&](const apps::Flags& flags) {
        steps = int(flags.get_int("steps", 1));
        kLr = flags.get_double("lr", 0.0);
        growth = flags.has("growth");
        trace = flags.has("trace");
        if (flags.has("layout")) {
          const std::string text = flags.get_string("layout");
          int pipeline = 0, tensor = 0;
          if (std::sscanf(text.c_str(), "%d,%d", &pipeline, &tensor) != 2 || pipeline < 1 ||
              tensor < 1)
            throw std::invalid_argument(
                fmt::format("--layout: expected PP,TP (two positive sizes), got \"{}\"", text));
          only = std::pair{pipeline, tensor};
        }
      });
  if (status) return *status;
  return comm::run_distributed_main(argc, argv, [&](comm::MpiRuntime& runtime) {
    comm::Communicator& world = runtime.world();
    if (growth && world.rank() == 0) print_floor_growth(steps);
    WeightsPerStep reference_steps;
    const Trained reference = train_one_process(steps, kSequences, [&](int, models::GPT& model) {
      if (!trace) return;
      std::map<std::string, Tensor>& copy = reference_steps.emplace_back();
      for (const auto& [name, weight] : model.named_parameters())
        copy[name] = weight.detach().clone();
    });
    if (world.rank() == 0) {
      fmt::print(
          "GPT {} layers, width {}, {} heads, vocab {}; global batch {} x {} tokens; fp32, "
          "SGD momentum 0.9, lr {}; {} steps; one-process loss {:.4f} -> {:.4f}, largest relative "
          "move of a weight {:.3f}\n",
          bench_gpt_config().n_layer, bench_gpt_config().n_embd, bench_gpt_config().n_head,
          bench_gpt_config().vocab_size, kSequences, kLength, kLr, steps, reference.losses.front(),
          reference.losses.back(), reference.largest_move);
      fmt::print("pp tp dp zero max|loss-diff| max-rel-weight-diff x-floor seconds\n");
    }
    double floor = 0.0;  // the weight difference of one process summing in another order
    {
      // The floor: one process, micro-batches of kMicroRows (no rank grid, marked "-").
      const Trained accumulated = train_one_process(steps, kMicroRows);
      Differences found;
      for (const auto& [name, weight] : accumulated.weights)
        found.weight =
            std::max(found.weight, relative_difference(weight, reference.weights.at(name)));
      for (size_t step = 0; step < accumulated.losses.size(); ++step)
        found.loss =
            std::max(found.loss, std::fabs(accumulated.losses[step] - reference.losses[step]));
      floor = found.weight;
      if (world.rank() == 0)
        fmt::print("1 1 1 - {:.2e} {:.2e} 1.00 - (the floor)\n", found.loss, found.weight);
    }
    const int ranks = world.size();
    for (Layout layout :
         std::vector<Layout>{{1, 1, 8}, {2, 1, 4}, {1, 2, 4}, {2, 2, 2}, {4, 2, 1}, {8, 1, 1}}) {
      if (only && (layout.pipeline != only->first || layout.tensor != only->second)) continue;
      layout.data = ranks / (layout.pipeline * layout.tensor);
      if (layout.data * layout.pipeline * layout.tensor != ranks || layout.data < 1) continue;
      if (kSequences % (layout.data * kMicroRows) != 0) continue;
      const std::vector<int> stages =
          layout.pipeline > 1 ? std::vector<int>{1, 2} : std::vector<int>{1, 2, 3};
      for (int zero_stage : stages) {
        auto begun = std::chrono::steady_clock::now();
        if (trace && world.rank() == 0)
          fmt::print("{} {} {} {}: per step\n", layout.pipeline, layout.tensor, layout.data,
                     zero_stage);
        Differences found =
            layout.pipeline > 1
                ? run_pipeline(world, layout, zero_stage, steps, reference, reference_steps)
                : run_engine(world, layout, zero_stage, steps, reference, reference_steps);
        double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - begun).count();
        if (world.rank() == 0)
          fmt::print("{} {} {} {} {:.2e} {:.2e} {:.2f} {:.1f}\n", layout.pipeline, layout.tensor,
                     layout.data, zero_stage, found.loss, found.weight,
                     found.weight / std::max(floor, 1e-30), seconds);
      }
    }
    return 0;
  });
}
