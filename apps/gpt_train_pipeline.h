// gpt_train through the pipeline engine (pipeline/pipeline_engine.h): the GPT cut into
// --pipeline-parallel-size stages (or the config's pipeline.stages), each layer split across
// --tensor-parallel-size ranks (or the config's tensor_parallel.autotp_size), the rest of the
// world on the data axis. Each data replica reads the windows a data-parallel run's rank of the
// same index reads, so a run on a (p, t, d) grid trains on the global batch of a one-stage run
// on d ranks and prints the same losses. Checkpoints are engine checkpoints in DeepSpeed's pipeline
// layout (layer files plus per-stage optimizer states), so --resume continues at any (p, t, d);
// --save joins the stages' weights, shards made whole, into one file.
#pragma once

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "apps/distributed_metrics.h"
#include "apps/gpt_model_files.h"
#include "apps/gpt_train_options.h"
#include "comm/mpi_runtime.h"
#include "comm/process_grid.h"
#include "core/generator.h"
#include "core/safetensors.h"
#include "data/text_token_file.h"
#include "data/text_windows.h"
#include "dist/checkpoint_files.h"
#include "dist/json_comments.h"
#include "models/gpt.h"
#include "pipeline/gpt_layers.h"
#include "pipeline/layer_checkpoint.h"
#include "pipeline/pipeline_engine.h"

