// mnist_train's compression and distillation: the compression_training block (from
// --compression-config or the ds_config) applied to the CNN under the engine, a frozen
// --teacher whose logits enter the loss, and at the end redundancy_clean: the cleaned CNN is
// rebuilt at its smaller widths from the cleaned tensors, saved packed next to --save, and
// compared with the model as trained (parameters, file size, test accuracy, inference time).
#pragma once

#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>

#include "apps/compression_file.h"
#include "apps/mnist_common.h"
#include "compress/compressor.h"
#include "compress/distillation.h"
#include "compress/mask_scores.h"
#include "compress/packed_weights.h"
#include "compress/redundancy_clean.h"
#include "dist/config.h"
#include "dist/engine.h"

namespace zt::apps {

inline MnistCnnWidths scaled_widths(double width) {
  MnistCnnWidths full;
  auto scaled = [&](int64_t size) { return std::max<int64_t>(1, std::llround(size * width)); };
  return {scaled(full.conv1), scaled(full.conv2), scaled(full.fc1)};
}

// The widths a cleaned CNN state has.
inline MnistCnnWidths widths_of(const NamedTensors& state) {
  MnistCnnWidths widths;
  for (const auto& [name, tensor] : state) {
    if (name == "conv1.weight") widths.conv1 = tensor.size(0);
    if (name == "conv2.weight") widths.conv2 = tensor.size(0);
    if (name == "fc1.weight") widths.fc1 = tensor.size(0);
  }
  return widths;
}

// Seconds to classify `images` once (after one warm-up pass).
inline double inference_seconds(nn::Module& model, const Tensor& images) {
  Tensor labels = zeros({images.size(0)}, TensorOptions{}.with_dtype(DType::i64));
  evaluate_accuracy(model, images.narrow(0, 0, std::min<int64_t>(1000, images.size(0))),
                    labels.narrow(0, 0, std::min<int64_t>(1000, images.size(0))));
  auto start = std::chrono::steady_clock::now();
  evaluate_accuracy(model, images, labels);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

class MnistCompression {
 public:
  MnistCompression(const std::string& compression_config, const dist::Config& config,
                   const std::string& teacher_path, compress::DistillationOptions distillation)
      : distillation_(distillation) {
    compression_ = compression_config.empty() ? config.compression_training
                                              : read_compression_file(compression_config);
    if (!teacher_path.empty()) {
      auto model = std::make_shared<MnistCnn>();
      model->load(teacher_path);
      teacher_.emplace(model);
    }
  }
  bool compressing() const { return compression_.any_enabled(); }

  // Before zt::initialize: the learned scores of the topk methods join the model's parameters.
  void prepare_model(nn::Module& model, uint64_t seed) {
    if (compressing()) compress::add_mask_scores(model, compression_, seed);
  }

  // Hooks the engine's model (after zt::initialize, so stage 3 has gathered what they read).
  void attach(dist::Engine& engine) {
    partition_teacher_like(engine);
    if (!compressing()) return;
    compressor_ = std::make_unique<compress::Compressor>(
        engine.module(), compression_, [&engine] { return engine.global_steps(); });
    if (engine.data_parallel_communicator().size() > 1) {
      // snip_momentum scores the batch's gradient, the same on every rank.
      compressor_->set_snip_gradient_reduction([&engine](std::vector<float>& values) {
        comm::Communicator& ranks = engine.data_parallel_communicator();
        Tensor buffer = empty({int64_t(values.size())});
        std::memcpy(buffer.data_ptr<float>(), values.data(), values.size() * sizeof(float));
        buffer = buffer.to(engine.device());
        ranks.all_reduce(buffer);
        Tensor summed = buffer.to(Device::cpu());
        for (size_t i = 0; i < values.size(); ++i)
          values[i] = summed.data_ptr<float>()[i] / float(ranks.size());
      });
    }
  }

  // A stage-3 student gets a stage-3 teacher: 1/N of its parameters on each rank, gathered
  // around each module's forward, on the engine's device and ranks.
  void partition_teacher_like(dist::Engine& engine) {
    if (!teacher_ || engine.config().zero_optimization.stage != 3) return;
    teacher_->model().to(engine.device());
    teacher_->partition_stage3(engine.config().zero_optimization,
                               engine.data_parallel_communicator());
  }

  Tensor loss(const Tensor& logits, const Tensor& inputs, const Tensor& targets) {
    if (!teacher_) return cross_entropy(logits, targets);
    // A partitioned teacher lives on the engine's device (the student's logits' device).
    const Tensor teacher_inputs =
        teacher_->partitioned() ? inputs.to(logits.device()) : inputs.to(Device::cpu());
    Tensor teacher_logits = (*teacher_)(teacher_inputs.to(DType::f32)).to(logits.device());
    return compress::distillation_loss(logits, teacher_logits, targets, distillation_);
  }

  // Cleans the trained model, saves it packed next to `save_path`, and prints the comparison.
  // `trained_accuracy`: the trained model's with the compressor in its forward. Rank 0 only.
  void finish(dist::Engine& engine, const NamedTensors& state, const std::string& save_path,
              double trained_accuracy, const Tensor& test_images, const Tensor& test_labels) {
    if (!compressing()) return;
    // The trained network's cost without the compressor's hooks: the dense model as it is.
    NamedTensors weights;  // without the learned mask scores
    for (const auto& [name, tensor] : state)
      if (!compress::is_compression_state(name)) weights.emplace_back(name, tensor);
    auto dense = std::make_shared<MnistCnn>(widths_of(state));
    dense->load_state_dict(weights);
    const double trained_seconds = inference_seconds(*dense, test_images);
    compress::CleanedModel cleaned =
        compress::redundancy_clean(state, compressor_->state_at(engine.global_steps()));
    const std::filesystem::path path(save_path);
    const std::string cleaned_path =
        (path.parent_path() / (path.stem().string() + ".compressed.safetensors")).string();
    compress::save_cleaned_model(cleaned_path, cleaned);
    auto smaller = std::make_shared<MnistCnn>(widths_of(cleaned.tensors));
    smaller->load_state_dict(compress::load_compressed_model(cleaned_path));
    const double cleaned_accuracy = evaluate_accuracy(*smaller, test_images, test_labels);
    const double cleaned_seconds = inference_seconds(*smaller, test_images);
    const MnistCnnWidths widths = widths_of(cleaned.tensors);
    fmt::print(
        "compression: trained (masked/quantized in forward) {} parameters, {} bytes, test "
        "accuracy {:.2f}%, inference {:.3f} s\n"
        "compression: cleaned (conv1 {}, conv2 {}, fc1 {}; {} packed weights) {} parameters, "
        "{} bytes, test accuracy {:.2f}%, inference {:.3f} s ({:.2f}x faster, file {:.2f}x "
        "smaller)\ncompression: saved {}\n",
        engine.module().num_parameters(), std::filesystem::file_size(save_path),
        100 * trained_accuracy, trained_seconds, widths.conv1, widths.conv2, widths.fc1,
        cleaned.packed.size(), cleaned.parameter_count, std::filesystem::file_size(cleaned_path),
        100 * cleaned_accuracy, cleaned_seconds, trained_seconds / cleaned_seconds,
        double(std::filesystem::file_size(save_path)) /
            double(std::filesystem::file_size(cleaned_path)),
        cleaned_path);
  }

 private:
  dist::CompressionConfig compression_;
  compress::DistillationOptions distillation_;
  std::optional<compress::Teacher> teacher_;
  std::unique_ptr<compress::Compressor> compressor_;
};

}  // namespace zt::apps
