// Trains the MNIST example network (cnn or mlp) with the ZeroTrain engine, on one process or
// many: `mpirun -np 8 ./apps/mnist_train --deepspeed --deepspeed_config configs/ds_config.json`.
// Without --deepspeed_config the engine runs plain data parallelism (ZeRO stage 0) with Adam,
// --batch-size samples per rank per step and --lr. Each rank reads its share of every epoch
// (distributed sampler); losses and test accuracy are combined over ranks; rank 0 prints and
// saves the model as safetensors. With activation_checkpointing.number_checkpoints in the config,
// the network's layers run in that many checkpointed segments (recomputed in backward).
// With --save-dir, engine checkpoints are saved every --save-every N optimizer steps (or at each
// epoch end) and when training ends; --resume continues from the newest one exactly where it
// was, so the final model is byte-identical to an uninterrupted run's with the same flags.
// Usage: mnist_train [--epochs N] [--batch-size B] [--lr LR] [--model cnn|mlp]
//                    [--dataset auto|mnist|fashion] [--data-dir DIR] [--seed S] [--save PATH]
//                    [--save-dir DIR [--save-every N|epoch] [--resume]] [--max-steps N]
//                    [--device cpu|cuda] [--report] [--deepspeed] [--deepspeed_config FILE]
//                    [--local_rank N] [--dist_backend auto|nccl|mpi]
// --device cuda trains on GPU cuda:(local rank modulo the GPU count): ranks with a GPU of their
// own exchange gradients through NCCL, ranks sharing a GPU through MPI (--dist_backend).
// Test hook: ZEROTRAIN_TEST_KILL_RANK_AT_STEP=R:S makes rank R SIGKILL itself right after
// optimizer step S (and any checkpoint of that step), for the crash tests of scripts/run-tests.
#include <fmt/format.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>

#include "apps/cli_flags.h"
#include "apps/mnist_common.h"
#include "autograd/checkpointing_options.h"
#include "core/backend.h"
#include "core/factory.h"
#include "core/generator.h"
#include "core/parallel.h"
#include "core/safetensors.h"
#include "data/dataloader.h"
#include "dist/checkpoint_files.h"
#include "dist/initialize.h"

using namespace zt;

