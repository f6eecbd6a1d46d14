// gpt_train's compression and distillation: the compression_training block (from
// --compression-config or the ds_config) on the GPT under the engine, a frozen --teacher GPT
// (a gpt_train --save file) whose logits enter the loss, layer_reduction initialising the
// student from the teacher's chosen layers, and at the end redundancy_clean: pruned heads leave
// c_attn and c_proj, the cleaned model is saved next to --save with its per-layer head counts
// in the metadata, and rebuilt from that file to show that it computes what the trained one did.
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "apps/compression_file.h"
#include "apps/gpt_model_files.h"
#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "compress/compressor.h"
#include "compress/distillation.h"
#include "compress/layer_reduction.h"
#include "compress/mask_scores.h"
#include "compress/packed_weights.h"
#include "compress/redundancy_clean.h"
#include "data/text_windows.h"
#include "dist/engine.h"

namespace zt::apps {

struct GptCompressionOptions {
  std::string compression_config;  // "": the ds_config's block, if any
  std::string teacher;             // "": no teacher
  compress::DistillationOptions distillation;
};

// The path of the cleaned model next to `save_path`: x.safetensors -> x.compressed.safetensors.
inline std::string cleaned_model_path(const std::string& save_path) {
  const std::filesystem::path path(save_path);
  return (path.parent_path() / (path.stem().string() + ".compressed.safetensors")).string();
}

// The model config a cleaned GPT state has: the heads each layer kept.
inline models::GPTConfig cleaned_gpt_config(models::GPTConfig config, const NamedTensors& state) {
  std::vector<int64_t> heads(size_t(config.n_layer), config.n_head);
  for (const auto& [name, tensor] : state) {
    for (int64_t layer = 0; layer < config.n_layer; ++layer) {
      if (name == fmt::format("h.{}.attn.c_proj.weight", layer))
        heads[size_t(layer)] = tensor.size(0) / config.head_dim();
    }
  }
  if (heads != std::vector<int64_t>(size_t(config.n_layer), config.n_head))
    config.layer_heads = heads;
  return config;
}

class GptCompression {
 public:
  GptCompression(const GptCompressionOptions& options, const dist::Config& config,
                 const models::GPTConfig& student)
      : options_(options) {
    compression_ = options.compression_config.empty()
                       ? config.compression_training
                       : read_compression_file(options.compression_config);
    if (!options.teacher.empty()) {
      SafetensorsContents contents = load_safetensors(options.teacher);
      auto model = load_gpt(contents.metadata, contents.tensors, options.teacher);
      if (model->config().vocab_size != student.vocab_size ||
          model->config().block_size < student.block_size) {
        throw std::runtime_error(fmt::format(
            "{}: the teacher's vocabulary {} and context {} do not cover the student's {} and {}",
            options.teacher, model->config().vocab_size, model->config().block_size,
            student.vocab_size, student.block_size));
      }
      teacher_state_ = model->state_dict();
      teacher_.emplace(model);
    }
    if (compression_.layer_reduction.enabled && !teacher_) {
      throw dist::ConfigError(
          "compression_training.layer_reduction: the student is initialised from a teacher's "
          "layers; give one with --teacher");
    }
  }

  bool compressing() const { return compression_.any_enabled(); }
  bool distilling() const { return teacher_.has_value(); }

  // Before zt::initialize: the student's layers from the teacher's, and the topk scores.
  void prepare_student(models::GPT& student, uint64_t seed, bool leader) {
    if (compression_.layer_reduction.enabled) {
      const int64_t copied =
          compress::initialize_student(student, teacher_state_, compression_.layer_reduction);
      if (leader) {
        fmt::print("layer_reduction: {} tensors of the student from the teacher (layers {})\n",
                   copied, fmt::join(compression_.layer_reduction.teacher_layer, ", "));
      }
    }
    teacher_state_.clear();
    compress::add_mask_scores(student, compression_, seed);
  }

