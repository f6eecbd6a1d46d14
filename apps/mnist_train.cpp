// Trains the MNIST example network (cnn or mlp) with the ZeroTrain engine, on one process or
// many: `mpirun -np 8 ./apps/mnist_train --deepspeed --deepspeed_config configs/ds_config.json`.
// Without --deepspeed_config the engine runs plain data parallelism (ZeRO stage 0) with Adam,
// --batch-size samples per rank per step and --lr. Each rank reads its share of every epoch
// (distributed sampler); losses and test accuracy are combined over ranks; rank 0 prints and
// saves the model as safetensors. With activation_checkpointing.number_checkpoints in the config,
// the network's layers run in that many checkpointed segments (recomputed in backward).
// Usage: mnist_train [--epochs N] [--batch-size B] [--lr LR] [--model cnn|mlp]
//                    [--dataset auto|mnist|fashion] [--data-dir DIR] [--seed S] [--save PATH]
//                    [--report] [--deepspeed] [--deepspeed_config FILE] [--local_rank N]
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <optional>

#include "apps/cli_flags.h"
#include "apps/mnist_common.h"
#include "autograd/checkpointing_options.h"
#include "core/factory.h"
#include "core/generator.h"
#include "core/parallel.h"
#include "core/safetensors.h"
#include "data/dataloader.h"
#include "dist/initialize.h"

using namespace zt;

namespace {

struct TrainOptions {
  int64_t epochs, batch_size;
  double lr;
  std::string model, dataset, data_dir, save_path;
  uint64_t seed;
  bool report;
};

TrainOptions parse(int argc, char** argv) {
  apps::Flags flags(argc, argv,
                    {"epochs", "batch-size", "lr", "model", "dataset", "data-dir", "seed", "save"},
                    {"report"});
  return TrainOptions{flags.get_int("epochs", 3, 1),
                      flags.get_int("batch-size", 64, 1),
                      flags.get_double("lr", 1e-3, 0.0),
                      flags.get_choice("model", "cnn", {"cnn", "mlp"}),
                      flags.get_choice("dataset", "auto", {"auto", "mnist", "fashion"}),
                      flags.get_string("data-dir", "data/mnist"),
                      flags.get_string("save", "deepspeed_train_model.safetensors"),
                      uint64_t(flags.get_int("seed", 1, 0)),
                      flags.has("report")};
}

// Plain data parallelism with Adam when no ds_config.json is given: --batch-size samples per
// rank per step, and the learning rate warmed up linearly over 100 steps from 0 to --lr, then
// decayed linearly to 0 at the last step (measured on Fashion-MNIST: +1 point for the MLP after
// 3 epochs over a constant rate).
dist::Config default_config(const TrainOptions& options, int world_size, int64_t total_steps) {
  std::string text = fmt::format(R"({{
    "train_micro_batch_size_per_gpu": {},
    "gradient_accumulation_steps": 1,
    "steps_per_print": 0,
    "optimizer": {{"type": "Adam", "params": {{"lr": {}}}}},
    "scheduler": {{"type": "WarmupDecayLR",
                  "params": {{"warmup_min_lr": 0, "warmup_max_lr": {}, "warmup_num_steps": {},
                             "warmup_type": "linear", "total_num_steps": {}}}}},
    "zero_optimization": {{"stage": 0}}
  }})",
                                 options.batch_size, options.lr, options.lr,
                                 std::min<int64_t>(100, total_steps), total_steps);
  return dist::parse_config(text, "mnist_train defaults", world_size, nullptr);
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Sums `values` over all ranks of `comm` in place.
std::vector<double> sum_over_ranks(dist::Communicator& comm, std::vector<double> values) {
  Tensor buffer = from_values(values, {int64_t(values.size())}, {.dtype = DType::f64});
  comm.all_reduce(buffer);
  return buffer.to_vector();
}

