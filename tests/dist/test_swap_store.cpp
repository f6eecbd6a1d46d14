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

TEST_CASE("nvme_path missing or not a directory is refused naming the key and the path") {
  ScratchFolder scratch;
  std::string missing = scratch.path() + "/no_such_folder";
  CHECK(error_of([&] { SwapStore(missing, kKey, "optimizer", 0, small_blocks()); }) ==
        std::string(kKey) + ": '" + missing + "' does not exist (expected a writable folder)");
  std::string file = scratch.path() + "/a_file";
  std::fclose(std::fopen(file.c_str(), "w"));
  CHECK(error_of([&] { SwapStore(file, kKey, "optimizer", 0, small_blocks()); }) ==
        std::string(kKey) + ": '" + file + "' is not a directory (expected a writable folder)");
  CHECK(error_of([&] { SwapStore("", kKey, "optimizer", 0, small_blocks()); }) ==
        std::string(kKey) + ": expected a folder for swap files, got none");
}

TEST_CASE("an nvme_path that cannot be written is refused naming the key and the path") {
  // Root writes through a folder's permission bits, so a read-only mount stands in for them
  // where this process is root and may mount; otherwise the permission bits do.
  SmallTmpfs read_only("size=1m");
  std::string path = read_only.path();
  if (read_only.mounted()) {
    REQUIRE(::mount(nullptr, path.c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr) == 0);
  } else {
    std::filesystem::permissions(
        path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
  }
  std::string message = error_of([&] { SwapStore(path, kKey, "optimizer", 0, small_blocks()); });
  CHECK(message.rfind(std::string(kKey) + ": '" + path + "' is not writable", 0) == 0);
  if (!read_only.mounted()) std::filesystem::permissions(path, std::filesystem::perms::owner_all);
}

TEST_CASE("a full disk during a write is an error naming the file and the reason") {
  SmallTmpfs small("size=1m");
  if (!small.mounted()) {
    // Without a mount, the file size limit stands in for the full disk (EFBIG, not ENOSPC).
    MESSAGE("no tmpfs could be mounted here: the file size limit stands in for a full disk");
  }
  for (IoEngineChoice choice : engines_here()) {
    CAPTURE(engine_name(choice));
    ScratchFolder fallback_scratch;
    std::string nvme_path = small.mounted() ? small.path() : fallback_scratch.path();
    SwapStore store(nvme_path, kKey, "optimizer", 0, small_blocks(), choice);
    FileSizeLimit limit(small.mounted() ? -1 : 512 * 1024);
    std::vector<uint8_t> data = random_bytes(2 << 20, 5);  // 2 MiB: more than the 1 MiB disk
    Tensor buffer = buffer_with(data);
    SwapStore::Ticket ticket = store.write("big", buffer.raw_data(), int64_t(data.size()));
    std::string expected = store.path_of("big") + ": writing 2097152 bytes failed: " +
                           (small.mounted() ? "No space left on device" : "File too large");
    CHECK(error_of([&] { store.wait(ticket); }) == "swap file " + expected);
    // The store stays usable once space is freed (the file is truncated, as a cleanup would).
    std::filesystem::resize_file(store.path_of("big"), 0);
    std::vector<uint8_t> small_data = random_bytes(1000, 6);
    Tensor small_buffer = buffer_with(small_data);
    store.wait(store.write("big", small_buffer.raw_data(), 1000));
    Tensor back = make_swap_buffer(1000, DType::u8);
    store.wait(store.read("big", back.raw_data(), 1000));
    CHECK(bytes_equal(back, small_data));
  }
}

TEST_CASE("a swap file cut short, or read before it was written, is an error naming it") {
  for (IoEngineChoice choice : engines_here()) {
    CAPTURE(engine_name(choice));
    ScratchFolder scratch;
    SwapStore store(scratch.path(), kKey, "optimizer", 1, small_blocks(), choice);
    std::vector<uint8_t> data = random_bytes(200000, 7);
    Tensor buffer = buffer_with(data);
    store.wait(store.write("state", buffer.raw_data(), int64_t(data.size())));
    std::filesystem::resize_file(store.path_of("state"), 65536);  // someone truncated it
    Tensor back = make_swap_buffer(int64_t(data.size()), DType::u8);
    SwapStore::Ticket ticket = store.read("state", back.raw_data(), int64_t(data.size()));
    CHECK(error_of([&] { store.wait(ticket); }) ==
          "swap file " + store.path_of("state") +
              ": short read: got 65536 of 200704 bytes (was the file truncated?)");
    CHECK(error_of([&] { store.read("never", back.raw_data(), 10); }) ==
          "swap file " + store.path_of("never") +
              ": No such file or directory (read before it was ever written)");
  }
}

TEST_CASE("unaligned memory and keys with path characters are refused before any I/O") {
  ScratchFolder scratch;
  SwapStore store(scratch.path(), kKey, "optimizer", 0, small_blocks());
  Tensor buffer = make_swap_buffer(8192, DType::u8);
  char* unaligned = static_cast<char*>(buffer.raw_data()) + 64;
  CHECK(error_of([&] {
          store.write("k", unaligned, 100);
        }).find("is not 4096-byte aligned (use make_swap_buffer)") != std::string::npos);
  CHECK(error_of([&] { store.write("../escape", buffer.raw_data(), 100); }) ==
        "SwapStore: key '../escape': expected letters, digits, '.', '_' or '-'");
  CHECK(store.pending_writes() == 0);
}

TEST_CASE("the engine follows ZT_AIO_ENGINE, and bad aio sizes name their key") {
  ScratchFolder scratch;
  ::setenv("ZT_AIO_ENGINE", "thread_pool", 1);
  {
    SwapStore store(scratch.path(), kKey, "forced", 0, small_blocks());
    CHECK(store.engine() == "O_DIRECT thread pool");
  }
  ::setenv("ZT_AIO_ENGINE", "fastest", 1);
  CHECK(error_of([&] { SwapStore(scratch.path(), kKey, "bad", 0, small_blocks()); }) ==
        "ZT_AIO_ENGINE: expected io_uring, thread_pool or automatic, got 'fastest'");
  ::unsetenv("ZT_AIO_ENGINE");
  dist::AioConfig aio = small_blocks();
  aio.queue_depth = 0;
  CHECK(error_of([&] { SwapStore(scratch.path(), kKey, "bad", 0, aio); }) ==
        "aio.queue_depth: expected a positive number, got 0");
  if (io_uring_available()) {
    SwapStore store(scratch.path(), kKey, "automatic", 0, small_blocks());
    CHECK(store.engine() == "io_uring");
  }
}