namespace {

struct TrainOptions {
  int64_t epochs, batch_size;
  double lr;
  std::string model, dataset, data_dir, save_path;
  uint64_t seed;
  bool report;
  std::string save_dir;          // "": no checkpoints
  int64_t save_every_steps = 0;  // 0: at each epoch end
  bool resume = false;
  int64_t max_steps = 0;  // 0: no limit
  std::string device = "cpu";
};

TrainOptions parse(int argc, char** argv) {
  apps::Flags flags(argc, argv,
                    {"epochs", "batch-size", "lr", "model", "dataset", "data-dir", "seed", "save",
                     "save-dir", "save-every", "max-steps", "device"},
                    {"report", "resume"});
  TrainOptions options{flags.get_int("epochs", 3, 1),
                       flags.get_int("batch-size", 64, 1),
                       flags.get_double("lr", 1e-3, 0.0),
                       flags.get_choice("model", "cnn", {"cnn", "mlp"}),
                       flags.get_choice("dataset", "auto", {"auto", "mnist", "fashion"}),
                       flags.get_string("data-dir", "data/mnist"),
                       flags.get_string("save", "deepspeed_train_model.safetensors"),
                       uint64_t(flags.get_int("seed", 1, 0)),
                       flags.has("report")};
  options.save_dir = flags.get_string("save-dir", "");
  if (flags.get_string("save-every", "epoch") != "epoch") {
    try {
      options.save_every_steps = flags.get_int("save-every", 0, 1);
    } catch (const apps::FlagError&) {
      throw apps::FlagError(
          fmt::format("--save-every: expected an integer >= 1 or 'epoch', got '{}'",
                      flags.get_string("save-every", "")));
    }
  }
  options.resume = flags.has("resume");
  options.max_steps = flags.get_int("max-steps", 0, 1);
  options.device = flags.get_choice("device", "cpu", {"cpu", "cuda"});
  for (const char* needs_dir : {"save-every", "resume"}) {
    if (flags.has(needs_dir) && options.save_dir.empty())
      throw apps::FlagError(fmt::format("--{} needs --save-dir DIR", needs_dir));
  }
  return options;
}

// Where training stands between two batches: what a checkpoint's client state records (with the
// model and dataset names) so that a resumed run continues exactly where the saved one was.
struct Position {
  int64_t epoch = 1;              // 1-based: the epoch being run
  int64_t next_batch = 0;         // the batch of that epoch to run next
  std::vector<double> loss_sums;  // per rank: the epoch's running sum of batch losses so far
  int64_t world_size = 1, micro_batch_size = 1;  // of the run that saved it
};

nlohmann::json client_state(const Position& position, const TrainOptions& options,
                            const std::string& dataset_name) {
  return {{"epoch", position.epoch},
          {"next_batch", position.next_batch},
          {"loss_sums", position.loss_sums},
          {"world_size", position.world_size},
          {"micro_batch_size", position.micro_batch_size},
          {"metadata", {{"model", options.model}, {"dataset", dataset_name}}}};
}

// The client state of the checkpoint --resume continues from (DIR/latest), read and checked
// against the flags before any data is loaded: a checkpoint of another network or dataset is an
// error naming its file, not a shape mismatch deep in the engine. Every rank reads it, so every
// rank fails alike. Returns the model file's path, for later messages.
std::string check_resume_checkpoint(const TrainOptions& options, const std::string& dataset_name) {
  std::string model_file = dist::model_states_file(dist::resolve_tag_dir(options.save_dir, ""));
  SafetensorsContents contents = load_safetensors(model_file);
  auto found = contents.metadata.find("client_state");
  nlohmann::json state;
  try {
    if (found != contents.metadata.end()) state = nlohmann::json::parse(found->second);
  } catch (const nlohmann::json::exception& error) {
    throw std::runtime_error(fmt::format("{}: metadata \"client_state\" is not valid JSON: {}",
                                         model_file, error.what()));
  }
  const nlohmann::json* metadata =
      state.is_object() && state.contains("metadata") ? &state["metadata"] : nullptr;
  if (metadata == nullptr || !metadata->is_object()) {
    throw std::runtime_error(model_file +
                             ": client_state.metadata missing (not a checkpoint of mnist_train)");
  }
  for (auto [key, wanted] :
       {std::pair<std::string, std::string>{"model", options.model}, {"dataset", dataset_name}}) {
    std::string saved = metadata->contains(key) && (*metadata)[key].is_string()
                            ? (*metadata)[key].get<std::string>()
                            : (*metadata).value(key, nlohmann::json()).dump();
    if (saved != wanted) {
      throw std::runtime_error(fmt::format(
          "{}: client_state.metadata.{}: the checkpoint is of {} {}, but this run has {} {}",
          model_file, key, key, saved, key, wanted));
    }
  }
  return model_file;
}

// The position a resumed run starts from, from the client state the engine restored; `where`
// names the file. Mid-epoch, the rest of the epoch is this rank's share of batches only with
// the same ranks and batch size; at an epoch's start any will do.
Position position_from(const nlohmann::json& state, const std::string& where, int world_size,
                       int64_t micro_batch_size) {
  auto integer = [&](const char* key, int64_t min_value) {
    if (!state.is_object() || !state.contains(key) || !state[key].is_number_integer() ||
        state[key].get<int64_t>() < min_value) {
      throw std::runtime_error(
          fmt::format("{}: client_state.{}: expected an integer >= {}", where, key, min_value));
    }
    return state[key].get<int64_t>();
  };
  Position position;
  position.epoch = integer("epoch", 1);
  position.next_batch = integer("next_batch", 0);
  position.world_size = integer("world_size", 1);
  position.micro_batch_size = integer("micro_batch_size", 1);
  const nlohmann::json& sums = state.contains("loss_sums") ? state["loss_sums"] : nullptr;
  if (!sums.is_array() || sums.size() != size_t(position.world_size)) {
    throw std::runtime_error(
        fmt::format("{}: client_state.loss_sums: expected {} numbers", where, position.world_size));
  }
  for (const nlohmann::json& sum : sums) {
    if (!sum.is_number())
      throw std::runtime_error(where + ": client_state.loss_sums: expected numbers");
    position.loss_sums.push_back(sum.get<double>());
  }
  if (position.world_size == world_size && position.micro_batch_size == micro_batch_size)
    return position;
  if (position.next_batch > 0) {
    throw std::runtime_error(fmt::format(
        "{}: saved in the middle of epoch {} by {} ranks with micro-batches of {}; resume it "
        "with those (this run: {} ranks, micro-batches of {})",
        where, position.epoch, position.world_size, position.micro_batch_size, world_size,
        micro_batch_size));
  }
  position.loss_sums.assign(size_t(world_size), 0.0);
  return position;
}

// ZEROTRAIN_TEST_KILL_RANK_AT_STEP=R:S: rank R dies from SIGKILL after optimizer step S, as a
// crashed node would, at a point that does not depend on timing.
void maybe_kill_for_test(int rank, int64_t global_step) {
  const char* text = std::getenv("ZEROTRAIN_TEST_KILL_RANK_AT_STEP");
  if (text == nullptr) return;
  int kill_rank = -1;
  int64_t kill_step = -1;
  const char* end = text + std::strlen(text);
  auto [after_rank, rank_error] = std::from_chars(text, end, kill_rank);
  bool valid = rank_error == std::errc() && after_rank != end && *after_rank == ':' &&
               std::from_chars(after_rank + 1, end, kill_step).ptr == end;
  if (!valid) {
    throw std::runtime_error(
        fmt::format("ZEROTRAIN_TEST_KILL_RANK_AT_STEP: expected RANK:STEP, got '{}'", text));
  }
  if (rank != kill_rank || global_step != kill_step) return;
  std::fflush(stdout);
  std::fflush(stderr);
  std::raise(SIGKILL);
}

// Plain data parallelism with Adam when no ds_config.json is given: --batch-size samples per
// rank per step, and the learning rate warmed up linearly over 100 steps from 0 to --lr, then
// decayed linearly to 0 at the last step (measured on Fashion-MNIST: +1 point for the MLP after
// 3 epochs over a constant rate).
dist::Config default_config(const TrainOptions& options, int world_size, int64_t total_steps) {
  if (options.max_steps > 0) total_steps = std::min(total_steps, options.max_steps);
  // The schedule needs 2 steps at least (its warm-up counts as 2); a 1-step run decays less.
  total_steps = std::max<int64_t>(total_steps, 2);
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
std::vector<double> sum_over_ranks(comm::Communicator& comm, std::vector<double> values) {
  Tensor buffer = from_values(values, {int64_t(values.size())}, {.dtype = DType::f64});
  comm.all_reduce(buffer);
  return buffer.to_vector();
}

// Test accuracy over all ranks: rank r classifies positions r, r + N, ... of the test set
// (padded by wrap-around so every rank runs the same forwards, which stage 3 needs) and counts
// only positions inside the set.
double distributed_accuracy(dist::Engine& engine, const Tensor& images, const Tensor& labels,
                            comm::Communicator& world) {
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
        argmax(engine.forward(index_select(images, 0, index).to(engine.device())), 1).to_vector();
    for (size_t i = 0; i < chunk.size(); ++i) {
      int64_t position = int64_t(begin + i) * world.size() + world.rank();
      if (position < count && predicted[i] == truth[size_t(chunk[i])]) correct += 1.0;
    }
  }
  engine.train();
  return sum_over_ranks(world, {correct})[0] / double(count);
}

// Each rank's memory and traffic report next to the ZeRO formulas, rank by rank.
void print_reports_in_rank_order(dist::Engine& engine, comm::Communicator& world) {
  for (int turn = 0; turn < world.size(); ++turn) {
    if (turn == world.rank()) {
      fmt::print("{}", engine.step_report());
      std::fflush(stdout);
    }
    world.barrier();
  }
}

// The device --device names for this rank: the host, or GPU (local rank modulo the GPU count).
Device training_device(const std::string& choice, const comm::MpiRuntime& runtime) {
  if (choice == "cpu") return Device::cpu();
  int gpus = cuda_device_count();
  if (gpus == 0) {
    throw apps::FlagError(
        "--device cuda: no CUDA device is visible (or this build has no CUDA backend)");
  }
  return Device::cuda(runtime.local_rank() % gpus);
}

int train(comm::MpiRuntime& runtime, const DeepSpeedArgs& deepspeed, const TrainOptions& options) {
  comm::MpiCommunicator& world = runtime.world();
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
  std::string resume_file;
  if (options.resume) resume_file = check_resume_checkpoint(options, dataset.name);
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
  std::shared_ptr<nn::Module> model = apps::make_mnist_model(options.model, checkpoints);
  model->to(training_device(options.device, runtime));
  Initialized initialized = initialize(runtime, config, model, deepspeed.dist_backend);
  dist::Engine& engine = *initialized.engine;
  const int64_t micro_batch = config.train_micro_batch_size_per_gpu;
  Position position{.loss_sums = std::vector<double>(size_t(world.size()), 0.0),
                    .world_size = world.size(),
                    .micro_batch_size = micro_batch};
  if (options.resume) {
    // Parameters, optimizer, schedule, loss scaler, counters and each rank's generator (dropout)
    // come back in the engine; the data order is a function of (seed, epoch), so the position
    // is all the rest.
    position = position_from(engine.load_checkpoint(options.save_dir), resume_file, world.size(),
                             micro_batch);
  }
  if (leader) {
    fmt::print(
        "model: {} ({} parameters, {}), {} ranks x {} threads, ZeRO stage {}, {} lr {}, batch {} "
        "({} per rank x {} accumulation steps x {} ranks), on {}, ZeRO traffic over {}\n",
        options.model, engine.module().num_parameters(),
        engine.mixed_precision()
            ? fmt::format("{} with fp32 master weights", dtype_name(engine.model_dtype()))
            : "f32",
        world.size(), num_threads(), engine.zero_stage(), config.optimizer.type,
        config.optimizer.lr, config.train_batch_size, config.train_micro_batch_size_per_gpu,
        config.gradient_accumulation_steps, world.size(), engine.device().str(),
        engine.data_parallel_communicator().name());
    if (options.resume) {
      fmt::print("resumed from {} at epoch {}, batch {} (optimizer step {})\n", resume_file,
                 position.epoch, position.next_batch, engine.global_steps());
    }
  }

  // The progress line would interleave with the engine's own step log.
  bool on_terminal = leader && isatty(fileno(stdout)) && config.steps_per_print == 0;
  const int64_t accumulation = config.gradient_accumulation_steps;
  auto at_boundary = [&] { return engine.micro_steps() % accumulation == 0; };
  auto reached_max_steps = [&] {
    return options.max_steps > 0 && engine.global_steps() >= options.max_steps;
  };
  // A checkpoint is written only at an accumulation boundary (the engine's rule); one that falls
  // due inside a window waits for its end. Its tag names the step, so one step saves once.
  const bool saving = !options.save_dir.empty();
  int64_t last_saved_step = options.resume ? engine.global_steps() : -1;
  bool save_pending = false;
  auto save = [&](int64_t epoch, int64_t next_batch, double loss_sum) {
    save_pending = false;
    if (engine.global_steps() == last_saved_step) return;
    std::vector<double> sums(size_t(world.size()), 0.0);
    sums[size_t(world.rank())] = loss_sum;  // exact: every other term is zero
    Position saved{epoch, next_batch, sum_over_ranks(world, sums), world.size(), micro_batch};
    std::string tag_dir =
        engine.save_checkpoint(options.save_dir, "", client_state(saved, options, dataset.name));
    last_saved_step = engine.global_steps();
    if (leader) {
      fmt::print("{}saved checkpoint {} (epoch {}, next batch {})\n", on_terminal ? "\r" : "",
                 tag_dir, epoch, next_batch);
      std::fflush(stdout);
    }
  };

  auto run_start = std::chrono::steady_clock::now();
  bool stopped = false;  // by --max-steps
  for (int64_t epoch = position.epoch; epoch <= options.epochs && !stopped; ++epoch) {
    loader.set_epoch(epoch - 1);
    engine.train();
    auto epoch_start = std::chrono::steady_clock::now();
    bool resumed_epoch = epoch == position.epoch;
    int64_t first_batch = resumed_epoch ? position.next_batch : 0;
    double loss_sum = resumed_epoch ? position.loss_sums[size_t(world.rank())] : 0.0;
    int64_t batches = loader.num_batches();
    int64_t b = first_batch;
    for (; b < batches; ++b) {
      if (at_boundary() && reached_max_steps()) {
        stopped = true;
        break;
      }
      data::Batch batch = loader.batch(b);
      // The loss is taken in f32 whatever the model's dtype, as mixed-precision training does.
      Tensor loss = cross_entropy(engine.forward(batch.inputs.to(engine.device())).to(DType::f32),
                                  batch.targets.to(engine.device()));
      engine.backward(loss);
      engine.step();
      loss_sum += loss.item();
      if (options.report && at_boundary()) {
        print_reports_in_rank_order(engine, world);  // one full step is done
        return 0;
      }
      if (at_boundary()) {
        bool due = save_pending || (options.save_every_steps > 0 &&
                                    engine.global_steps() % options.save_every_steps == 0);
        // At the epoch's last batch (or the last step) the save waits for the epoch's summary,
        // so that it records the start of the next epoch, which any world size can resume.
        bool last = b + 1 == batches || reached_max_steps();
        if (saving && due && !last) save(epoch, b + 1, loss_sum);
        save_pending = saving && due && last;
        maybe_kill_for_test(world.rank(), engine.global_steps());
      }
      if (on_terminal && (b % 20 == 0 || b + 1 == batches)) {
        fmt::print("\repoch {} [{:5}/{}] loss {:.4f}", epoch, b + 1, batches,
                   loss_sum / double(b + 1));
        std::fflush(stdout);
      }
    }
    if (on_terminal) fmt::print("\r");
    double train_seconds = seconds_since(epoch_start);
    // A run resumed exactly at its stopping point has nothing of this epoch to report.
    if (b > 0 && !(stopped && b == first_batch)) {
      double mean_loss = sum_over_ranks(world, {loss_sum / double(b)})[0] / world.size();
      double accuracy = distributed_accuracy(engine, test_images, test_split.labels, world);
      if (leader) {
        std::string scaling = engine.loss_scaler()
                                  ? fmt::format(", loss scale {:g}, {} skipped steps",
                                                engine.loss_scale(), engine.skipped_steps())
                                  : "";
        std::string stop_note =
            stopped ? fmt::format(" (stopped by --max-steps after batch {} of {})", b, batches)
                    : "";
        fmt::print("epoch {}: loss {:.4f}, test accuracy {:.2f}%, {:.0f} samples/s, {:.1f} s{}{}\n",
                   epoch, mean_loss, 100.0 * accuracy,
                   double((b - first_batch) * micro_batch * world.size()) / train_seconds,
                   seconds_since(epoch_start), scaling, stop_note);
      }
    }
    // At each epoch's end (--save-every epoch, or a due save that waited) and when training
    // ends; only at a boundary, else at the next one.
    bool ends = stopped || epoch == options.epochs;
    if (saving && (options.save_every_steps == 0 || save_pending || ends)) {
      if (at_boundary() && stopped) {
        save(epoch, b, loss_sum);
      } else if (at_boundary()) {
        save(epoch + 1, 0, 0.0);
      } else {
        save_pending = true;
      }
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
  return comm::run_distributed_main(argc, argv, [&](comm::MpiRuntime& runtime) {
    DeepSpeedArgs deepspeed = take_deepspeed_args(argc, argv);
    TrainOptions options = parse(argc, argv);
    return train(runtime, deepspeed, options);
  });
}
