// SwapStore and its I/O engines: random bytes of odd sizes round-trip through swap files on
// each engine, many tickets in flight at once, and each bad input or failure is an error that
// names the config key, the path or the file.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "dist/offload/swap_store.h"
#include "tests/dist/swap_test_helpers.h"
#include "tests/error_of.h"

using namespace zt;
using namespace zt::offload;
using namespace zt::testing;

namespace {

const char* const kKey = "zero_optimization.offload_optimizer.nvme_path";

dist::AioConfig small_blocks() {
  dist::AioConfig aio;
  aio.block_size = 64 * 1024;  // several blocks per transfer even for small test sizes
  aio.queue_depth = 4;
  aio.intra_op_parallelism = 2;
  return aio;
}

// A swap buffer holding `bytes` of `data`.
Tensor buffer_with(const std::vector<uint8_t>& data) {
  Tensor buffer = make_swap_buffer(int64_t(data.size()), DType::u8);
  std::memcpy(buffer.raw_data(), data.data(), data.size());
  return buffer;
}

bool bytes_equal(const Tensor& buffer, const std::vector<uint8_t>& expected) {
  return std::memcmp(buffer.raw_data(), expected.data(), expected.size()) == 0;
}

}  // namespace

TEST_CASE("make_swap_buffer is 4096-aligned, padded to 4096 bytes and counted as swap_buffer") {
  int64_t before = cpu_allocator().accounting().stats().live(MemoryTag::swap_buffer);
  for (int64_t numel : {1, 1000, 4096, 123457}) {
    Tensor buffer = make_swap_buffer(numel, DType::f32);
    CHECK(buffer.numel() == numel);
    CHECK(reinterpret_cast<uintptr_t>(buffer.raw_data()) % 4096 == 0);
    int64_t offset_bytes = buffer.storage_offset() * 4;
    CHECK(int64_t(buffer.storage()->bytes()) - offset_bytes >=
          round_up_to_swap_alignment(numel * 4));
    CHECK(cpu_allocator().accounting().stats().live(MemoryTag::swap_buffer) >= before + numel * 4);
  }
  CHECK(cpu_allocator().accounting().stats().live(MemoryTag::swap_buffer) == before);
}

TEST_CASE("random bytes of odd sizes under many keys round-trip through each engine") {
  for (IoEngineChoice choice : engines_here()) {
    CAPTURE(engine_name(choice));
    ScratchFolder scratch;
    SwapStore store(scratch.path(), kKey, "optimizer", 3, small_blocks(), choice);
    CHECK(store.engine() ==
          (choice == IoEngineChoice::io_uring ? "io_uring" : "O_DIRECT thread pool"));
    CHECK(store.folder() == scratch.path() + "/zerotrain_swap/rank3/optimizer");
    const std::vector<int64_t> sizes{1, 7, 4095, 4096, 4097, 65536 + 3, 300001, 1 << 20};
    std::vector<std::vector<uint8_t>> originals;
    std::vector<Tensor> written;
    for (size_t i = 0; i < sizes.size(); ++i) {
      originals.push_back(random_bytes(sizes[i], uint32_t(i + 1)));
      written.push_back(buffer_with(originals.back()));
      store.wait(store.write("key" + std::to_string(i), written.back().raw_data(), sizes[i]));
    }
    for (size_t i = 0; i < sizes.size(); ++i) {
      Tensor back = make_swap_buffer(sizes[i], DType::u8);
      store.wait(store.read("key" + std::to_string(i), back.raw_data(), sizes[i]));
      CHECK_MESSAGE(bytes_equal(back, originals[i]), "size ", sizes[i]);
    }
    SwapStats stats = store.stats();
    int64_t padded_total = 0;
    for (int64_t size : sizes) padded_total += round_up_to_swap_alignment(size);
    CHECK(stats.bytes_written == padded_total);
    CHECK(stats.bytes_read == padded_total);
    CHECK(stats.write_seconds > 0);
    CHECK(stats.read_seconds > 0);
  }
}

TEST_CASE("many tickets in flight at once end in any order with every key's own bytes") {
  for (IoEngineChoice choice : engines_here()) {
    CAPTURE(engine_name(choice));
    ScratchFolder scratch;
    SwapStore store(scratch.path(), kKey, "concurrent", 0, small_blocks(), choice);
    constexpr int kKeys = 24;
    std::vector<std::vector<uint8_t>> originals;
    std::vector<Tensor> buffers;
    std::vector<SwapStore::Ticket> tickets;
    for (int i = 0; i < kKeys; ++i) {
      originals.push_back(random_bytes(100000 + 4099 * i, uint32_t(100 + i)));
      buffers.push_back(buffer_with(originals.back()));
      tickets.push_back(store.write("k" + std::to_string(i), buffers.back().raw_data(),
                                    int64_t(originals[i].size())));
    }
    CHECK(store.pending_writes() == size_t(kKeys));
    for (int i = kKeys; i-- > 0;) store.wait(tickets[size_t(i)]);  // reverse order
    std::vector<Tensor> reads;
    for (int i = 0; i < kKeys; ++i) {
      reads.push_back(make_swap_buffer(int64_t(originals[size_t(i)].size()), DType::u8));
      store.read("k" + std::to_string(i), reads.back().raw_data(),
                 int64_t(originals[size_t(i)].size()));
    }
    CHECK(store.pending_reads() == size_t(kKeys));
    store.wait_all();
    CHECK(store.pending_reads() == 0);
    for (int i = 0; i < kKeys; ++i) CHECK(bytes_equal(reads[size_t(i)], originals[size_t(i)]));
  }
}