namespace zt::apps {

// The config file's pipeline.stages when it is a number, else 0 (absent, "auto" or no file).
inline int64_t config_pipeline_stages(const std::string& path) {
  if (path.empty()) return 0;
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  nlohmann::json root = dist::parse_json_with_comments(text, path);
  if (!root.is_object() || !root.contains("pipeline") || !root["pipeline"].is_object()) return 0;
  const nlohmann::json& stages = root["pipeline"].value("stages", nlohmann::json());
  return stages.is_number_integer() ? stages.get<int64_t>() : 0;
}

// --pipeline-parallel-size, else the config's pipeline.stages, else 1; the two must agree.
inline int pipeline_size_of(const GptTrainOptions& options) {
  const int64_t from_config = config_pipeline_stages(options.deepspeed.deepspeed_config);
  const int64_t from_flag = options.pipeline_parallel_size;
  if (from_flag > 1 && from_config > 0 && from_config != from_flag)
    throw std::invalid_argument(
        fmt::format("--pipeline-parallel-size {} differs from {}'s pipeline.stages {}", from_flag,
                    options.deepspeed.deepspeed_config, from_config));
  return int(from_flag > 1 ? from_flag : std::max<int64_t>(from_config, 1));
}

// Before anything is built: the checkpoint that DIR/latest names must be of this model (its
// client state's metadata, which gpt_train records at every save).
inline void check_resume_checkpoint(const std::string& save_dir, const models::GPTConfig& model) {
  std::string model_file = dist::model_states_file(dist::resolve_tag_dir(save_dir, ""));
  SafetensorsMetadata metadata;
  nlohmann::json state;
  SafetensorsContents contents = load_safetensors(model_file);
  auto found = contents.metadata.find("client_state");
  if (found != contents.metadata.end())
    state = nlohmann::json::parse(found->second, nullptr, false);
  if (state.is_object() && state.contains("metadata") && state["metadata"].is_object()) {
    for (const auto& [key, value] : state["metadata"].items())
      metadata[key] = value.is_string() ? value.get<std::string>() : value.dump();
  }
  check_same_gpt(metadata, model, model_file + ": client_state");
}

// The config file's tensor-parallel size (tensor_parallel.autotp_size, tp_size or tp.tp_size)
// when it is a number above 1, else 0.
inline int64_t config_tensor_parallel_size(const std::string& path) {
  if (path.empty()) return 0;
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  nlohmann::json root = dist::parse_json_with_comments(text, path);
  if (!root.is_object() || !root.contains("tensor_parallel") ||
      !root["tensor_parallel"].is_object())
    return 0;
  const nlohmann::json& block = root["tensor_parallel"];
  int64_t size = 0;
  for (const char* key : {"autotp_size", "tp_size"})
    if (block.contains(key) && block[key].is_number_integer())
      size = std::max(size, block[key].get<int64_t>());
  if (block.contains("tp") && block["tp"].is_object() && block["tp"].contains("tp_size") &&
      block["tp"]["tp_size"].is_number_integer())
    size = std::max(size, block["tp"]["tp_size"].get<int64_t>());
  return size > 1 ? size : 0;
}

// --tensor-parallel-size, else the config's tensor-parallel size, else 1; the two must agree.
inline int tensor_size_of(const GptTrainOptions& options) {
  const int64_t from_config = config_tensor_parallel_size(options.deepspeed.deepspeed_config);
  const int64_t from_flag = options.tensor_parallel_size;
  if (from_flag > 1 && from_config > 0 && from_config != from_flag)
    throw std::invalid_argument(
        fmt::format("--tensor-parallel-size {} differs from {}'s tensor_parallel.autotp_size {}",
                    from_flag, options.deepspeed.deepspeed_config, from_config));
  return int(from_flag > 1 ? from_flag : std::max<int64_t>(from_config, 1));
}

// --sequence-parallel splits the tokens over the tensor group: it needs one of more than one
// rank, and a window (block_size) the group divides.
inline void check_sequence_parallel(const GptTrainOptions& options, int tensor) {
  if (!options.sequence_parallel) return;
  if (tensor < 2)
    throw std::invalid_argument(
        "--sequence-parallel needs --tensor-parallel-size (or tensor_parallel.autotp_size) > 1");
  if (options.model.block_size % tensor != 0)
    throw std::invalid_argument(fmt::format(
        "--sequence-parallel: block_size {} is not divisible by the tensor-parallel size {}",
        options.model.block_size, tensor));
  // The doctor predicts the plain tensor-parallel layout; its numbers would be wrong here.
  if (options.doctor.explain)
    throw std::invalid_argument(
        "--explain-config does not model --sequence-parallel: run it without the flag for the "
        "plain tensor-parallel layout");
}

class GptPipelineRun {
 public:
  // `config` was resolved against the data-parallel size, world / (pipeline x tensor), and
  // names the tensor-parallel size.
  GptPipelineRun(comm::MpiRuntime& runtime, const GptTrainOptions& options, dist::Config config,
                 const data::TokenFile& tokens)
      : options_(options),
        world_(runtime.world()),
        leader_(world_.rank() == 0),
        grid_(world_, comm::factor_world(
                          world_.size(), config.tensor_parallel_size,
                          world_.size() / (config.world_size * config.tensor_parallel_size))),
        config_(std::move(config)) {
    if (options.device != "cpu")
      throw std::invalid_argument("--device cuda: pipeline training runs on the CPU only");
    if (grid_.shape().tensor > 1 && !options.load_layers.empty())
      throw std::invalid_argument(fmt::format(
          "--load-layers: layer checkpoints of tensor-parallel stages (tensor-parallel size {}) "
          "are read by --resume, not --load-layers",
          grid_.shape().tensor));
    if (options.resume) check_resume_checkpoint(options.save_dir, options.model);
    data::TokenWindowOptions window{.batch_size = config_.train_micro_batch_size_per_gpu,
                                    .block_size = options.model.block_size,
                                    .seed = options.seed,
                                    .num_replicas = grid_.shape().data,
                                    .rank = grid_.coordinates().data};
    train_windows_.emplace(tokens.train(), window);
    validation_windows_.emplace(tokens.validation(), window);
    const int64_t micro = config_.gradient_accumulation_steps;
    const int64_t iters = std::min(options.eval_iters, validation_windows_->batches_per_epoch());
    eval_batches_ = (iters + micro - 1) / micro;  // eval_batch() reads m micro-batches
    build_engine();
    print_startup();
  }

