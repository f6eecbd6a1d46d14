// The five layout modes as DeepSpeed's sparsity classes build them (local windows, global
// blocks, sliding windows, random blocks), written against a [blocks, blocks] plane per head.
// Unidirectional layouts are block-lower-triangular except variable's random blocks, which
// DeepSpeed draws over the whole row; the kernels apply the token-level causal rule anyway.
#include "core/sparse_layout.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <numeric>
#include <stdexcept>

#include "core/generator.h"
#include "core/philox.h"

namespace zt {

namespace {

[[noreturn]] void fail(const std::string& key, const std::string& message) {
  throw std::invalid_argument(fmt::format("sparse_attention.{}: {}", key, message));
}

// One head's [blocks, blocks] plane of the layout.
class Plane {
 public:
  Plane(SparseLayout& layout, int64_t head)
      : data_(layout.active.data() + head * layout.blocks * layout.blocks), n_(layout.blocks) {}
  int64_t size() const { return n_; }
  void set(int64_t row, int64_t col) { data_[row * n_ + col] = 1; }
  // Rows [row_begin, row_end) x columns [col_begin, col_end), clipped to the plane.
  void set_rect(int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end) {
    for (int64_t r = std::max<int64_t>(row_begin, 0); r < std::min(row_end, n_); ++r)
      for (int64_t c = std::max<int64_t>(col_begin, 0); c < std::min(col_end, n_); ++c) set(r, c);
  }
  void keep_lower_triangle() {
    for (int64_t r = 0; r < n_; ++r)
      for (int64_t c = r + 1; c < n_; ++c) data_[r * n_ + c] = 0;
  }

