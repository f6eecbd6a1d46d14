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
// Flags: `mnist_train --help` (apps/mnist_train_options.h). Every output path is checked before
// the data is read (apps/output_paths.h), so a path that cannot be written ends the job before
// its first step rather than after training.
// --device cuda trains on GPU cuda:(local rank modulo the GPU count): ranks with a GPU of their
// own exchange gradients through NCCL, ranks sharing a GPU through MPI (--dist_backend).
// After each optimizer step (and any checkpoint of it) the fault point "train_step_end" is
// reached (dist/fault_points.h), where the crash tests' build of this app may kill a rank.
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <optional>

#include "apps/cli_flags.h"
#include "apps/distributed_metrics.h"
#include "apps/mnist_common.h"
#include "apps/mnist_compression.h"
#include "apps/mnist_resume.h"
#include "apps/mnist_train_options.h"
#include "apps/output_paths.h"
#include "apps/read_command_line.h"
#include "apps/training_device.h"
#include "autograd/checkpointing_options.h"
#include "core/backend.h"
#include "core/factory.h"
#include "core/generator.h"
#include "core/parallel.h"
#include "core/safetensors.h"
#include "data/dataloader.h"
#include "dist/checkpoint_files.h"
#include "dist/fault_points.h"
#include "dist/initialize.h"

using namespace zt;

namespace {

using apps::TrainOptions;

// Plain data parallelism with the program's optimizer (--optimizer, --lr, --weight-decay) when no
// ds_config.json is given: --batch-size samples per rank per step, and the learning rate warmed up
// linearly over 100 steps from 0 to --lr, then decayed linearly to 0 at the last step (measured on
// Fashion-MNIST: +1 point for the MLP after 3 epochs over a constant rate).
dist::Config default_config(const TrainOptions& options, int world_size, int64_t total_steps) {
  if (options.max_steps > 0) total_steps = std::min(total_steps, options.max_steps);
  // The schedule needs 2 steps at least (its warm-up counts as 2); a 1-step run decays less.
  total_steps = std::max<int64_t>(total_steps, 2);
  std::string text =
      fmt::format(R"({{
    "train_micro_batch_size_per_gpu": {},
    "gradient_accumulation_steps": 1,
    "steps_per_print": 0,
    "scheduler": {{"type": "WarmupDecayLR",
                  "params": {{"warmup_min_lr": 0, "warmup_max_lr": {}, "warmup_num_steps": {},
                             "warmup_type": "linear", "total_num_steps": {}}}}},
    "zero_optimization": {{"stage": 0}}
  }})",
                  options.batch_size, options.lr, std::min<int64_t>(100, total_steps), total_steps);
  return dist::parse_config(text, "mnist_train defaults", world_size, nullptr);
}

// The training split of MNIST and of Fashion-MNIST alike: the config's "auto" values are filled
// before the data is read (so that the config's errors come first).
constexpr int64_t kTrainImages = 60'000;

int64_t total_steps_of(const TrainOptions& options, int world_size) {
  int64_t samples_per_rank = (kTrainImages + world_size - 1) / world_size;
  int64_t steps =
      options.epochs * ((samples_per_rank + options.batch_size - 1) / options.batch_size);
  return options.max_steps > 0 ? std::min(steps, options.max_steps) : steps;
}