  int run() {
    int64_t first_step = steps();
    while (steps() < options_.stop_step) {
      auto start = std::chrono::steady_clock::now();
      const int64_t first_micro = steps() * config_.gradient_accumulation_steps;
      int64_t next = first_micro;
      interval_loss_sum_ +=
          engine_->train_batch([&] { return micro_batch(*train_windows_, next++); });
      interval_seconds_ +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      ++interval_steps_;
      const int64_t step = steps();
      if (step % options_.log_interval == 0) log_training(step);
      const bool last = step == options_.stop_step;
      const bool evaluate_now = step % options_.eval_interval == 0 || last;
      if (evaluate_now) report_validation(step);
      bool save_now = options_.save_every > 0 ? step % options_.save_every == 0 : evaluate_now;
      if (!options_.save_dir.empty() && (save_now || last)) save_checkpoint(step);
    }
    if (first_step >= options_.stop_step) report_validation(steps());
    save_model();
    return 0;
  }

 private:
  int64_t steps() { return engine_->engine().global_steps(); }

  static pipeline::MicroBatch micro_batch(data::TokenWindowSampler& windows, int64_t index) {
    data::TokenBatch batch = windows.batch(index);
    return {batch.inputs, batch.targets};
  }

  // Every rank builds the whole GPT from the seed, as a one-process run does, and each stage
  // keeps its part of its weights: the same initial model whatever the number of stages.
  void build_engine() {
    manual_seed(options_.seed);
    models::GPT whole(options_.model);
    NamedTensors initial = whole.named_parameters();
    const bool split = grid_.shape().tensor > 1;
    engine_ = std::make_unique<pipeline::PipelineEngine>(
        config_,
        split ? pipeline::gpt_layer_specs(options_.model, grid_.tensor_group(),
                                          /*dropout_seed=*/1234, options_.sequence_parallel)
              : pipeline::gpt_layer_specs(options_.model),
        split ? pipeline::gpt_vocab_parallel_loss(grid_.tensor_group())
              : pipeline::LossFunction(pipeline::gpt_next_token_loss),
        micro_batch(*train_windows_, 0).inputs, grid_, &initial);
    if (!options_.load_layers.empty()) engine_->load_layer_checkpoint(options_.load_layers);
    if (options_.resume) engine_->engine().load_checkpoint(options_.save_dir);
  }

  void print_startup() const {
    if (!leader_) return;
    fmt::print(
        "model: {} {} layers, {} heads, width {}, context {}, pipeline {} stages x tensor {} x "
        "data {} replicas ({}), ZeRO stage {}, {} lr {}, batch {} windows ({} per micro-batch "
        "x {} micro-batches x {} replicas)\n",
        models::architecture_name(options_.model.architecture), options_.model.n_layer,
        options_.model.n_head, options_.model.n_embd, options_.model.block_size,
        grid_.shape().pipeline, grid_.shape().tensor, grid_.shape().data, config_.pipeline.schedule,
        config_.zero_optimization.stage, config_.optimizer.type, config_.optimizer.lr,
        config_.train_batch_size, config_.train_micro_batch_size_per_gpu,
        config_.gradient_accumulation_steps, grid_.shape().data);
    if (eval_batches_ * config_.gradient_accumulation_steps != options_.eval_iters)
      fmt::print("validation: {} batches per replica (a multiple of the micro-batches)\n",
                 eval_batches_ * config_.gradient_accumulation_steps);
    if (!options_.load_layers.empty()) fmt::print("loaded layers from {}\n", options_.load_layers);
    if (options_.resume)
      fmt::print("resumed from {} at step {}\n", options_.save_dir,
                 engine_->engine().global_steps());
  }

  void log_training(int64_t step) {
    if (leader_) {
      const double tokens =
          double(interval_steps_ * config_.train_batch_size) * double(options_.model.block_size);
      fmt::print("step {}/{}: loss {:.4f}, lr {:.3g}, {:.0f} tokens/s\n", step, options_.steps,
                 interval_loss_sum_ / double(interval_steps_), engine_->engine().get_lr(),
                 tokens / interval_seconds_);
      std::fflush(stdout);
    }
    interval_loss_sum_ = interval_seconds_ = 0.0;
    interval_steps_ = 0;
  }