  // After zt::initialize: the compressor's hooks run after stage 3's gathers.
  // A stage-3 student gets a stage-3 teacher (1/N of its parameters a rank, gathered around
  // each module's forward).
  void attach(dist::Engine& engine) {
    if (teacher_) teacher_->model().to(engine.device());
    if (teacher_ && engine.config().zero_optimization.stage == 3) {
      teacher_->partition_stage3(engine.config().zero_optimization,
                                 engine.data_parallel_communicator());
    }
    if (!compressing()) return;
    compressor_ = std::make_unique<compress::Compressor>(
        engine.module(), compression_, [&engine] { return engine.global_steps(); });
  }

  // The training loss: next-token cross entropy, plus the teacher's term when distilling.
  Tensor loss(dist::Engine& engine, const data::TokenBatch& batch) {
    const Tensor inputs = batch.inputs.to(engine.device());
    Tensor logits = engine.forward(inputs);
    const int64_t rows = batch.inputs.numel(), vocab = logits.size(-1);
    logits = logits.to(DType::f32).reshape({rows, vocab});
    const Tensor targets = batch.targets.to(engine.device()).reshape({rows});
    if (!teacher_) return cross_entropy(logits, targets);
    Tensor teacher_logits = (*teacher_)(inputs).to(DType::f32).reshape({rows, vocab});
    return compress::distillation_loss(logits, teacher_logits, targets, options_.distillation);
  }

  // Rank 0, after training: cleans `state` (the consolidated trained model), saves it, and
  // checks on `probe` that the smaller model rebuilt from the file computes the trained logits.
  void finish(const NamedTensors& state, const models::GPTConfig& config, int64_t step,
              const std::string& save_path, const data::TokenBatch& probe) {
    if (!compressing() || save_path.empty()) return;
    compress::CleanedModel cleaned =
        compress::redundancy_clean(state, compressor_->state_at(step, state));
    const models::GPTConfig smaller_config = cleaned_gpt_config(config, cleaned.tensors);
    SafetensorsMetadata metadata = gpt_metadata(smaller_config);
    const std::string path = cleaned_model_path(save_path);
    compress::save_cleaned_model(path, cleaned, metadata);
    auto smaller = load_gpt(metadata, compress::load_compressed_model(path), path);
    auto trained = std::make_shared<models::GPT>(config);
    compress::add_mask_scores(*trained, compression_, 0);
    // The compressor first: it adds the static activation ranges the state holds.
    compress::Compressor hooks(*trained, compression_, [step] { return step; });
    trained->load_state_dict(state);
    NoGradGuard no_grad;
    trained->eval();
    smaller->eval();
    const std::vector<double> expected = (*trained)(probe.inputs).to_vector(),
                              got = (*smaller)(probe.inputs).to_vector();
    int64_t trained_parameters = 0;  // without the learned mask scores
    for (const auto& [name, tensor] : trained->named_parameters()) {
      if (!compress::is_mask_scores(name)) trained_parameters += tensor.numel();
    }
    double difference = 0.0;
    for (size_t i = 0; i < got.size(); ++i)
      difference = std::max(difference, std::fabs(expected[i] - got[i]));
    fmt::print(
        "compression: trained {} parameters; cleaned {} parameters ({} heads a layer: {}; {} "
        "packed weights), {} bytes, saved {}; largest logit difference cleaned vs trained {:.3g}\n",
        trained_parameters, smaller->num_parameters(), config.n_head,
        fmt::join(smaller->config().layer_heads.empty()
                      ? std::vector<int64_t>(size_t(config.n_layer), config.n_head)
                      : smaller->config().layer_heads,
                  ","),
        cleaned.packed.size(), std::filesystem::file_size(path), path, difference);
  }

 private:
  GptCompressionOptions options_;
  dist::CompressionConfig compression_;
  NamedTensors teacher_state_;  // until prepare_student
  std::optional<compress::Teacher> teacher_;
  std::unique_ptr<compress::Compressor> compressor_;
};

}  // namespace zt::apps
