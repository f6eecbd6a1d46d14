// What mnist_train and mnist_eval share: the two networks (with the parameter names of
// PyTorch's MNIST example, so state dicts line up), the choice of dataset and its
// normalisation, and the class names. Either network can run its layers in checkpointed
// segments (ds_config activation_checkpointing.number_checkpoints).
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autograd/checkpoint.h"
#include "autograd/functions.h"
#include "data/idx.h"
#include "nn/nn.h"

namespace zt::apps {

using Stage = std::function<Tensor(const Tensor&)>;

// Runs `stages` one after another. segments == 0: directly. segments > 0: in
// min(segments, stages.size()) consecutive groups of stages.size() / groups stages (the last
// takes the remainder), each through zt::checkpoint, so backward keeps only each group's input
// and recomputes the rest; gradients are the same bit for bit.
inline Tensor run_stages(const std::vector<Stage>& stages, int64_t segments, const Tensor& input) {
  if (segments <= 0 || stages.empty()) {
    Tensor x = input;
    for (const Stage& stage : stages) x = stage(x);
    return x;
  }
  // The checkpoint nodes keep their function until backward, after this returns.
  auto kept = std::make_shared<const std::vector<Stage>>(stages);
  const size_t groups = std::min(size_t(segments), kept->size());
  const size_t per_group = kept->size() / groups;
  Tensor x = input;
  for (size_t group = 0; group < groups; ++group) {
    const size_t begin = group * per_group;
    const size_t end = group + 1 == groups ? kept->size() : begin + per_group;
    x = checkpoint(
        [kept, begin, end](const Tensor& group_input) {
          Tensor y = group_input;
          for (size_t i = begin; i < end; ++i) y = (*kept)[i](y);
          return y;
        },
        x);
  }
  return x;
}

// PyTorch's MNIST example network: conv 32 3x3, conv 64 3x3, max-pool 2, dropout 0.25,
// fc 128, dropout 0.5, fc 10 (logits). Other widths make the half-width students of
// distillation and the smaller networks that pruned channels and rows leave.
struct MnistCnnWidths {
  int64_t conv1 = 32, conv2 = 64, fc1 = 128;
};

class MnistCnn final : public nn::Module {
 public:
  explicit MnistCnn(MnistCnnWidths widths = {}) {
    conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(1, widths.conv1, 3));
    conv2 = register_module("conv2", std::make_shared<nn::Conv2d>(widths.conv1, widths.conv2, 3));
    dropout1 = register_module("dropout1", std::make_shared<nn::Dropout>(0.25));
    dropout2 = register_module("dropout2", std::make_shared<nn::Dropout>(0.5));
    // 28x28 -> two 3x3 convolutions -> 24x24 -> pooled 12x12 per channel.
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(widths.conv2 * 144, widths.fc1));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(widths.fc1, 10));
    pool = register_module("pool", std::make_shared<nn::MaxPool2d>(2));
  }
  std::string type_name() const override { return "MnistCnn"; }

  static constexpr int64_t kStages = 5;  // what forward runs, in order
  int64_t checkpoint_segments = 0;       // > 0: the stages run in this many checkpoints

 protected:
  Tensor forward(const Tensor& images) override {
    return run_stages({[this](const Tensor& x) { return relu((*conv1)(x)); },
                       [this](const Tensor& x) { return relu((*conv2)(x)); },
                       [this](const Tensor& x) { return (*dropout1)((*pool)(x)).flatten(1); },
                       [this](const Tensor& x) { return (*dropout2)(relu((*fc1)(x))); },
                       [this](const Tensor& x) { return (*fc2)(x); }},
                      checkpoint_segments, images);
  }

 private:
  std::shared_ptr<nn::Conv2d> conv1, conv2;
  std::shared_ptr<nn::Dropout> dropout1, dropout2;
  std::shared_ptr<nn::Linear> fc1, fc2;
  std::shared_ptr<nn::MaxPool2d> pool;
};

