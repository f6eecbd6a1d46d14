// Trains a GPT on byte-level text with the ZeroTrain engine, on one process or many:
// `mpirun -np 8 ./apps/gpt_train --deepspeed --deepspeed_config configs/gpt_stage3_bf16.json`.
// The text (Debian's fortunes by default) is tokenised once into a token file under --data-dir
// (rank 0 prepares it when it is missing; every rank then maps it); each optimizer step reads,
// per rank and micro-step, a batch of windows that is a pure function of (seed, step, rank), so
// --resume continues with exactly the data an uninterrupted run would have read. Rank 0 prints
// the training loss and tokens/s every --log-interval steps and the validation loss (the same
// held-out windows each time) every --eval-interval steps, saves engine checkpoints with the
// model's shape in their client state, and writes the trained model for gpt_generate.
// Flags: `gpt_train --help` (apps/gpt_train_options.h); the configs it builds:
// apps/gpt_train_config.h; --explain-config: apps/gpt_train_explain.h; through the pipeline
// engine: apps/gpt_train_pipeline.h.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "apps/device_memory_limit.h"
#include "apps/distributed_metrics.h"
#include "apps/gpt_compression.h"
#include "apps/gpt_model_files.h"
#include "apps/gpt_train_config.h"
#include "apps/gpt_train_explain.h"
#include "apps/gpt_train_options.h"
#include "apps/gpt_train_pipeline.h"
#include "apps/output_paths.h"
#include "apps/read_command_line.h"
#include "apps/training_device.h"
#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "core/generator.h"
#include "core/parallel.h"
#include "data/text_token_file.h"
#include "data/text_windows.h"
#include "dist/checkpoint_files.h"
#include "dist/initialize.h"
#include "pipeline/schedule.h"

using namespace zt;

namespace {

using apps::GptTrainOptions;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The mean cross entropy of next-token prediction over a batch, taken in f32 whatever the
// model's dtype, as mixed-precision training does.
Tensor next_token_loss(dist::Engine& engine, const data::TokenBatch& batch) {
  Tensor logits = engine.forward(batch.inputs.to(engine.device()));
  int64_t rows = batch.inputs.numel();
  return cross_entropy(logits.to(DType::f32).reshape({rows, logits.size(-1)}),
                       batch.targets.to(engine.device()).reshape({rows}));
}

// Rank 0 prepares the token file when it is missing (written under a temporary name and
// renamed, so no rank ever maps half a file); then every rank maps it into `tokens`.
void open_token_file(const GptTrainOptions& options, comm::Communicator& world,
                     std::optional<data::TokenFile>& tokens) {
  const bool leader = world.rank() == 0;
  std::string token_path = (std::filesystem::path(options.data_dir) /
                            fmt::format("fortunes-bytes-val{}.tokens", options.validation_every))
                               .string();
  if (leader && !std::filesystem::exists(token_path)) {
    apps::check_output_folder("--data-dir", options.data_dir);
    auto start = Clock::now();
    data::TokenFileCounts counts =
        data::prepare_fortunes_token_file(options.text_dir, token_path, options.validation_every);
    fmt::print(
        "prepared {} from {}: {} training tokens ({} documents), {} validation tokens ({} "
        "documents), {:.1f} s\n",
        token_path, options.text_dir, counts.train_tokens, counts.train_documents,
        counts.validation_tokens, counts.validation_documents, seconds_since(start));
  }
  world.barrier();
  tokens.emplace(token_path);
  if (tokens->vocab_size() > options.model.vocab_size) {
    throw std::runtime_error(fmt::format("{}: vocabulary {} is larger than the model's {}",
                                         token_path, tokens->vocab_size(),
                                         options.model.vocab_size));
  }
}

class GptTrainingRun {
 public:
  GptTrainingRun(comm::MpiRuntime& runtime, const GptTrainOptions& options)
      : options_(options), world_(runtime.world()), leader_(world_.rank() == 0) {
    std::optional<dist::Config> file_config = read_config_file();
    if (options.model.eager_attention && file_config && file_config->sparse_attention) {
      throw std::invalid_argument(fmt::format(
          "--attention-impl eager: dense attention only, but {} has a sparse_attention block",
          file_config->source_name));
    }
    check_output_paths();
    open_tokens();
    apps::limit_device_memory(apps::training_device(options.device, runtime),
                              options.device_memory_mib);
    config_ = file_config ? *file_config : apps::default_config(options, world_.size());
    if (options.resume) apps::check_resume_checkpoint(options.save_dir, trained_model());
    config_ = apps::with_program_optimizer(std::move(config_), apps::program_optimizer(options),
                                           leader_ && file_config);
    config_ = apps::with_trace_flags(std::move(config_), options.trace);
    micro_batch_ = config_.train_micro_batch_size_per_gpu;
    make_samplers();
    manual_seed(options.seed);
    build_engine(runtime);
    print_startup();
  }