 private:
  uint8_t* data_;
  int64_t n_;
};

// A local window over blocks [begin, end): full square, or its lower triangle when causal.
void set_window(Plane& plane, int64_t begin, int64_t end, bool unidirectional) {
  for (int64_t row = begin; row < std::min(end, plane.size()); ++row)
    plane.set_rect(row, row + 1, begin, unidirectional ? row + 1 : end);
}

// `count` distinct columns of [0, population) per row, by a partial Fisher-Yates shuffle whose
// uniforms are Philox draws reserved from `generator`.
std::vector<int64_t> sample_columns(Generator& generator, int64_t population, int64_t count) {
  std::vector<int64_t> pool(static_cast<size_t>(population));
  std::iota(pool.begin(), pool.end(), 0);
  const uint64_t offset = generator.reserve(uint64_t(count));
  for (int64_t i = 0; i < count; ++i) {
    const philox::Block draw = philox::block_for(generator.seed(), offset, uint64_t(i));
    const double uniform = philox::uniform_53bit(draw.word[0], draw.word[1]);
    const int64_t pick =
        i + std::min(int64_t(uniform * double(population - i)), population - i - 1);
    std::swap(pool[size_t(i)], pool[size_t(pick)]);
  }
  pool.resize(size_t(count));
  return pool;
}

void set_fixed(const SparsityConfig& config, Plane& plane, int64_t head) {
  const int64_t n = plane.size(), local = config.num_local_blocks,
                global = config.num_global_blocks;
  for (int64_t begin = 0; begin < n; begin += local)
    set_window(plane, begin, begin + local, config.unidirectional);
  // The global blocks of each full window: its last `global` blocks for pattern 0, the ones
  // before them for pattern 1, and so on.
  const int64_t first_global = local - (1 + head % config.num_different_global_patterns) * global;
  const int64_t full_windows_end = n - n % local;
  auto set_global = [&](int64_t begin, int64_t end) {
    plane.set_rect(config.unidirectional ? begin : 0, n, begin, end);
    if (config.horizontal_global_attention) plane.set_rect(begin, end, 0, n);
  };
  for (int64_t i = first_global; i < full_windows_end; i += local) set_global(i, i + global);
  if (full_windows_end < n) {  // a short last window still gets its global blocks
    const int64_t start = std::min(full_windows_end + first_global, n - global);
    set_global(start, start + global);
  }
}

// Global columns (and rows, where asked) of variable and bslongformer: `indices` alone are one
// block each; with `ends`, [indices[i], ends[i]).
void set_global_indices(const SparsityConfig& config, Plane& plane, bool horizontal,
                        bool clip_vertical_to_causal) {
  const int64_t n = plane.size();
  for (size_t i = 0; i < config.global_block_indices.size(); ++i) {
    const int64_t begin = config.global_block_indices[i];
    if (begin >= n) continue;
    const int64_t end = config.global_block_end_indices.empty()
                            ? begin + 1
                            : std::min(config.global_block_end_indices[i], n);
    if (horizontal) plane.set_rect(begin, end, 0, n);
    plane.set_rect(clip_vertical_to_causal ? begin : 0, n, begin, end);
  }
}

void set_variable(const SparsityConfig& config, Plane& plane, Generator& generator) {
  const int64_t n = plane.size();
  if (config.num_random_blocks > n) {
    fail("num_random_blocks",
         fmt::format("{} is more than the {} blocks of a row", config.num_random_blocks, n));
  }
  for (int64_t row = 0; row < n; ++row)
    for (int64_t col : sample_columns(generator, n, config.num_random_blocks)) plane.set(row, col);
  int64_t begin = 0, window = 0;
  for (int64_t size : config.local_window_blocks) {
    set_window(plane, begin, std::min(begin + size, n), config.unidirectional);
    begin += size;
    window = size;
  }
  for (int64_t i = begin; i < n; i += window)  // the last size repeats to the end
    set_window(plane, i, std::min(i + window, n), config.unidirectional);
  set_global_indices(config, plane, config.horizontal_global_attention, config.unidirectional);
}

void set_sliding_window(const SparsityConfig& config, Plane& plane) {
  const int64_t n = plane.size(), half = config.num_sliding_window_blocks / 2;
  if (config.num_sliding_window_blocks > n) {
    fail("num_sliding_window_blocks", fmt::format("{} is more than the {} blocks of a row",
                                                  config.num_sliding_window_blocks, n));
  }
  for (int64_t row = 0; row < n; ++row) plane.set_rect(row, row + 1, row - half, row + half + 1);
}

void set_bigbird(const SparsityConfig& config, Plane& plane, Generator& generator) {
  const int64_t n = plane.size();
  if (config.num_random_blocks > n) {
    fail("num_random_blocks",
         fmt::format("{} is more than the {} blocks of a row", config.num_random_blocks, n));
  }
  for (int64_t row = 0; row < n; ++row) {
    // Causal rows draw among the blocks at or before the diagonal; the first rows have fewer
    // than num_random_blocks of them and take them all (DeepSpeed's random.sample raises there).
    const int64_t population = config.unidirectional ? row + 1 : n;
    const int64_t count = std::min(config.num_random_blocks, population);
    for (int64_t col : sample_columns(generator, population, count)) plane.set(row, col);
  }
  set_sliding_window(config, plane);
  if (config.num_global_blocks > n) {
    fail("num_global_blocks",
         fmt::format("{} is more than the {} blocks of a row", config.num_global_blocks, n));
  }
  plane.set_rect(0, config.num_global_blocks, 0, n);
  plane.set_rect(0, n, 0, config.num_global_blocks);
  if (config.unidirectional) plane.keep_lower_triangle();
}

void set_bslongformer(const SparsityConfig& config, Plane& plane) {
  set_sliding_window(config, plane);
  set_global_indices(config, plane, /*horizontal=*/true, /*clip_vertical_to_causal=*/false);
  if (config.unidirectional) plane.keep_lower_triangle();
}

}  // namespace

std::string sparsity_mode_name(SparsityMode mode) {
  switch (mode) {
    case SparsityMode::dense:
      return "dense";
    case SparsityMode::fixed:
      return "fixed";
    case SparsityMode::variable:
      return "variable";
    case SparsityMode::bigbird:
      return "bigbird";
    case SparsityMode::bslongformer:
      return "bslongformer";
  }
  return "unknown";
}

SparsityMode parse_sparsity_mode(const std::string& name) {
  for (SparsityMode mode : {SparsityMode::dense, SparsityMode::fixed, SparsityMode::variable,
                            SparsityMode::bigbird, SparsityMode::bslongformer}) {
    if (sparsity_mode_name(mode) == name) return mode;
  }
  fail("mode", fmt::format("expected one of \"dense\", \"fixed\", \"variable\", \"bigbird\", "
                           "\"bslongformer\", got \"{}\"",
                           name));
}

const std::vector<std::string>& sparsity_keys_of(SparsityMode mode) {
  static const std::vector<std::string> dense = {"block", "different_layout_per_head"};
  static const std::vector<std::string> fixed = {"block",
                                                 "different_layout_per_head",
                                                 "num_local_blocks",
                                                 "num_global_blocks",
                                                 "attention",
                                                 "horizontal_global_attention",
                                                 "num_different_global_patterns"};
  static const std::vector<std::string> variable = {"block",
                                                    "different_layout_per_head",
                                                    "num_random_blocks",
                                                    "local_window_blocks",
                                                    "global_block_indices",
                                                    "global_block_end_indices",
                                                    "attention",
                                                    "horizontal_global_attention"};
  static const std::vector<std::string> bigbird = {"block",
                                                   "different_layout_per_head",
                                                   "num_random_blocks",
                                                   "num_sliding_window_blocks",
                                                   "num_global_blocks",
                                                   "attention"};
  static const std::vector<std::string> bslongformer = {"block",
                                                        "different_layout_per_head",
                                                        "num_sliding_window_blocks",
                                                        "global_block_indices",
                                                        "global_block_end_indices",
                                                        "attention"};
  switch (mode) {
    case SparsityMode::dense:
      return dense;
    case SparsityMode::fixed:
      return fixed;
    case SparsityMode::variable:
      return variable;
    case SparsityMode::bigbird:
      return bigbird;
    case SparsityMode::bslongformer:
      return bslongformer;
  }
  return dense;
}

void SparsityConfig::validate() const {
  auto positive = [](const char* key, int64_t value) {
    if (value < 1) fail(key, fmt::format("expected an integer >= 1, got {}", value));
  };
  positive("block", block);
  if (mode == SparsityMode::fixed) {
    positive("num_local_blocks", num_local_blocks);
    positive("num_global_blocks", num_global_blocks);
    positive("num_different_global_patterns", num_different_global_patterns);
    if (num_local_blocks % num_global_blocks != 0) {
      fail("num_local_blocks", fmt::format("{} must be a multiple of num_global_blocks ({})",
                                           num_local_blocks, num_global_blocks));
    }
    if (num_different_global_patterns > 1 && !different_layout_per_head) {
      fail("num_different_global_patterns",
           fmt::format("{} patterns need different_layout_per_head true (one layout serves "
                       "every head)",
                       num_different_global_patterns));
    }
    if (num_different_global_patterns > num_local_blocks / num_global_blocks) {
      fail("num_different_global_patterns",
           fmt::format("{} is more than num_local_blocks / num_global_blocks = {}",
                       num_different_global_patterns, num_local_blocks / num_global_blocks));
    }
  }
  if ((mode == SparsityMode::fixed || mode == SparsityMode::variable) &&
      horizontal_global_attention && unidirectional) {
    fail("horizontal_global_attention", "needs \"attention\": \"bidirectional\"");
  }
  if (mode == SparsityMode::variable) {
    if (num_random_blocks < 0)
      fail("num_random_blocks", fmt::format("expected >= 0, got {}", num_random_blocks));
    if (local_window_blocks.empty()) fail("local_window_blocks", "expected a non-empty list");
    for (int64_t size : local_window_blocks) positive("local_window_blocks", size);
  }
  if (mode == SparsityMode::bigbird) {
    if (num_random_blocks < 0)
      fail("num_random_blocks", fmt::format("expected >= 0, got {}", num_random_blocks));
    positive("num_global_blocks", num_global_blocks);
  }
  if (mode == SparsityMode::bigbird || mode == SparsityMode::bslongformer)
    positive("num_sliding_window_blocks", num_sliding_window_blocks);
  if (mode == SparsityMode::variable || mode == SparsityMode::bslongformer) {
    for (int64_t index : global_block_indices) {
      if (index < 0) fail("global_block_indices", fmt::format("expected >= 0, got {}", index));
    }
    if (!global_block_end_indices.empty()) {
      if (global_block_end_indices.size() != global_block_indices.size()) {
        fail("global_block_end_indices",
             fmt::format("has {} entries, global_block_indices {}: expected as many",
                         global_block_end_indices.size(), global_block_indices.size()));
      }
      for (size_t i = 0; i < global_block_indices.size(); ++i) {
        if (global_block_indices[i] >= global_block_end_indices[i]) {
          fail("global_block_end_indices",
               fmt::format("entry {} ({}) must be above global_block_indices[{}] ({})", i,
                           global_block_end_indices[i], i, global_block_indices[i]));
        }
      }
    }
  }
}

int64_t SparseLayout::active_blocks() const {
  return std::count(active.begin(), active.end(), uint8_t(1));
}

double SparseLayout::density() const {
  return active.empty() ? 0.0 : double(active_blocks()) / double(active.size());
}

SparseLayout make_sparse_layout(const SparsityConfig& config, int64_t heads, int64_t seq_len,
                                uint64_t seed) {
  config.validate();
  if (heads < 1) throw std::invalid_argument(fmt::format("sparse layout: heads {} < 1", heads));
  if (seq_len < 1 || seq_len % config.block != 0) {
    throw std::invalid_argument(
        fmt::format("sparse_attention: sequence length {} is not a positive multiple of block {}",
                    seq_len, config.block));
  }
  SparseLayout layout;
  layout.heads = heads;
  layout.block = config.block;
  layout.blocks = seq_len / config.block;
  layout.active.assign(size_t(heads * layout.blocks * layout.blocks), 0);
  Generator generator(seed);
  const int64_t distinct_heads = config.different_layout_per_head ? heads : 1;
  for (int64_t head = 0; head < distinct_heads; ++head) {
    Plane plane(layout, head);
    switch (config.mode) {
      case SparsityMode::dense:
        plane.set_rect(0, layout.blocks, 0, layout.blocks);
        break;
      case SparsityMode::fixed:
        set_fixed(config, plane, head);
        break;
      case SparsityMode::variable:
        set_variable(config, plane, generator);
        break;
      case SparsityMode::bigbird:
        set_bigbird(config, plane, generator);
        break;
      case SparsityMode::bslongformer:
        set_bslongformer(config, plane);
        break;
    }
  }
  const size_t plane_size = size_t(layout.blocks * layout.blocks);
  for (int64_t head = distinct_heads; head < heads; ++head) {
    std::copy_n(layout.active.begin(), plane_size, layout.active.begin() + head * plane_size);
  }
  return layout;
}

}  // namespace zt