// 784-256-128-10 with ReLU.
class MnistMlp final : public nn::Module {
 public:
  MnistMlp() {
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(784, 256));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(256, 128));
    fc3 = register_module("fc3", std::make_shared<nn::Linear>(128, 10));
  }
  std::string type_name() const override { return "MnistMlp"; }

  static constexpr int64_t kStages = 3;  // what forward runs, in order
  int64_t checkpoint_segments = 0;       // > 0: the stages run in this many checkpoints

 protected:
  Tensor forward(const Tensor& images) override {
    return run_stages({[this](const Tensor& x) { return relu((*fc1)(x.flatten(1))); },
                       [this](const Tensor& x) { return relu((*fc2)(x)); },
                       [this](const Tensor& x) { return (*fc3)(x); }},
                      checkpoint_segments, images);
  }

 private:
  std::shared_ptr<nn::Linear> fc1, fc2, fc3;
};

// checkpoint_segments > 0 runs the network's layers in that many checkpointed segments.
inline std::shared_ptr<nn::Module> make_mnist_model(const std::string& name,
                                                    int64_t checkpoint_segments = 0) {
  if (name == "cnn") {
    auto cnn = std::make_shared<MnistCnn>();
    cnn->checkpoint_segments = checkpoint_segments;
    return cnn;
  }
  if (name == "mlp") {
    auto mlp = std::make_shared<MnistMlp>();
    mlp->checkpoint_segments = checkpoint_segments;
    return mlp;
  }
  throw std::invalid_argument(fmt::format("model: expected cnn or mlp, got '{}'", name));
}

inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

struct DatasetChoice {
  std::string name;  // "mnist" or "fashion"
  std::string dir;
  double mean, stddev;  // of the training images, for normalisation
};

inline bool has_mnist_files(const std::string& dir) {
  namespace fs = std::filesystem;
  for (const char* suffix : {"", ".gz"}) {
    if (fs::exists(dir + "/train-images-idx3-ubyte" + suffix)) return true;
  }
  return false;
}

// "auto": MNIST from data_dir when its files are there, else Fashion-MNIST from Debian's
// package. "mnist" or "fashion": that one, or an error naming where it looked.
inline DatasetChoice choose_dataset(const std::string& requested, const std::string& data_dir) {
  DatasetChoice mnist{"mnist", data_dir, 0.1307, 0.3081};
  DatasetChoice fashion{"fashion", kFashionMnistDir, 0.2860, 0.3530};
  if (requested == "mnist" || (requested == "auto" && has_mnist_files(data_dir))) {
    if (!has_mnist_files(data_dir)) {
      throw std::runtime_error(fmt::format(
          "--dataset mnist: no train-images-idx3-ubyte[.gz] in {} (set --data-dir)", data_dir));
    }
    return mnist;
  }
  if (!has_mnist_files(kFashionMnistDir)) {
    throw std::runtime_error(fmt::format(
        "no dataset: MNIST is not in {} and Fashion-MNIST is not in {} (make deps installs "
        "dataset-fashion-mnist)",
        data_dir, kFashionMnistDir));
  }
  return fashion;
}

inline const std::array<const char*, 10>& class_names(const std::string& dataset) {
  static const std::array<const char*, 10> digits{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
  static const std::array<const char*, 10> fashion{
      "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
      "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return dataset == "fashion" ? fashion : digits;
}

}  // namespace zt::apps

namespace zt::apps {

// Fraction of `labels` the model predicts, in eval mode and without recording a graph.
inline double evaluate_accuracy(nn::Module& model, const Tensor& images, const Tensor& labels,
                                int64_t batch_size = 1000) {
  NoGradGuard no_grad;
  bool was_training = model.is_training();
  model.eval();
  int64_t correct = 0;
  const int64_t count = images.size(0);
  for (int64_t begin = 0; begin < count; begin += batch_size) {
    int64_t length = std::min(batch_size, count - begin);
    Tensor predictions = argmax(model(images.narrow(0, begin, length)), 1);
    Tensor truth = labels.narrow(0, begin, length);
    std::vector<double> predicted = predictions.to_vector(), expected = truth.to_vector();
    for (size_t i = 0; i < predicted.size(); ++i) correct += predicted[i] == expected[i];
  }
  model.train(was_training);
  return double(correct) / double(count);
}

}  // namespace zt::apps