  int run() {
    auto run_start = Clock::now();
    double train_seconds = 0.0;
    int64_t first_step = engine_->global_steps();
    while (engine_->global_steps() < options_.stop_step) {
      auto step_start = Clock::now();
      train_one_step();
      train_seconds += seconds_since(step_start);
      interval_seconds_ += seconds_since(step_start);
      int64_t step = engine_->global_steps();
      if (step % options_.log_interval == 0) log_training(step);
      bool last = step == options_.stop_step;
      bool evaluate_now = step % options_.eval_interval == 0 || last;
      if (evaluate_now) report_validation(step);
      bool save_now = options_.save_every > 0 ? step % options_.save_every == 0 : evaluate_now;
      if (!options_.save_dir.empty() && (save_now || last)) save_checkpoint(step);
    }
    if (first_step >= options_.stop_step) report_validation(engine_->global_steps());
    // Before the consolidated state dict, whose gather would add a whole model to the peak.
    double peak_mib = apps::peak_device_mib(engine_->device(), world_);
    finish(run_start, train_seconds, engine_->global_steps() - first_step, peak_mib);
    return 0;
  }

 private:
  std::optional<dist::Config> read_config_file() {
    if (options_.deepspeed.deepspeed_config.empty()) return std::nullopt;
    return apps::load_config_file(options_.deepspeed.deepspeed_config, world_.size(), leader_,
                                  apps::program_values(options_));
  }

  // Rank 0 writes the model file; every rank writes its files in the checkpoint folder.
  void check_output_paths() const {
    if (leader_ && !options_.save_path.empty())
      apps::check_output_file("--save", options_.save_path);
    if (!options_.save_dir.empty()) apps::check_output_folder("--save-dir", options_.save_dir);
    if (leader_ && !options_.save_16bit_model.empty())
      apps::check_output_file("--save-16bit-model", options_.save_16bit_model);
  }

  // Every rank takes part (the gather); the engine has printed DeepSpeed's message when it
  // declined, and the run then ends with an error, since the file was asked for.
  void save_16bit_model() {
    const std::filesystem::path path(options_.save_16bit_model);
    if (!engine_->save_16bit_model(path.parent_path().string(), path.filename().string()))
      throw std::runtime_error(fmt::format(
          "--save-16bit-model {}: not written: at ZeRO stage 3 the weights are gathered only "
          "with zero_optimization.stage3_gather_16bit_weights_on_model_save true",
          options_.save_16bit_model));
    if (leader_) fmt::print("saved {} (engine.save_16bit_model)\n", options_.save_16bit_model);
  }

  void open_tokens() { open_token_file(options_, world_, tokens_); }

  // The flags' model with the config's sparse_attention block: what is built, checkpointed and
  // saved (so gpt_generate attends as training did).
  models::GPTConfig trained_model() const {
    models::GPTConfig model = options_.model;
    model.sparse_attention = config_.sparse_attention;
    return model;
  }

  void make_samplers() {
    data::TokenWindowOptions window{.batch_size = micro_batch_,
                                    .block_size = options_.model.block_size,
                                    .seed = options_.seed,
                                    .num_replicas = world_.size(),
                                    .rank = world_.rank()};
    train_windows_.emplace(tokens_->train(), window);
    validation_windows_.emplace(tokens_->validation(), window);
    eval_iters_ = std::min(options_.eval_iters, validation_windows_->batches_per_epoch());
  }

  void build_engine(comm::MpiRuntime& runtime) {
    // ds_config.json's sparse_attention block switches every layer to block-sparse attention.
    models::GPTConfig model_config = trained_model();
    auto model = std::make_shared<models::GPT>(model_config);
    model->set_gradient_checkpointing(apps::checkpointing_of(config_));
    compression_.emplace(apps::GptCompressionOptions{options_.compression_config,
                                                     options_.teacher,
                                                     {.alpha = options_.distill_alpha,
                                                      .temperature = options_.distill_temperature}},
                         config_, model_config);
    compression_->prepare_student(*model, options_.seed, leader_);
    model->to(apps::training_device(options_.device, runtime));
    initialized_ = initialize(runtime, config_, model, options_.deepspeed.dist_backend,
                              weight_decay_groups(*model));
    engine_ = initialized_.engine.get();
    compression_->attach(*engine_);
    if (options_.resume) engine_->load_checkpoint(options_.save_dir);
  }

