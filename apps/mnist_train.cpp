// Trains the MNIST example network (cnn or mlp) on one process and saves it as safetensors.
// Data: MNIST IDX files in --data-dir when present, else Fashion-MNIST from Debian's package.
// Usage: mnist_train [--epochs N] [--batch-size B] [--lr LR] [--model cnn|mlp]
//                    [--dataset auto|mnist|fashion] [--data-dir DIR] [--seed S] [--save PATH]
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>

#include "apps/cli_flags.h"
#include "apps/mnist_common.h"
#include "core/generator.h"
#include "core/parallel.h"
#include "core/safetensors.h"
#include "data/dataloader.h"
#include "optim/adam.h"

using namespace zt;

namespace {

struct TrainOptions {
  int64_t epochs, batch_size;
  double lr;
  std::string model, dataset, data_dir, save_path;
  uint64_t seed;
};

TrainOptions parse(int argc, char** argv) {
  apps::Flags flags(argc, argv,
                    {"epochs", "batch-size", "lr", "model", "dataset", "data-dir", "seed", "save"});
  return TrainOptions{flags.get_int("epochs", 1, 1),
                      flags.get_int("batch-size", 64, 1),
                      flags.get_double("lr", 1e-3, 0.0),
                      flags.get_choice("model", "cnn", {"cnn", "mlp"}),
                      flags.get_choice("dataset", "auto", {"auto", "mnist", "fashion"}),
                      flags.get_string("data-dir", "data/mnist"),
                      flags.get_string("save", "deepspeed_train_model.safetensors"),
                      uint64_t(flags.get_int("seed", 1, 0))};
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int train(const TrainOptions& options) {
  apps::DatasetChoice dataset = apps::choose_dataset(options.dataset, options.data_dir);
  fmt::print("dataset: {} from {}\n", dataset.name == "fashion" ? "Fashion-MNIST" : "MNIST",
             dataset.dir);
  data::MnistSplit train_split = data::load_mnist_split(dataset.dir, "train");
  data::MnistSplit test_split = data::load_mnist_split(dataset.dir, "t10k");
  Tensor train_images = data::normalize_images(train_split.images, dataset.mean, dataset.stddev);
  Tensor test_images = data::normalize_images(test_split.images, dataset.mean, dataset.stddev);
  data::TensorDataset train_set(train_images, train_split.labels);
  data::DataLoader loader(
      train_set, {.batch_size = options.batch_size, .shuffle = true, .seed = options.seed});

  manual_seed(options.seed);
  std::shared_ptr<nn::Module> model = apps::make_mnist_model(options.model);
  optim::Adam optimizer(optim::single_group(model->parameters(), options.lr));
  fmt::print("model: {} ({} parameters), Adam lr {}, batch {}, {} threads\n", options.model,
             model->num_parameters(), options.lr, options.batch_size, num_threads());

  bool on_terminal = isatty(fileno(stdout));
  auto run_start = std::chrono::steady_clock::now();
  for (int64_t epoch = 1; epoch <= options.epochs; ++epoch) {
    loader.set_epoch(epoch - 1);
    model->train();
    auto epoch_start = std::chrono::steady_clock::now();
    double loss_sum = 0.0;
    int64_t batches = loader.num_batches();
    for (int64_t b = 0; b < batches; ++b) {
      data::Batch batch = loader.batch(b);
      Tensor loss = cross_entropy((*model)(batch.inputs), batch.targets);
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      loss_sum += loss.item();
      if (on_terminal && (b % 20 == 0 || b + 1 == batches)) {
        fmt::print("\repoch {} [{:5}/{}] loss {:.4f}", epoch, b + 1, batches,
                   loss_sum / double(b + 1));
        std::fflush(stdout);
      }
    }
    if (on_terminal) fmt::print("\r");
    double train_seconds = seconds_since(epoch_start);
    double accuracy = apps::evaluate_accuracy(*model, test_images, test_split.labels);
    fmt::print("epoch {}: loss {:.4f}, test accuracy {:.2f}%, {:.0f} samples/s, {:.1f} s\n", epoch,
               loss_sum / double(batches), 100.0 * accuracy,
               double(loader.num_samples()) / train_seconds, seconds_since(epoch_start));
  }
  save_safetensors(options.save_path, model->state_dict(),
                   {{"model", options.model}, {"dataset", dataset.name}});
  fmt::print("saved {} ({:.1f} s in all)\n", options.save_path, seconds_since(run_start));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return train(parse(argc, argv));
  } catch (const std::exception& error) {
    fmt::print(stderr, "mnist_train: {}\n", error.what());
    return 1;
  }
}
