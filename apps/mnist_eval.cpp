// Loads a model saved by mnist_train, prints its test accuracy, then classifies one test image
// (random, or --index N): prints the prediction and the true label, draws the image in the
// terminal, and writes it with both labels to a PNG. Flags: `mnist_eval --help`. The PNG's path
// is checked before anything is read, so a path that cannot be written fails first.
#include <fmt/format.h>

#include <chrono>
#include <exception>
#include <optional>

#include "apps/bitmap_font.h"
#include "apps/cli_flags.h"
#include "apps/mnist_common.h"
#include "apps/output_paths.h"
#include "apps/read_command_line.h"
#include "core/safetensors.h"
#include "data/dataloader.h"
#include "data/png_writer.h"

using namespace zt;

namespace {

const apps::CommandLine kEvalCommandLine{
    "mnist_eval",
    "Loads a model saved by mnist_train, prints its test accuracy, classifies one test image,\n"
    "draws it in the terminal and writes it with the predicted and true labels to a PNG.",
    {
        {"model-file", "PATH", "deepspeed_train_model.safetensors", "the model to evaluate"},
        {"index", "N", "", "the test image to classify", "random, from --seed"},
        {"png", "PATH", "mnist_eval.png", "where the labelled image is written"},
        {"data-dir", "DIR", "data/mnist", "the folder of MNIST's IDX files (for MNIST models)"},
        {"seed", "S", "", "seed of the random choice of image", "from the clock"},
    }};

// The image in the terminal: one character per pixel, darker characters for brighter pixels.
void draw_in_terminal(const uint8_t* pixels, int64_t height, int64_t width) {
  static constexpr std::string_view kShades = " .:-=+*#%@";
  for (int64_t row = 0; row < height; ++row) {
    std::string line;
    for (int64_t column = 0; column < width; ++column) {
      char shade = kShades[size_t(pixels[row * width + column]) * (kShades.size() - 1) / 255];
      line += shade;
      line += shade;  // terminal cells are about twice as tall as wide
    }
    fmt::print("{}\n", line);
  }
}

// The image scaled up, with "PRED: x" and "TRUE: y" underneath (green when right, else red).
void write_labelled_png(const std::string& path, const uint8_t* pixels, int64_t size,
                        const std::string& predicted, const std::string& truth) {
  constexpr int kImageScale = 8, kTextScale = 2;
  int64_t width = std::max<int64_t>(
      size * kImageScale,
      2 + kTextScale * apps::kGlyphAdvance * int64_t(6 + std::max(predicted.size(), truth.size())));
  int64_t image_height = size * kImageScale;
  int64_t height = image_height + 2 * (apps::kGlyphHeight + 3) * kTextScale;
  std::vector<uint8_t> rgb(size_t(width * height * 3), 0);
  std::vector<uint8_t> enlarged =
      data::upscale({pixels, size_t(size * size)}, size, size, 1, kImageScale);
  for (int64_t y = 0; y < image_height; ++y) {
    for (int64_t x = 0; x < size * kImageScale; ++x) {
      uint8_t value = enlarged[size_t(y * size * kImageScale + x)];
      for (int k = 0; k < 3; ++k) rgb[size_t((y * width + x) * 3 + k)] = value;
    }
  }
  std::array<uint8_t, 3> verdict = predicted == truth ? std::array<uint8_t, 3>{80, 220, 80}
                                                      : std::array<uint8_t, 3>{230, 60, 60};
  int64_t line_height = (apps::kGlyphHeight + 3) * kTextScale;
  apps::draw_text(rgb, width, height, 2, image_height + 3, "PRED: " + predicted, kTextScale,
                  verdict);
  apps::draw_text(rgb, width, height, 2, image_height + 3 + line_height, "TRUE: " + truth,
                  kTextScale, {230, 230, 230});
  data::write_png(path, rgb, width, height, 3);
}

int evaluate(const apps::Flags& flags) {
  std::string png_path = flags.get_string("png");
  apps::check_output_file("--png", png_path);
  std::string model_path = flags.get_string("model-file");
  SafetensorsContents saved = load_safetensors(model_path);
  auto model_name = saved.metadata.find("model");
  auto dataset_name = saved.metadata.find("dataset");
  if (model_name == saved.metadata.end() || dataset_name == saved.metadata.end()) {
    throw std::runtime_error(model_path +
                             ": no \"model\"/\"dataset\" metadata; was it written by mnist_train?");
  }
  std::shared_ptr<nn::Module> model;
  try {
    model = apps::make_mnist_model(model_name->second);
    model->load_state_dict(saved.tensors);
  } catch (const std::exception& error) {
    throw std::runtime_error(model_path + ": " + error.what());
  }
  apps::DatasetChoice dataset =
      apps::choose_dataset(dataset_name->second, flags.get_string("data-dir"));
  data::MnistSplit test_split = data::load_mnist_split(dataset.dir, "t10k");
  Tensor test_images = data::normalize_images(test_split.images, dataset.mean, dataset.stddev);
  // The image is chosen (and --index checked) before any output, so an error is the only line.
  int64_t count = test_images.size(0);
  uint64_t seed =
      flags.has("seed")
          ? uint64_t(flags.get_int("seed", 0))
          : uint64_t(std::chrono::steady_clock::now().time_since_epoch().count() & 0x7fffffff);
  int64_t index = flags.has("index") ? flags.get_int("index", 0) : int64_t(seed % uint64_t(count));
  if (index >= count) {
    throw std::runtime_error(fmt::format("--index: expected 0..{}, got {}", count - 1, index));
  }
  double accuracy = apps::evaluate_accuracy(*model, test_images, test_split.labels);
  fmt::print("{} on {} test set: accuracy {:.2f}% ({} images)\n", model_name->second, dataset.name,
             100.0 * accuracy, count);

  NoGradGuard no_grad;
  model->eval();
  Tensor logits = (*model)(test_images.narrow(0, index, 1));
  int64_t predicted = int64_t(argmax(logits, 1).item());
  int64_t truth = int64_t(test_split.labels.select(0, index).item());
  const auto& names = apps::class_names(dataset.name);
  fmt::print("test image {}: predicted {}, true label {} ({})\n", index, names[size_t(predicted)],
             names[size_t(truth)], predicted == truth ? "right" : "wrong");
  Tensor image = test_split.images.select(0, index).contiguous();
  draw_in_terminal(image.data_ptr<uint8_t>(), image.size(0), image.size(1));
  write_labelled_png(png_path, image.data_ptr<uint8_t>(), image.size(0), names[size_t(predicted)],
                     names[size_t(truth)]);
  fmt::print("wrote {}\n", png_path);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<apps::Flags> flags;
  std::optional<int> status = apps::read_command_line(
      argc, argv, kEvalCommandLine, [&](const apps::Flags& parsed) { flags.emplace(parsed); });
  if (status) return *status;
  try {
    return evaluate(*flags);
  } catch (const std::exception& error) {
    fmt::print(stderr, "mnist_eval: {}\n", error.what());
    return 1;
  }
}
