// A minimal PNG encoder for 8-bit grayscale or RGB images (signature, IHDR, IDAT chunks of
// zlib-compressed rows with filter type 0, IEND; every chunk CRC'd), used to look at data and
// samples. Files are written atomically: a temporary name in the same directory, then rename.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace zt::data {

// `pixels` holds height rows of width * channels bytes; channels is 1 (gray) or 3 (RGB).
// Throws std::invalid_argument if the sizes disagree or are out of PNG's range.
std::vector<uint8_t> encode_png(std::span<const uint8_t> pixels, int64_t width, int64_t height,
                                int channels);

void write_png(const std::string& path, std::span<const uint8_t> pixels, int64_t width,
               int64_t height, int channels);
// A CPU u8 tensor [H, W] (gray) or [H, W, C] with C 1 or 3; any strides.
void write_png(const std::string& path, const Tensor& image);

// Nearest-neighbour enlargement by an integer factor >= 1 (MNIST's 28x28 is small on screen).
std::vector<uint8_t> upscale(std::span<const uint8_t> pixels, int64_t width, int64_t height,
                             int channels, int factor);

}  // namespace zt::data