  void print_startup() const {
    if (!leader_) return;
    const models::GPTConfig& model = options_.model;
    fmt::print(
        "model: {} {} layers, {} heads, width {}, context {} ({} parameters, {}), {} ranks x {} "
        "threads, ZeRO stage {}, {} lr {}, batch {} windows ({} per rank x {} accumulation steps "
        "x {} ranks) = {} tokens a step, on {}\n",
        models::architecture_name(model.architecture), model.n_layer, model.n_head, model.n_embd,
        model.block_size, engine_->module().num_parameters(),
        engine_->mixed_precision()
            ? fmt::format("{} with fp32 master weights", dtype_name(engine_->model_dtype()))
            : "f32",
        world_.size(), num_threads(), engine_->zero_stage(), config_.optimizer.type,
        config_.optimizer.lr, config_.train_batch_size, micro_batch_,
        config_.gradient_accumulation_steps, world_.size(), tokens_per_step(),
        engine_->device().str());
    fmt::print(
        "data: {} training tokens ({} windows, {} steps an epoch), validation {} batches of {} "
        "windows per rank from {} tokens\n",
        tokens_->train().size(), train_windows_->windows_per_epoch(),
        train_windows_->batches_per_epoch() / config_.gradient_accumulation_steps, eval_iters_,
        micro_batch_, tokens_->validation().size());
    if (options_.resume)
      fmt::print("resumed from {} at step {}\n", options_.save_dir, engine_->global_steps());
    const dist::SchedulerConfig& schedule = config_.scheduler;
    if (schedule.type == "WarmupDecayLR" && schedule.total_num_steps != options_.steps) {
      fmt::print(stderr,
                 "warning: the config's schedule decays to 0 at step {}, but --steps is {}\n",
                 schedule.total_num_steps, options_.steps);
    }
  }

  int64_t tokens_per_step() const { return config_.train_batch_size * options_.model.block_size; }

  // The micro-steps of one optimizer step; micro-step m of the run reads batch m of this rank.
  void train_one_step() {
    engine_->train();
    int64_t accumulation = config_.gradient_accumulation_steps;
    int64_t first_micro_step = engine_->global_steps() * accumulation;
    for (int64_t micro = 0; micro < accumulation; ++micro) {
      Tensor loss = compression_->loss(*engine_, train_windows_->batch(first_micro_step + micro));
      engine_->backward(loss);
      engine_->step();
      interval_loss_sum_ += loss.item();
      ++interval_micro_steps_;
    }
  }

  void log_training(int64_t step) {
    double mean_loss = apps::sum_over_ranks(world_, {interval_loss_sum_})[0] /
                       double(interval_micro_steps_ * world_.size());
    int64_t steps = interval_micro_steps_ / config_.gradient_accumulation_steps;
    if (leader_) {
      std::string scaling =
          engine_->loss_scaler() ? fmt::format(", loss scale {:g}", engine_->loss_scale()) : "";
      fmt::print("step {}/{}: loss {:.4f}, lr {:.3g}, {:.0f} tokens/s{}\n", step, options_.steps,
                 mean_loss, engine_->get_lr(),
                 double(steps * tokens_per_step()) / interval_seconds_, scaling);
      std::fflush(stdout);
    }
    interval_loss_sum_ = 0.0;
    interval_micro_steps_ = 0;
    interval_seconds_ = 0.0;
  }

  // The mean loss over the same eval_iters_ batches of held-out windows on every rank. Every
  // rank runs the same number of forwards, as stage 3's gathers need.
  double validation_loss() {
    NoGradGuard no_grad;
    engine_->eval();
    double loss_sum = 0.0;
    for (int64_t batch = 0; batch < eval_iters_; ++batch)
      loss_sum += next_token_loss(*engine_, validation_windows_->batch(batch)).item();
    engine_->train();
    return apps::sum_over_ranks(world_, {loss_sum})[0] / double(eval_iters_ * world_.size());
  }

  void report_validation(int64_t step) {
    double loss = validation_loss();
    last_validation_loss_ = loss;
    if (leader_) {
      fmt::print("step {}: validation loss {:.4f}\n", step, loss);
      std::fflush(stdout);
    }
  }

  void save_checkpoint(int64_t step) {
    if (step == last_saved_step_) return;
    nlohmann::json client_state = {{"step", step},
                                   {"metadata", apps::gpt_metadata(trained_model())}};
    std::string tag_dir = engine_->save_checkpoint(options_.save_dir, "", client_state);
    last_saved_step_ = step;
    if (leader_) fmt::print("saved checkpoint {}\n", tag_dir);
  }