// Test accuracy over all ranks: rank r classifies positions r, r + N, ... of the test set
// (padded by wrap-around so every rank runs the same forwards, which stage 3 needs) and counts
// only positions inside the set.
double distributed_accuracy(dist::Engine& engine, const Tensor& images, const Tensor& labels,
                            dist::Communicator& world) {
  NoGradGuard no_grad;
  engine.eval();
  int64_t count = images.size(0);
  data::DistributedSampler sampler(
      count, {.num_replicas = world.size(), .rank = world.rank(), .shuffle = false});
  std::vector<int64_t> indices = sampler.indices();
  std::vector<double> truth = labels.to_vector();
  double correct = 0.0;
  constexpr size_t kEvalBatch = 1000;
  for (size_t begin = 0; begin < indices.size(); begin += kEvalBatch) {
    size_t end = std::min(indices.size(), begin + kEvalBatch);
    std::vector<int64_t> chunk(indices.begin() + long(begin), indices.begin() + long(end));
    Tensor index = from_int64(chunk, {int64_t(chunk.size())});
    std::vector<double> predicted =
        argmax(engine.forward(index_select(images, 0, index)), 1).to_vector();
    for (size_t i = 0; i < chunk.size(); ++i) {
      int64_t position = int64_t(begin + i) * world.size() + world.rank();
      if (position < count && predicted[i] == truth[size_t(chunk[i])]) correct += 1.0;
    }
  }
  engine.train();
  return sum_over_ranks(world, {correct})[0] / double(count);
}

// Each rank's memory and traffic report next to the ZeRO formulas, rank by rank.
void print_reports_in_rank_order(dist::Engine& engine, dist::Communicator& world) {
  for (int turn = 0; turn < world.size(); ++turn) {
    if (turn == world.rank()) {
      fmt::print("{}", engine.step_report());
      std::fflush(stdout);
    }
    world.barrier();
  }
}

