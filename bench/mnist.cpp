// Training throughput of the MNIST example networks (apps/mnist_common.h) on Fashion-MNIST:
// samples/s of forward + cross entropy + backward + Adam step at batch 64, for the MLP and the
// CNN at 1 and 2 threads. Each figure is the best of --repeats windows of a fixed number of
// batches after a short warm-up, so a busy neighbour on a shared machine costs less.
// --torch FILE adds PyTorch's figures (lines "model threads samples_per_s", as printed by the
// optional bench/mnist_pytorch.py) and our ratio against them. Flags: `bench/mnist --help`.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "apps/cli_flags.h"
#include "apps/mnist_common.h"
#include "apps/read_command_line.h"
#include "core/generator.h"
#include "core/parallel.h"
#include "data/dataloader.h"
#include "optim/adam.h"

using namespace zt;

namespace {

constexpr int64_t kWarmupBatches = 3;

struct BenchOptions {
  int64_t mlp_batches, cnn_batches, repeats, batch_size;
  std::vector<int> threads;
  std::vector<std::string> models;
  std::string data_dir, torch_file;
};

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> items;
  std::stringstream stream(text);
  for (std::string item; std::getline(stream, item, ',');) {
    if (!item.empty()) items.push_back(item);
  }
  return items;
}

const apps::CommandLine kMnistBenchCommandLine{
    "bench/mnist",
    "Training throughput (samples/s) of the MNIST example networks on Fashion-MNIST: forward,\n"
    "cross entropy, backward and Adam step, best of --repeats windows.",
    {
        {"mlp-batches", "N", "200", "batches per timed window of the MLP"},
        {"cnn-batches", "N", "20", "batches per timed window of the CNN"},
        {"repeats", "R", "3", "timed windows; the best counts"},
        {"threads", "LIST", "1,2", "thread counts to time, comma-separated"},
        {"models", "LIST", "mlp,cnn", "networks to time: mlp and/or cnn, comma-separated"},
        {"batch-size", "B", "64", "samples per step"},
        {"data-dir", "DIR", apps::kFashionMnistDir, "the folder of Fashion-MNIST's IDX files"},
        {"torch", "FILE", "", "PyTorch's figures (from bench/mnist_pytorch.py) to compare with",
         "none"},
    }};

BenchOptions read_options(const apps::Flags& flags) {
  BenchOptions options{flags.get_int("mlp-batches", 1),
                       flags.get_int("cnn-batches", 1),
                       flags.get_int("repeats", 1),
                       flags.get_int("batch-size", 1),
                       {},
                       split_list(flags.get_string("models")),
                       flags.get_string("data-dir"),
                       flags.get_string("torch")};
  for (const std::string& count : split_list(flags.get_string("threads"))) {
    int threads = std::atoi(count.c_str());
    if (threads < 1)
      throw apps::FlagError(fmt::format("--threads: expected counts >= 1, got '{}'", count));
    options.threads.push_back(threads);
  }
  for (const std::string& model : options.models) {
    if (model != "mlp" && model != "cnn") {
      throw apps::FlagError(fmt::format("--models: expected mlp and/or cnn, got '{}'", model));
    }
  }
  return options;
}

// PyTorch's samples/s keyed by (model, threads), from lines "model threads samples_per_s";
// lines starting with '#' are comments.
std::map<std::pair<std::string, int>, double> read_torch_results(const std::string& path) {
  std::map<std::pair<std::string, int>, double> results;
  if (path.empty()) return results;
  std::ifstream file(path);
  if (!file) throw std::runtime_error(fmt::format("--torch: cannot open {}", path));
  for (std::string line; std::getline(file, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string model;
    int threads = 0;
    double samples_per_second = 0;
    if (fields >> model >> threads >> samples_per_second) {
      results[{model, threads}] = samples_per_second;
    }
  }
  return results;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Best samples/s over `repeats` windows of `batches` training steps, after a warm-up that
// also fills the allocator's and OpenBLAS's buffers. Training continues across windows, as in
// an epoch; the loader wraps around if the windows outrun one epoch.
double train_samples_per_second(const std::string& model_name, int threads,
                                const data::DataLoader& loader, int64_t batches, int64_t repeats) {
  set_num_threads(threads);
  manual_seed(1);
  std::shared_ptr<nn::Module> model = apps::make_mnist_model(model_name);
  model->train();
  optim::Adam optimizer(optim::single_group(model->parameters(), 1e-3));
  int64_t next_batch = 0;
  auto step = [&] {
    data::Batch batch = loader.batch(next_batch++ % loader.num_batches());
    Tensor loss = cross_entropy((*model)(batch.inputs), batch.targets);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    return batch.inputs.size(0);
  };
  for (int64_t i = 0; i < kWarmupBatches; ++i) step();
  double best = 0.0;
  for (int64_t repeat = 0; repeat < repeats; ++repeat) {
    int64_t samples = 0;
    auto start = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < batches; ++i) samples += step();
    best = std::max(best, double(samples) / seconds_since(start));
  }
  return best;
}

int run(const BenchOptions& options) {
  data::MnistSplit train_split = data::load_mnist_split(options.data_dir, "train");
  // Fashion-MNIST's training mean and std, as mnist_train uses.
  Tensor images = data::normalize_images(train_split.images, 0.2860, 0.3530);
  data::TensorDataset train_set(images, train_split.labels);
  data::DataLoader loader(train_set,
                          {.batch_size = options.batch_size, .shuffle = true, .seed = 1});
  auto torch_results = read_torch_results(options.torch_file);

  fmt::print("Fashion-MNIST training, batch {}, Adam lr 1e-3; best of {} windows\n",
             options.batch_size, options.repeats);
  fmt::print("{:<6} {:>8} {:>8} {:>14}", "model", "threads", "batches", "samples/s");
  if (!torch_results.empty()) fmt::print(" {:>16} {:>10}", "pytorch samples/s", "ours/torch");
  fmt::print("\n");
  for (const std::string& model : options.models) {
    int64_t batches = model == "mlp" ? options.mlp_batches : options.cnn_batches;
    for (int threads : options.threads) {
      double ours = train_samples_per_second(model, threads, loader, batches, options.repeats);
      fmt::print("{:<6} {:>8} {:>8} {:>14.0f}", model, threads, batches, ours);
      auto torch = torch_results.find({model, threads});
      if (torch != torch_results.end()) {
        fmt::print(" {:>16.0f} {:>10.2f}", torch->second, ours / torch->second);
      }
      fmt::print("\n");
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  BenchOptions options;
  std::optional<int> status =
      apps::read_command_line(argc, argv, kMnistBenchCommandLine,
                              [&](const apps::Flags& flags) { options = read_options(flags); });
  if (status) return *status;
  try {
    return run(options);
  } catch (const std::exception& error) {
    fmt::print(stderr, "bench/mnist: {}\n", error.what());
    return 1;
  }
}