// What mnist_train's flags say, for the config's "auto" values (as the Hugging Face integration
// fills them from its training arguments): its schedule warms up over 100 steps at most, and
// it does not clip.
dist::ProgramValues program_values(const TrainOptions& options, int world_size) {
  int64_t total_steps = std::max<int64_t>(total_steps_of(options, world_size), 2);
  return {.micro_batch_size = options.batch_size,
          .gradient_accumulation_steps = 1,
          .lr = options.lr,
          .weight_decay = options.weight_decay,
          .betas = std::array<double, 2>{0.9, 0.999},
          .eps = 1e-8,
          .gradient_clipping = 0.0,
          .warmup_steps = std::min<int64_t>(100, total_steps),
          .total_steps = total_steps,
          .fp16 = false,
          .bf16 = false};
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// One run of mnist_train: the engine over the model, the data, where training stands, and the
// checkpoints it saves. Built in the order the run needs (the config's errors before any data
// is read, the seed before the model's initialisation), then run() trains epoch by epoch.
class TrainingRun {
 public:
  TrainingRun(comm::MpiRuntime& runtime, const TrainOptions& options)
      : options_(options), world_(runtime.world()), leader_(world_.rank() == 0) {
    std::optional<dist::Config> file_config = read_config_file(options.deepspeed);
    check_output_paths();
    dataset_ = apps::choose_dataset(options.dataset, options.data_dir);
    if (leader_) {
      fmt::print("dataset: {} from {}\n", dataset_.name == "fashion" ? "Fashion-MNIST" : "MNIST",
                 dataset_.dir);
    }
    if (options.resume)
      resume_file_ = apps::check_resume_checkpoint(options.save_dir, options.model, dataset_.name);
    load_data();
    int64_t samples_per_rank = (train_set_->size() + world_.size() - 1) / world_.size();
    int64_t steps_per_epoch = (samples_per_rank + options.batch_size - 1) / options.batch_size;
    config_ = file_config
                  ? *file_config
                  : default_config(options, world_.size(), options.epochs * steps_per_epoch);
    config_ = apps::with_program_optimizer(
        std::move(config_),
        dist::client_optimizer(options.optimizer, options.lr, options.weight_decay),
        leader_ && file_config);
    config_ = apps::with_trace_flags(std::move(config_), options.trace);
    loader_.emplace(*train_set_, data::DataLoaderOptions{
                                     .batch_size = config_.train_micro_batch_size_per_gpu,
                                     .shuffle = true,
                                     .seed = options.seed,
                                     .distributed = data::DistributedSamplerOptions{
                                         .num_replicas = world_.size(), .rank = world_.rank()}});
    compression_.emplace(options.compression_config, config_, options.teacher,
                         compress::DistillationOptions{.alpha = options.distill_alpha,
                                                       .temperature = options.distill_temperature});
    manual_seed(options.seed);
    build_engine(runtime, options.deepspeed.dist_backend);
    compression_->attach(*engine_);
    print_startup();
  }

  // Trains until the last epoch or --max-steps, then reports and saves the model.
  int run() {
    on_terminal_ = leader_ && isatty(fileno(stdout)) && config_.steps_per_print == 0;
    saving_ = !options_.save_dir.empty();
    last_saved_step_ = options_.resume ? engine_->global_steps() : -1;
    auto run_start = std::chrono::steady_clock::now();
    bool stopped = false;  // by --max-steps
    for (int64_t epoch = position_.epoch; epoch <= options_.epochs && !stopped; ++epoch) {
      std::optional<EpochProgress> progress = run_epoch(epoch);
      if (!progress) return 0;  // --report: one step was enough
      stopped = progress->stopped;
      report_epoch(epoch, *progress);
      save_at_epoch_end(epoch, *progress);
    }
    finish(run_start);
    return 0;
  }

 private:
  // How far one epoch got: batches [first_batch, end_batch) of `batches` ran.
  struct EpochProgress {
    int64_t first_batch = 0, end_batch = 0, batches = 0;
    double loss_sum = 0.0;  // this rank's sum of batch losses over the whole epoch so far
    bool stopped = false;   // by --max-steps
    std::chrono::steady_clock::time_point start;
  };

  // A config file is read first, so that its errors come before any data is loaded. Every rank
  // reads the same file; rank 0 prints its warnings once.
  std::optional<dist::Config> read_config_file(const DeepSpeedArgs& deepspeed) {
    if (deepspeed.deepspeed_config.empty()) return std::nullopt;
    return apps::load_config_file(deepspeed.deepspeed_config, world_.size(), leader_,
                                  program_values(options_, world_.size()));
  }

  // Where the run will write, checked by the ranks that write there: rank 0 the model file
  // (which --report never writes), every rank its files in the checkpoint folder.
  void check_output_paths() const {
    if (leader_ && !options_.report) apps::check_output_file("--save", options_.save_path);
    if (!options_.save_dir.empty()) apps::check_output_folder("--save-dir", options_.save_dir);
  }

  void load_data() {
    data::MnistSplit train_split = data::load_mnist_split(dataset_.dir, "train");
    test_split_ = data::load_mnist_split(dataset_.dir, "t10k");
    Tensor train_images =
        data::normalize_images(train_split.images, dataset_.mean, dataset_.stddev);
    test_images_ = data::normalize_images(test_split_.images, dataset_.mean, dataset_.stddev);
    train_set_.emplace(train_images, train_split.labels);
  }

  void build_engine(comm::MpiRuntime& runtime, DistBackend dist_backend) {
    const int64_t checkpoints = config_.activation_checkpointing.number_checkpoints;
    if (leader_ && checkpoints > 0) {
      int64_t stages = options_.model == "cnn" ? apps::MnistCnn::kStages : apps::MnistMlp::kStages;
      fmt::print(
          "activation checkpointing: the {}'s {} layer stages run in {} checkpointed "
          "segments (activation_checkpointing.number_checkpoints {}), recomputed in "
          "backward\n",
          options_.model, stages, std::min(checkpoints, stages), checkpoints);
    }
    std::shared_ptr<nn::Module> model = apps::make_mnist_model(options_.model, checkpoints);
    if (options_.width != 1.0) {  // a narrower CNN (the students of distillation)
      auto narrow = std::make_shared<apps::MnistCnn>(apps::scaled_widths(options_.width));
      narrow->checkpoint_segments = checkpoints;
      model = narrow;
    }
    compression_->prepare_model(*model, options_.seed);
    model->to(apps::training_device(options_.device, runtime));
    initialized_ = initialize(runtime, config_, model, dist_backend);
    engine_ = initialized_.engine.get();
    micro_batch_ = config_.train_micro_batch_size_per_gpu;
    position_ = apps::Position{.loss_sums = std::vector<double>(size_t(world_.size()), 0.0),
                               .world_size = world_.size(),
                               .micro_batch_size = micro_batch_};
    if (options_.resume) {
      // Parameters, optimizer, schedule, loss scaler, counters and each rank's generator
      // (dropout) come back in the engine; the data order is a function of (seed, epoch), so
      // the position is all the rest.
      position_ = apps::position_from(engine_->load_checkpoint(options_.save_dir), resume_file_,
                                      world_.size(), micro_batch_);
    }
  }

  void print_startup() const {
    if (!leader_) return;
    fmt::print(
        "model: {} ({} parameters, {}), {} ranks x {} threads, ZeRO stage {}, {} lr {}, batch {} "
        "({} per rank x {} accumulation steps x {} ranks), on {}, ZeRO traffic over {}\n",
        options_.model, engine_->module().num_parameters(),
        engine_->mixed_precision()
            ? fmt::format("{} with fp32 master weights", dtype_name(engine_->model_dtype()))
            : "f32",
        world_.size(), num_threads(), engine_->zero_stage(), config_.optimizer.type,
        config_.optimizer.lr, config_.train_batch_size, config_.train_micro_batch_size_per_gpu,
        config_.gradient_accumulation_steps, world_.size(), engine_->device().str(),
        engine_->data_parallel_communicator().name());
    if (options_.resume) {
      fmt::print("resumed from {} at epoch {}, batch {} (optimizer step {})\n", resume_file_,
                 position_.epoch, position_.next_batch, engine_->global_steps());
    }
  }

  bool at_boundary() const {
    return engine_->micro_steps() % config_.gradient_accumulation_steps == 0;
  }
  bool reached_max_steps() const {
    return options_.max_steps > 0 && engine_->global_steps() >= options_.max_steps;
  }

  // Runs the epoch's batches from where training stands; nullopt when --report ended the run.
  std::optional<EpochProgress> run_epoch(int64_t epoch) {
    loader_->set_epoch(epoch - 1);
    engine_->train();
    EpochProgress progress;
    progress.start = std::chrono::steady_clock::now();
    bool resumed_epoch = epoch == position_.epoch;
    progress.first_batch = resumed_epoch ? position_.next_batch : 0;
    progress.loss_sum = resumed_epoch ? position_.loss_sums[size_t(world_.rank())] : 0.0;
    progress.batches = loader_->num_batches();
    int64_t& b = progress.end_batch;
    for (b = progress.first_batch; b < progress.batches; ++b) {
      if (at_boundary() && reached_max_steps()) {
        progress.stopped = true;
        break;
      }
      data::Batch batch = loader_->batch(b);
      // The loss is taken in f32 whatever the model's dtype, as mixed-precision training does.
      Tensor loss =
          compression_->loss(engine_->forward(batch.inputs.to(engine_->device())).to(DType::f32),
                             batch.inputs, batch.targets.to(engine_->device()));
      engine_->backward(loss);
      engine_->step();
      progress.loss_sum += loss.item();
      if (options_.report && at_boundary()) {
        apps::print_reports_in_rank_order(*engine_, world_);  // one full step is done
        return std::nullopt;
      }
      if (at_boundary()) after_step(epoch, progress);
      if (on_terminal_ && (b % 20 == 0 || b + 1 == progress.batches)) {
        fmt::print("\repoch {} [{:5}/{}] loss {:.4f}", epoch, b + 1, progress.batches,
                   progress.loss_sum / double(b + 1));
        std::fflush(stdout);
      }
    }
    if (on_terminal_) fmt::print("\r");
    return progress;
  }

  // At an accumulation boundary: a checkpoint if one is due. At the epoch's last batch (or the
  // last step) the save waits for the epoch's summary, so that it records the start of the
  // next epoch, which any world size can resume.
  void after_step(int64_t epoch, const EpochProgress& progress) {
    int64_t b = progress.end_batch;
    bool due = save_pending_ || (options_.save_every_steps > 0 &&
                                 engine_->global_steps() % options_.save_every_steps == 0);
    bool last = b + 1 == progress.batches || reached_max_steps();
    if (saving_ && due && !last) save(epoch, b + 1, progress.loss_sum);
    save_pending_ = saving_ && due && last;
    dist::reach_fault_point("train_step_end", world_.rank(), engine_->global_steps());
  }

  void report_epoch(int64_t epoch, const EpochProgress& progress) {
    double train_seconds = seconds_since(progress.start);
    int64_t b = progress.end_batch;
    // A run resumed exactly at its stopping point has nothing of this epoch to report.
    if (b == 0 || (progress.stopped && b == progress.first_batch)) return;
    double mean_loss =
        apps::sum_over_ranks(world_, {progress.loss_sum / double(b)})[0] / world_.size();
    double accuracy =
        apps::distributed_accuracy(*engine_, test_images_, test_split_.labels, world_);
    // The validation curve beside the engine's training events (csv_monitor, tensorboard).
    engine_->write_monitor_event("Test/Samples/test_accuracy", accuracy);
    engine_->write_monitor_event("Train/Samples/epoch_mean_loss", mean_loss);
    if (!leader_) return;
    std::string scaling = engine_->loss_scaler()
                              ? fmt::format(", loss scale {:g}, {} skipped steps",
                                            engine_->loss_scale(), engine_->skipped_steps())
                              : "";
    std::string stop_note =
        progress.stopped
            ? fmt::format(" (stopped by --max-steps after batch {} of {})", b, progress.batches)
            : "";
    fmt::print("epoch {}: loss {:.4f}, test accuracy {:.2f}%, {:.0f} samples/s, {:.1f} s{}{}\n",
               epoch, mean_loss, 100.0 * accuracy,
               double((b - progress.first_batch) * micro_batch_ * world_.size()) / train_seconds,
               seconds_since(progress.start), scaling, stop_note);
  }

  // At each epoch's end (--save-every epoch, or a due save that waited) and when training
  // ends; only at a boundary, else at the next one.
  void save_at_epoch_end(int64_t epoch, const EpochProgress& progress) {
    bool ends = progress.stopped || epoch == options_.epochs;
    if (!saving_ || !(options_.save_every_steps == 0 || save_pending_ || ends)) return;
    if (at_boundary() && progress.stopped) {
      save(epoch, progress.end_batch, progress.loss_sum);
    } else if (at_boundary()) {
      save(epoch + 1, 0, 0.0);
    } else {
      save_pending_ = true;
    }
  }

  // A checkpoint is written only at an accumulation boundary (the engine's rule); one that
  // falls due inside a window waits for its end. Its tag names the step, so one step saves once.
  void save(int64_t epoch, int64_t next_batch, double loss_sum) {
    save_pending_ = false;
    if (engine_->global_steps() == last_saved_step_) return;
    std::vector<double> sums(size_t(world_.size()), 0.0);
    sums[size_t(world_.rank())] = loss_sum;  // exact: every other term is zero
    apps::Position saved{epoch, next_batch, apps::sum_over_ranks(world_, sums), world_.size(),
                         micro_batch_};
    std::string tag_dir = engine_->save_checkpoint(
        options_.save_dir, "", apps::client_state(saved, options_.model, dataset_.name));
    last_saved_step_ = engine_->global_steps();
    if (leader_) {
      fmt::print("{}saved checkpoint {} (epoch {}, next batch {})\n", on_terminal_ ? "\r" : "",
                 tag_dir, epoch, next_batch);
      std::fflush(stdout);
    }
  }

  void finish(std::chrono::steady_clock::time_point run_start) {
    apps::print_reports_in_rank_order(*engine_, world_);
    if (leader_ && config_.activation_checkpointing.profile) {
      CheckpointingProfile profile = checkpointing_profile();
      fmt::print("activation checkpointing profile (rank 0): {} recomputations, {:.3f} s\n",
                 profile.recompute_count, profile.recompute_seconds);
    }
    NamedTensors state = engine_->consolidated_state_dict();
    const double compressed_accuracy =
        compression_->compressing()
            ? apps::distributed_accuracy(*engine_, test_images_, test_split_.labels, world_)
            : 0.0;
    if (!leader_) return;
    // Saved in f32 whatever the training dtype, so mnist_eval and PyTorch load it as they are.
    for (auto& [name, tensor] : state) tensor = tensor.to(DType::f32);
    save_safetensors(options_.save_path, state,
                     {{"model", options_.model}, {"dataset", dataset_.name}});
    fmt::print("saved {} ({:.1f} s in all)\n", options_.save_path, seconds_since(run_start));
    compression_->finish(*engine_, state, options_.save_path, compressed_accuracy, test_images_,
                         test_split_.labels);
  }

  const TrainOptions& options_;
  comm::MpiCommunicator& world_;
  const bool leader_;
  apps::DatasetChoice dataset_;
  std::string resume_file_;  // --resume: the model file of the checkpoint resumed
  data::MnistSplit test_split_;
  Tensor test_images_;
  std::optional<data::TensorDataset> train_set_;
  std::optional<data::DataLoader> loader_;  // reads *train_set_
  dist::Config config_;
  Initialized initialized_;
  dist::Engine* engine_ = nullptr;
  std::optional<apps::MnistCompression> compression_;  // compression_training and --teacher
  int64_t micro_batch_ = 1;
  apps::Position position_;
  bool on_terminal_ = false;  // a progress line (it would interleave with the engine's log)
  bool saving_ = false;
  int64_t last_saved_step_ = -1;
  bool save_pending_ = false;
};

}  // namespace