int train(dist::MpiRuntime& runtime, const DeepSpeedArgs& deepspeed, const TrainOptions& options) {
  dist::MpiCommunicator& world = runtime.world();
  bool leader = world.rank() == 0;
  // A config file is read first, so that its errors come before any data is loaded.
  std::optional<dist::Config> file_config;
  if (!deepspeed.deepspeed_config.empty()) {
    std::vector<std::string> warnings;  // every rank reads the same file; rank 0 says them once
    file_config = dist::load_config(deepspeed.deepspeed_config, world.size(), &warnings);
    for (const std::string& warning : warnings) {
      if (leader) fmt::print(stderr, "warning: {}\n", warning);
    }
  }
  apps::DatasetChoice dataset = apps::choose_dataset(options.dataset, options.data_dir);
  if (leader) {
    fmt::print("dataset: {} from {}\n", dataset.name == "fashion" ? "Fashion-MNIST" : "MNIST",
               dataset.dir);
  }
  data::MnistSplit train_split = data::load_mnist_split(dataset.dir, "train");
  data::MnistSplit test_split = data::load_mnist_split(dataset.dir, "t10k");
  Tensor train_images = data::normalize_images(train_split.images, dataset.mean, dataset.stddev);
  Tensor test_images = data::normalize_images(test_split.images, dataset.mean, dataset.stddev);
  data::TensorDataset train_set(train_images, train_split.labels);
  int64_t samples_per_rank = (train_set.size() + world.size() - 1) / world.size();
  int64_t steps_per_epoch = (samples_per_rank + options.batch_size - 1) / options.batch_size;
  dist::Config config =
      file_config ? *file_config
                  : default_config(options, world.size(), options.epochs * steps_per_epoch);
  data::DataLoader loader(train_set, {.batch_size = config.train_micro_batch_size_per_gpu,
                                      .shuffle = true,
                                      .seed = options.seed,
                                      .distributed = data::DistributedSamplerOptions{
                                          .num_replicas = world.size(), .rank = world.rank()}});

  manual_seed(options.seed);
  const int64_t checkpoints = config.activation_checkpointing.number_checkpoints;
  if (leader && checkpoints > 0) {
    int64_t stages = options.model == "cnn" ? apps::MnistCnn::kStages : apps::MnistMlp::kStages;
    fmt::print(
        "activation checkpointing: the {}'s {} layer stages run in {} checkpointed "
        "segments (activation_checkpointing.number_checkpoints {}), recomputed in "
        "backward\n",
        options.model, stages, std::min(checkpoints, stages), checkpoints);
  }
  Initialized initialized =
      initialize(runtime, config, apps::make_mnist_model(options.model, checkpoints));
  dist::Engine& engine = *initialized.engine;
  if (leader) {
    fmt::print(
        "model: {} ({} parameters, {}), {} ranks x {} threads, ZeRO stage {}, {} lr {}, batch {} "
        "({} per rank x {} accumulation steps x {} ranks)\n",
        options.model, engine.module().num_parameters(),
        engine.mixed_precision()
            ? fmt::format("{} with fp32 master weights", dtype_name(engine.model_dtype()))
            : "f32",
        world.size(), num_threads(), engine.zero_stage(), config.optimizer.type,
        config.optimizer.lr, config.train_batch_size, config.train_micro_batch_size_per_gpu,
        config.gradient_accumulation_steps, world.size());
  }

  // The progress line would interleave with the engine's own step log.
  bool on_terminal = leader && isatty(fileno(stdout)) && config.steps_per_print == 0;
  auto run_start = std::chrono::steady_clock::now();
  for (int64_t epoch = 1; epoch <= options.epochs; ++epoch) {
    loader.set_epoch(epoch - 1);
    engine.train();
    auto epoch_start = std::chrono::steady_clock::now();
    double loss_sum = 0.0;
    int64_t batches = loader.num_batches();
    for (int64_t b = 0; b < batches; ++b) {
      data::Batch batch = loader.batch(b);
      // The loss is taken in f32 whatever the model's dtype, as mixed-precision training does.
      Tensor loss = cross_entropy(engine.forward(batch.inputs).to(DType::f32), batch.targets);
      engine.backward(loss);
      engine.step();
      loss_sum += loss.item();
      if (options.report && engine.micro_steps() % config.gradient_accumulation_steps == 0) {
        print_reports_in_rank_order(engine, world);  // one full step is done
        return 0;
      }
      if (on_terminal && (b % 20 == 0 || b + 1 == batches)) {
        fmt::print("\repoch {} [{:5}/{}] loss {:.4f}", epoch, b + 1, batches,
                   loss_sum / double(b + 1));
        std::fflush(stdout);
      }
    }
    if (on_terminal) fmt::print("\r");
    double train_seconds = seconds_since(epoch_start);
    double mean_loss = sum_over_ranks(world, {loss_sum / double(batches)})[0] / world.size();
    double accuracy = distributed_accuracy(engine, test_images, test_split.labels, world);
    if (leader) {
      std::string scaling = engine.loss_scaler()
                                ? fmt::format(", loss scale {:g}, {} skipped steps",
                                              engine.loss_scale(), engine.skipped_steps())
                                : "";
      fmt::print("epoch {}: loss {:.4f}, test accuracy {:.2f}%, {:.0f} samples/s, {:.1f} s{}\n",
                 epoch, mean_loss, 100.0 * accuracy,
                 double(loader.num_samples() * world.size()) / train_seconds,
                 seconds_since(epoch_start), scaling);
    }
  }
  print_reports_in_rank_order(engine, world);
  if (leader && config.activation_checkpointing.profile) {
    CheckpointingProfile profile = checkpointing_profile();
    fmt::print("activation checkpointing profile (rank 0): {} recomputations, {:.3f} s\n",
               profile.recompute_count, profile.recompute_seconds);
  }
  NamedTensors state = engine.consolidated_state_dict();
  if (leader) {
    // Saved in f32 whatever the training dtype, so mnist_eval and PyTorch load it as they are.
    for (auto& [name, tensor] : state) tensor = tensor.to(DType::f32);
    save_safetensors(options.save_path, state,
                     {{"model", options.model}, {"dataset", dataset.name}});
    fmt::print("saved {} ({:.1f} s in all)\n", options.save_path, seconds_since(run_start));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return dist::run_distributed_main(argc, argv, [&](dist::MpiRuntime& runtime) {
    DeepSpeedArgs deepspeed = take_deepspeed_args(argc, argv);
    TrainOptions options = parse(argc, argv);
    return train(runtime, deepspeed, options);
  });
}