  void report_validation(int64_t step) {
    double loss_sum = 0.0;
    int64_t next = 0;
    for (int64_t batch = 0; batch < eval_batches_; ++batch)
      loss_sum += engine_->eval_batch([&] { return micro_batch(*validation_windows_, next++); });
    if (leader_) {
      fmt::print("step {}: validation loss {:.4f}\n", step, loss_sum / double(eval_batches_));
      std::fflush(stdout);
    }
  }

  // DIR/global_stepN: per stage its layer files, model states and optimizer states (one per
  // data rank); DIR/latest names the tag.
  void save_checkpoint(int64_t step) {
    if (step == last_saved_step_) return;
    nlohmann::json client_state = {{"step", step}, {"metadata", gpt_metadata(options_.model)}};
    const std::string tag_dir =
        engine_->engine().save_checkpoint(options_.save_dir, "", client_state);
    last_saved_step_ = step;
    if (leader_) fmt::print("saved checkpoint {}\n", tag_dir);
  }

  // The whole model for gpt_generate: each stage's weights, shards joined over the tensor
  // group, go to a scratch file per stage (written by the stage's first replica's first tensor
  // rank), and rank 0 joins them under the whole GPT's names (the tied head stored once, as
  // wte). A failure on any rank is an error on every rank, never a rank left waiting.
  void save_model() {
    if (options_.save_path.empty()) return;
    const std::filesystem::path scratch = options_.save_path + ".stages.tmp";
    NamedTensors whole = engine_->whole_model_weights();  // collective over the tensor group
    std::string problem;
    if (leader_) problem = attempt([&] { std::filesystem::create_directories(scratch); });
    agree_or_throw(problem);
    const comm::GridCoordinates at = grid_.coordinates();
    if (at.data == 0 && at.tensor == 0)
      problem = attempt([&] { save_safetensors(stage_file(scratch, at.pipeline), whole); });
    agree_or_throw(problem);
    if (leader_) problem = attempt([&] { join_stage_files(scratch); });
    agree_or_throw(problem);
  }

  static std::string stage_file(const std::filesystem::path& scratch, int stage) {
    return (scratch / fmt::format("stage_{:02d}.safetensors", stage)).string();
  }

  void join_stage_files(const std::filesystem::path& scratch) {
    NamedTensors saved;
    for (int stage = 0; stage < grid_.shape().pipeline; ++stage) {
      SafetensorsContents contents = load_safetensors(stage_file(scratch, stage));
      for (const auto& [name, tensor] : contents.tensors)
        if (!(options_.model.tie_word_embeddings && name == "lm_head.weight"))
          saved.emplace_back(name, tensor.to(DType::f32));
    }
    SafetensorsMetadata metadata = gpt_metadata(options_.model);
    metadata["format"] = "pt";
    if (options_.model.tie_word_embeddings) metadata["lm_head.weight"] = "wte.weight";
    save_safetensors(options_.save_path, saved, metadata);
    std::filesystem::remove_all(scratch);
    fmt::print("saved {}\n", options_.save_path);
  }

  // What `work` threw, "" when it did not.
  static std::string attempt(const std::function<void()>& work) {
    try {
      work();
    } catch (const std::exception& error) {
      return error.what();
    }
    return "";
  }

  void agree_or_throw(const std::string& problem) {
    if (sum_over_ranks(world_, {problem.empty() ? 0.0 : 1.0})[0] == 0.0) return;
    throw std::runtime_error(problem.empty() ? "--save: failed on another rank" : problem);
  }

  const GptTrainOptions& options_;
  comm::MpiCommunicator& world_;
  const bool leader_;
  comm::ProcessGrid grid_;
  dist::Config config_;
  std::optional<data::TokenWindowSampler> train_windows_, validation_windows_;
  int64_t eval_batches_ = 0;
  std::unique_ptr<pipeline::PipelineEngine> engine_;
  double interval_loss_sum_ = 0.0, interval_seconds_ = 0.0;
  int64_t interval_steps_ = 0;
  int64_t last_saved_step_ = -1;
};

}  // namespace zt::apps