  void finish(Clock::time_point run_start, double train_seconds, int64_t steps_run,
              double peak_mib) {
    NamedTensors state = engine_->consolidated_state_dict();
    if (!options_.save_16bit_model.empty()) save_16bit_model();
    if (leader_ && steps_run > 0) {
      fmt::print(
          "trained {} steps in {:.1f} s: {:.0f} tokens/s; validation loss {:.4f}; peak device "
          "memory {:.2f} MiB (the largest rank's){}\n",
          steps_run, train_seconds, double(steps_run * tokens_per_step()) / train_seconds,
          last_validation_loss_, peak_mib,
          options_.device_memory_mib > 0.0
              ? fmt::format(", within --device-memory-mib {:g}", options_.device_memory_mib)
              : "");
    }
    if (!leader_ || options_.save_path.empty()) return;
    // f32 whatever the training dtype; the tied head stored once, under the embedding's name as
    // in Hugging Face's files, with {"lm_head.weight": that name} in the metadata as
    // safetensors.torch.save_model records a tied name.
    std::string embedding_name = options_.model.architecture == models::Architecture::gpt2
                                     ? "wte.weight"
                                     : "model.embed_tokens.weight";
    NamedTensors saved;
    for (auto& [name, tensor] : state) {
      if (options_.model.tie_word_embeddings && name == "lm_head.weight") continue;
      saved.emplace_back(name, tensor.to(DType::f32));
    }
    SafetensorsMetadata metadata = apps::gpt_metadata(trained_model());
    metadata["format"] = "pt";
    if (options_.model.tie_word_embeddings) metadata["lm_head.weight"] = embedding_name;
    save_safetensors(options_.save_path, saved, metadata);
    fmt::print("saved {} ({:.1f} s in all)\n", options_.save_path, seconds_since(run_start));
    compression_->finish(state, trained_model(), engine_->global_steps(), options_.save_path,
                         validation_windows_->batch(0));
  }

  const GptTrainOptions& options_;
  comm::MpiCommunicator& world_;
  const bool leader_;
  std::optional<data::TokenFile> tokens_;
  std::optional<data::TokenWindowSampler> train_windows_, validation_windows_;  // read *tokens_
  int64_t eval_iters_ = 0;
  dist::Config config_;
  int64_t micro_batch_ = 1;
  std::optional<apps::GptCompression> compression_;  // compression_training and --teacher
  Initialized initialized_;
  dist::Engine* engine_ = nullptr;
  double interval_loss_sum_ = 0.0, interval_seconds_ = 0.0;
  int64_t interval_micro_steps_ = 0;
  double last_validation_loss_ = 0.0;
  int64_t last_saved_step_ = -1;
};

}  // namespace

// The GPT through the pipeline engine (apps/gpt_train_pipeline.h) on a pipeline x tensor x
// data grid.
int train_through_pipeline(comm::MpiRuntime& runtime, const GptTrainOptions& options, int pipeline,
                           int tensor) {
  comm::MpiCommunicator& world = runtime.world();
  dist::Config config = apps::grid_config(world, options, pipeline, tensor);
  config = apps::with_trace_flags(std::move(config), options.trace);
  std::optional<data::TokenFile> tokens;
  open_token_file(options, world, tokens);
  return apps::GptPipelineRun(runtime, options, std::move(config), *tokens).run();
}

int main(int argc, char** argv) {
  GptTrainOptions options;
  std::optional<int> status = apps::read_command_line(
      argc, argv, apps::gpt_train_command_line(),
      [&](const apps::Flags& flags) { options = apps::read_gpt_train_options(flags); });
  if (status) return *status;
  if (options.print_schedule) {
    try {
      fmt::print("{}", pipeline::schedule_table({.stages = int(options.pipeline_parallel_size),
                                                 .micro_batches = int(options.micro_batches),
                                                 .chunks = int(options.virtual_stages)}));
    } catch (const std::invalid_argument& error) {
      fmt::print(stderr, "gpt_train: {}\n", error.what());
      return 2;
    }
    return 0;
  }
  return comm::run_distributed_main(argc, argv, [&](comm::MpiRuntime& runtime) {
    const int pipeline = apps::pipeline_size_of(options);
    const int tensor = apps::tensor_size_of(options);
    apps::check_sequence_parallel(options, tensor);
    if (options.doctor.explain && (pipeline > 1 || tensor > 1))
      return apps::explain_gpt_grid(runtime, options, pipeline, tensor);
    if (options.doctor.explain) return apps::explain_gpt_config(runtime, options);
    if (pipeline > 1 || tensor > 1)
      return train_through_pipeline(runtime, options, pipeline, tensor);
    if (!options.load_layers.empty())
      throw std::invalid_argument("--load-layers: needs a pipeline run (--pipeline-parallel-size)");
    return GptTrainingRun(runtime, options).run();
  });
}
