// The MNIST networks run in checkpointed segments (activation_checkpointing.number_checkpoints):
// outputs, gradients and the RNG stream afterwards equal those of the plain forward, bit for
// bit, for every segment count (dropout included in the CNN, so the RNG replay is exercised).
#include <doctest/doctest.h>

#include <memory>
#include <vector>

#include "apps/mnist_common.h"
#include "core/factory.h"
#include "core/generator.h"

using namespace zt;

namespace {

struct StepResult {
  std::vector<double> output;
  std::vector<std::vector<double>> grads;  // every parameter's, in order
  std::vector<double> draw_after;
};

StepResult step(nn::Module& model, const Tensor& images, const Tensor& labels) {
  manual_seed(99);
  Tensor logits = model(images);
  cross_entropy(logits, labels).backward();
  StepResult result{logits.to_vector(), {}, uniform({4}, 0.0, 1.0).to_vector()};
  for (const Tensor& param : model.parameters()) {
    REQUIRE(param.grad().defined());
    result.grads.push_back(param.grad().to_vector());
  }
  model.zero_grad();
  return result;
}

template <typename Model>
void check_segments_match_plain(int64_t batch) {
  manual_seed(5);
  auto model = std::make_shared<Model>();
  Generator generator(17);
  Tensor images = uniform({batch, 1, 28, 28}, -1.0, 1.0, {}, &generator);
  std::vector<int64_t> classes;
  for (int64_t i = 0; i < batch; ++i) classes.push_back((3 * i + 1) % 10);
  Tensor labels = from_int64(classes, {batch});
  StepResult plain = step(*model, images, labels);
  for (int64_t segments = 1; segments <= Model::kStages + 1; ++segments) {
    CAPTURE(segments);
    model->checkpoint_segments = segments;
    StepResult checkpointed = step(*model, images, labels);
    CHECK(checkpointed.output == plain.output);
    CHECK(checkpointed.grads == plain.grads);
    CHECK(checkpointed.draw_after == plain.draw_after);
  }
}

}  // namespace

TEST_CASE("MnistMlp in checkpointed segments: gradients bitwise equal to the plain forward") {
  check_segments_match_plain<apps::MnistMlp>(6);
}

TEST_CASE("MnistCnn in checkpointed segments (dropout): gradients bitwise equal") {
  check_segments_match_plain<apps::MnistCnn>(2);
}

TEST_CASE("make_mnist_model passes the segment count on") {
  auto mlp = std::dynamic_pointer_cast<apps::MnistMlp>(apps::make_mnist_model("mlp", 2));
  REQUIRE(mlp);
  CHECK(mlp->checkpoint_segments == 2);
  auto cnn = std::dynamic_pointer_cast<apps::MnistCnn>(apps::make_mnist_model("cnn"));
  REQUIRE(cnn);
  CHECK(cnn->checkpoint_segments == 0);
}