// --explain-config: the config doctor's prediction for the config and model a run would train
// (no data is read, nothing is trained).
int explain_config(comm::MpiRuntime& runtime, const TrainOptions& options) {
  const int world = runtime.world().size();
  const bool leader = runtime.world().rank() == 0;
  dist::Config config = options.deepspeed.deepspeed_config.empty()
                            ? default_config(options, world, 2)
                            : apps::load_config_file(options.deepspeed.deepspeed_config, world,
                                                     leader, program_values(options, world));
  config = apps::with_program_optimizer(
      std::move(config),
      dist::client_optimizer(options.optimizer, options.lr, options.weight_decay), false);
  std::shared_ptr<nn::Module> model =
      options.width != 1.0 ? std::make_shared<apps::MnistCnn>(apps::scaled_widths(options.width))
                           : apps::make_mnist_model(options.model, 0);
  if (!leader) return 0;
  if (options.model != "cnn") return apps::explain_config(options.doctor, config, *model, world);
  // The CNN's activations from its widths: checkpointed, its stages run in number_checkpoints
  // segments (every stage its own when the doctor suggests checkpointing).
  const int64_t segments = config.activation_checkpointing.number_checkpoints;
  const dist::MnistCnnShape widths = [&] {
    apps::MnistCnnWidths w =
        options.width != 1.0 ? apps::scaled_widths(options.width) : apps::MnistCnnWidths{};
    return dist::MnistCnnShape{w.conv1, w.conv2, w.fc1};
  }();
  const int64_t element_bytes = config.fp16.enabled || config.bf16.enabled ? 2 : 4;
  auto ops = [=](bool checkpointed) {
    int64_t groups = checkpointed ? (segments > 0 ? segments : apps::MnistCnn::kStages) : 0;
    return dist::mnist_cnn_activations(widths, element_bytes, groups);
  };
  return apps::explain_config(options.doctor, config, *model, world, ops, segments > 0,
                              segments > 0 ? segments : apps::MnistCnn::kStages);
}

int main(int argc, char** argv) {
  TrainOptions options;
  std::optional<int> status = apps::read_command_line(
      argc, argv, apps::train_command_line(),
      [&](const apps::Flags& flags) { options = apps::read_train_options(flags); });
  if (status) return *status;
  return comm::run_distributed_main(argc, argv, [&](comm::MpiRuntime& runtime) {
    if (options.doctor.explain) return explain_config(runtime, options);
    return TrainingRun(runtime, options).run();
  });
}
