// PNG encoding with zlib: compress2 for the IDAT stream and crc32 for chunk CRCs. All integers
// in PNG are big-endian; a chunk is length, type, data, CRC(type + data).
#include "data/png_writer.h"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <stdexcept>

#include "core/atomic_file.h"

namespace zt::data {

namespace {

constexpr uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
constexpr int64_t kPngMaxSide = 0x7fffffff;  // PNG sizes are 31-bit
constexpr uint8_t kColorTypeGray = 0;
constexpr uint8_t kColorTypeRgb = 2;
constexpr uint8_t kFilterNone = 0;
// PNG chunk lengths are 31-bit; cutting the zlib stream into several IDAT chunks (which
// decoders concatenate) keeps any image encodable.
constexpr size_t kMaxIdatChunkBytes = size_t(1) << 20;

void append_u32(std::vector<uint8_t>& out, uint32_t value) {
  out.push_back(uint8_t(value >> 24));
  out.push_back(uint8_t(value >> 16));
  out.push_back(uint8_t(value >> 8));
  out.push_back(uint8_t(value));
}

void append_chunk(std::vector<uint8_t>& out, const char (&type)[5], std::span<const uint8_t> data) {
  append_u32(out, uint32_t(data.size()));
  size_t type_start = out.size();
  out.insert(out.end(), type, type + 4);
  out.insert(out.end(), data.begin(), data.end());
  // Chunks stay far below zlib's uInt limit: IDAT data is cut into kMaxIdatChunkBytes pieces.
  uLong crc = crc32(0L, out.data() + type_start, uInt(out.size() - type_start));
  append_u32(out, uint32_t(crc));
}

void check_image(size_t pixel_bytes, int64_t width, int64_t height, int channels,
                 const char* what) {
  if (channels != 1 && channels != 3) {
    throw std::invalid_argument(
        fmt::format("{}: {} channels, expected 1 (gray) or 3 (RGB)", what, channels));
  }
  if (width < 1 || height < 1 || width > kPngMaxSide || height > kPngMaxSide) {
    throw std::invalid_argument(
        fmt::format("{}: size {}x{} is outside 1..2^31-1", what, width, height));
  }
  uint64_t expected = uint64_t(width) * uint64_t(height) * uint64_t(channels);
  if (pixel_bytes != expected) {
    throw std::invalid_argument(fmt::format("{}: {} bytes of pixels, {}x{}x{} needs {}", what,
                                            pixel_bytes, width, height, channels, expected));
  }
}

}  // namespace

std::vector<uint8_t> encode_png(std::span<const uint8_t> pixels, int64_t width, int64_t height,
                                int channels) {
  check_image(pixels.size(), width, height, channels, "encode_png");
  size_t row_bytes = size_t(width) * size_t(channels);
  // Every row is prefixed by its filter type; filter 0 keeps the encoder trivially correct.
  std::vector<uint8_t> filtered;
  filtered.reserve((row_bytes + 1) * size_t(height));
  for (int64_t y = 0; y < height; ++y) {
    filtered.push_back(kFilterNone);
    const uint8_t* row = pixels.data() + size_t(y) * row_bytes;
    filtered.insert(filtered.end(), row, row + row_bytes);
  }
  uLongf compressed_bytes = compressBound(uLong(filtered.size()));
  std::vector<uint8_t> compressed(compressed_bytes);
  int status = compress2(compressed.data(), &compressed_bytes, filtered.data(),
                         uLong(filtered.size()), Z_DEFAULT_COMPRESSION);
  if (status != Z_OK) {
    throw std::runtime_error(fmt::format("encode_png: zlib compress2 failed with {}", status));
  }
  compressed.resize(compressed_bytes);

  std::vector<uint8_t> header;
  append_u32(header, uint32_t(width));
  append_u32(header, uint32_t(height));
  header.push_back(8);  // bits per sample
  header.push_back(channels == 1 ? kColorTypeGray : kColorTypeRgb);
  header.push_back(0);  // compression: deflate
  header.push_back(0);  // filter method: adaptive (per-row filter byte)
  header.push_back(0);  // no interlace

  std::vector<uint8_t> png(std::begin(kPngSignature), std::end(kPngSignature));
  append_chunk(png, "IHDR", header);
  for (size_t start = 0; start < compressed.size(); start += kMaxIdatChunkBytes) {
    size_t piece = std::min(kMaxIdatChunkBytes, compressed.size() - start);
    append_chunk(png, "IDAT", std::span<const uint8_t>(compressed).subspan(start, piece));
  }
  append_chunk(png, "IEND", {});
  return png;
}

void write_png(const std::string& path, std::span<const uint8_t> pixels, int64_t width,
               int64_t height, int channels) {
  std::vector<uint8_t> png = encode_png(pixels, width, height, channels);
  AtomicFileWriter file(path);
  file.write(png.data(), png.size());
  file.commit();
}

void write_png(const std::string& path, const Tensor& image) {
  if (image.dtype() != DType::u8 || !image.device().is_cpu() ||
      (image.dim() != 2 && image.dim() != 3)) {
    throw std::invalid_argument(fmt::format(
        "write_png {}: image is {} {} on {}, expected a cpu u8 [H, W] or [H, W, C]", path,
        dtype_name(image.dtype()), shape_str(image.sizes()), image.device().str()));
  }
  int channels = image.dim() == 3 ? int(image.size(2)) : 1;
  std::vector<double> values = image.to_vector();  // row-major whatever the strides
  std::vector<uint8_t> pixels(values.begin(), values.end());
  write_png(path, pixels, image.size(1), image.size(0), channels);
}

std::vector<uint8_t> upscale(std::span<const uint8_t> pixels, int64_t width, int64_t height,
                             int channels, int factor) {
  check_image(pixels.size(), width, height, channels, "upscale");
  if (factor < 1) throw std::invalid_argument(fmt::format("upscale: factor {} < 1", factor));
  int64_t out_width = width * factor;
  size_t pixel_bytes = size_t(channels);
  std::vector<uint8_t> out;
  out.reserve(pixels.size() * size_t(factor) * size_t(factor));
  for (int64_t y = 0; y < height * factor; ++y) {
    const uint8_t* source_row = pixels.data() + size_t(y / factor) * size_t(width) * pixel_bytes;
    for (int64_t x = 0; x < out_width; ++x) {
      const uint8_t* source = source_row + size_t(x / factor) * pixel_bytes;
      out.insert(out.end(), source, source + pixel_bytes);
    }
  }
  return out;
}

}  // namespace zt::data
