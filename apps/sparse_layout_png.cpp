// sparse_layout_png: draws a block-sparse attention layout (core/sparse_layout.h) as a PNG, the
// heads side by side, for the docs and for teaching: one square of --pixels a side per block,
// dark where the block is attended, a light grid line every block and a gap between heads.
// The layout comes from a ds_config.json's sparse_attention block, or from --mode with
// DeepSpeed's defaults.
#include <fmt/format.h>

#include <optional>
#include <string>
#include <vector>

#include "apps/output_paths.h"
#include "apps/read_command_line.h"
#include "core/sparse_layout.h"
#include "data/png_writer.h"
#include "dist/config.h"

namespace {

using namespace zt;

const apps::CommandLine kLayoutPngCommandLine{
    "sparse_layout_png",
    "Writes a block-sparse attention layout as a PNG, heads side by side.",
    {
        {"deepspeed_config", "FILE", "", "a ds_config.json whose sparse_attention block is drawn",
         "none: --mode with DeepSpeed's defaults"},
        {"mode", "MODE", "fixed", "dense, fixed, variable, bigbird or bslongformer (no config)"},
        {"attention", "KIND", "bidirectional", "bidirectional or unidirectional (no config)"},
        {"heads", "H", "4", "heads to draw"},
        {"seq-len", "T", "512", "sequence length (a multiple of the block)"},
        {"seed", "N", "0", "seed of the random blocks (variable, bigbird)"},
        {"pixels", "P", "6", "pixels per block side"},
        {"png", "PATH", "sparse_layout.png", "where the image is written"},
    }};

constexpr uint8_t kActive[3] = {31, 58, 147}, kEmpty[3] = {250, 250, 250},
                  kGrid[3] = {222, 222, 222}, kGap[3] = {255, 255, 255};

std::vector<uint8_t> draw(const SparseLayout& layout, int64_t pixels, int64_t& width,
                          int64_t& height) {
  const int64_t side = layout.blocks * pixels, gap = std::max<int64_t>(pixels, 4);
  width = layout.heads * side + (layout.heads - 1) * gap;
  height = side;
  std::vector<uint8_t> rgb(size_t(width * height * 3));
  for (int64_t y = 0; y < height; ++y) {
    for (int64_t x = 0; x < width; ++x) {
      const int64_t head = x / (side + gap), within = x % (side + gap);
      const uint8_t* color = kGap;
      if (within < side) {
        const bool grid = pixels >= 4 && (within % pixels == 0 || y % pixels == 0);
        color = layout.at(head, y / pixels, within / pixels) ? kActive : grid ? kGrid : kEmpty;
      }
      std::copy(color, color + 3, rgb.begin() + (y * width + x) * 3);
    }
  }
  return rgb;
}

int write_layout(const apps::Flags& flags) {
  const std::string png_path = flags.get_string("png");
  apps::check_output_file("--png", png_path);
  SparsityConfig config;
  const std::string config_path = flags.get_string("deepspeed_config");
  if (!config_path.empty()) {
    const dist::Config parsed = dist::load_config(config_path, 1, nullptr);
    if (!parsed.sparse_attention) {
      throw std::runtime_error(config_path + ": no sparse_attention block to draw");
    }
    config = *parsed.sparse_attention;
  } else {
    config.mode = parse_sparsity_mode(flags.get_string("mode"));
    const std::string attention = flags.get_string("attention");
    if (attention != "bidirectional" && attention != "unidirectional") {
      throw apps::FlagError(fmt::format(
          "--attention: expected bidirectional or unidirectional, got '{}'", attention));
    }
    config.unidirectional = attention == "unidirectional";
  }
  const SparseLayout layout =
      make_sparse_layout(config, flags.get_int("heads", 1), flags.get_int("seq-len", 1),
                         uint64_t(flags.get_int("seed", 0)));
  int64_t width = 0, height = 0;
  const std::vector<uint8_t> rgb = draw(layout, flags.get_int("pixels", 1), width, height);
  data::write_png(png_path, rgb, width, height, 3);
  fmt::print("{}: {} layout, {} heads of {} x {} blocks of {}, density {:.3f} ({} x {} pixels)\n",
             png_path, sparsity_mode_name(config.mode), layout.heads, layout.blocks, layout.blocks,
             layout.block, layout.density(), width, height);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<apps::Flags> flags;
  std::optional<int> status = apps::read_command_line(
      argc, argv, kLayoutPngCommandLine, [&](const apps::Flags& parsed) { flags.emplace(parsed); });
  if (status) return *status;
  try {
    return write_layout(*flags);
  } catch (const std::exception& error) {
    fmt::print(stderr, "sparse_layout_png: {}\n", error.what());
    return 1;
  }
}
