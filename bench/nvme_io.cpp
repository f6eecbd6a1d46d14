// NVMe swapping against the disk it runs on, in one run and one folder: the raw throughput of a
// plain sequential O_DIRECT write then read (one thread, dd-like), the SwapStore's write and
// read of the same bytes through each engine with their ratios to raw, and a SubGroupSwapper
// pass with a synthetic update per sub-group, sequential and pipelined, whose step time falls
// below the sum of its I/O and compute when they overlap. Flags: `bench/nvme_io --help`.
#include <fcntl.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "apps/read_command_line.h"
#include "core/factory.h"
#include "dist/offload/sub_group_swapper.h"
#include "dist/offload/swap_store.h"

using namespace zt;
using namespace zt::offload;

namespace {

const apps::CommandLine kNvmeIoCommandLine{
    "bench/nvme_io",
    "Raw sequential O_DIRECT throughput of a folder, the swap store's through io_uring and the\n"
    "thread pool, and a sub-group pipeline's overlap of I/O with compute, as one table.",
    {
        {"folder", "PATH", "/tmp", "where the test files go (removed afterwards)"},
        {"mib", "N", "512", "bytes moved by the raw and swap-store runs, in MiB"},
        {"transfer-mib", "N", "64", "the swap store's transfer (one key) size, in MiB"},
        {"block-kib", "N", "1024", "aio.block_size and the raw run's block, in KiB"},
        {"queue-depth", "N", "8", "aio.queue_depth"},
        {"sub-groups", "N", "8", "sub-groups of the pipeline run"},
        {"sub-group-mib", "N", "16", "MiB per tensor of a sub-group (3 tensors each)"},
        {"compute-passes", "N", "6", "passes of the synthetic update over a sub-group"},
    }};

struct NvmeIoOptions {
  std::string folder;
  int64_t bytes = 0, transfer_bytes = 0, block_bytes = 0, queue_depth = 0;
  int64_t sub_groups = 0, sub_group_numel = 0, compute_passes = 0;
};

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}
double mib_per_second(int64_t bytes, double seconds) {
  return double(bytes) / double(1 << 20) / seconds;
}

struct RawThroughput {
  double write_mib_s = 0, read_mib_s = 0;
  bool direct = true;
};

// One thread, one block at a time, like `dd oflag=direct` then `dd iflag=direct`: what the
// folder's disk gives a plain sequential writer and reader.
RawThroughput measure_raw(const NvmeIoOptions& options, void* block) {
  std::string path = options.folder + "/nvme_io_raw.tmp";
  RawThroughput raw;
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC, 0600);
  if (fd < 0) {
    raw.direct = false;
    fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  }
  if (fd < 0) throw std::runtime_error(fmt::format("{}: {}", path, std::strerror(errno)));
  auto transfer_all = [&](bool writing) {
    auto start = Clock::now();
    for (int64_t offset = 0; offset < options.bytes; offset += options.block_bytes) {
      ssize_t moved = writing ? ::pwrite(fd, block, size_t(options.block_bytes), offset)
                              : ::pread(fd, block, size_t(options.block_bytes), offset);
      if (moved != options.block_bytes)
        throw std::runtime_error(fmt::format("{}: {} at offset {}: {}", path,
                                             writing ? "write" : "read", offset,
                                             moved < 0 ? std::strerror(errno) : "short"));
    }
    return mib_per_second(options.bytes, seconds_since(start));
  };
  raw.write_mib_s = transfer_all(true);
  raw.read_mib_s = transfer_all(false);
  ::close(fd);
  ::unlink(path.c_str());
  return raw;
}

dist::AioConfig aio_of(const NvmeIoOptions& options) {
  dist::AioConfig aio;
  aio.block_size = options.block_bytes;
  aio.queue_depth = options.queue_depth;
  return aio;
}

struct StoreThroughput {
  std::string engine;
  double write_mib_s = 0, read_mib_s = 0;
};

// Every transfer submitted at once, then all waited: the store's best case, as an optimizer
// swap-out or swap-in of many sub-groups is.
StoreThroughput measure_store(const NvmeIoOptions& options, IoEngineChoice engine,
                              std::vector<Tensor>& buffers) {
  SwapStore store(options.folder, "--folder", "nvme_io_bench", 0, aio_of(options), engine);
  StoreThroughput result{store.describe()};
  auto run = [&](bool writing) {
    auto start = Clock::now();
    for (size_t i = 0; i < buffers.size(); ++i) {
      std::string key = fmt::format("transfer{}", i);
      if (writing)
        store.write(key, buffers[i].raw_data(), options.transfer_bytes);
      else
        store.read(key, buffers[i].raw_data(), options.transfer_bytes);
    }
    store.wait_all();
    return mib_per_second(int64_t(buffers.size()) * options.transfer_bytes, seconds_since(start));
  };
  result.write_mib_s = run(true);
  result.read_mib_s = run(false);
  return result;
}

// A stand-in for a sub-group's optimizer step: passes of an Adam-like update over its three
// tensors, memory-bound as the real one is.
void synthetic_update(const std::vector<Tensor>& values, int64_t passes) {
  float* weight = values[0].data_ptr<float>();
  float* moment = values[1].data_ptr<float>();
  float* variance = values[2].data_ptr<float>();
  int64_t numel = values[0].numel();
  for (int64_t pass = 0; pass < passes; ++pass) {
#pragma omp parallel for
    for (int64_t i = 0; i < numel; ++i) {
      moment[i] = 0.9f * moment[i] + 0.1f * weight[i];
      variance[i] = 0.999f * variance[i] + 0.001f * weight[i] * weight[i];
      weight[i] -= 1e-4f * moment[i] / (variance[i] + 1e-8f);
    }
  }
}

struct PipelineRun {
  double step_seconds = 0, io_seconds = 0, compute_seconds = 0;
};

// One for_each over sub-groups stored beforehand. I/O seconds: the store's busy time reading
// plus writing (each counted once however many transfers overlap).
PipelineRun measure_pipeline(const NvmeIoOptions& options, bool pipelined) {
  SwapStore store(options.folder, "--folder", "nvme_io_pipeline", 0, aio_of(options));
  std::vector<int64_t> numels(size_t(options.sub_groups), options.sub_group_numel);
  SubGroupSwapper swapper(store, numels, 3, SubGroupSwapper::min_buffer_count(3, true, true),
                          pipelined, pipelined);
  std::vector<Tensor> initial{ones({options.sub_group_numel}), ones({options.sub_group_numel}),
                              ones({options.sub_group_numel})};
  for (size_t g = 0; g < numels.size(); ++g) swapper.store(g, initial);
  SwapStats before = swapper.stats();
  swapper.for_each([&](size_t, const std::vector<Tensor>& values) {
    synthetic_update(values, options.compute_passes);
  });
  SwapStats after = swapper.stats();
  PipelineRun run;
  run.step_seconds = swapper.pipeline_stats().total_seconds;
  run.compute_seconds = swapper.pipeline_stats().update_seconds;
  run.io_seconds =
      (after.read_seconds - before.read_seconds) + (after.write_seconds - before.write_seconds);
  return run;
}

std::string filesystem_of(const std::string& folder) {
  struct statfs info {};
  if (::statfs(folder.c_str(), &info) != 0) return "unknown";
  switch (uint64_t(info.f_type)) {
    case 0x01021994:
      return "tmpfs (memory, not a disk)";
    case 0x794c7630:
      return "overlayfs";
    case 0xEF53:
      return "ext4";
    case 0x58465342:
      return "xfs";
    case 0x9123683E:
      return "btrfs";
    default:
      return fmt::format("filesystem type {:#x}", uint64_t(info.f_type));
  }
}

int run(const NvmeIoOptions& options) {
  if (options.bytes % options.transfer_bytes != 0 || options.bytes % options.block_bytes != 0)
    throw std::invalid_argument("--mib: expected a multiple of --transfer-mib and --block-kib");
  // The store's own checks of the folder (exists, a directory, writable), before any timing.
  SwapStore(options.folder, "--folder", "nvme_io_check", 0, aio_of(options));
  fmt::print("folder {} ({}); {} MiB moved per run, {} KiB blocks, queue depth {}\n",
             options.folder, filesystem_of(options.folder), options.bytes >> 20,
             options.block_bytes >> 10, options.queue_depth);
  std::vector<Tensor> buffers;
  for (int64_t i = 0; i < options.bytes / options.transfer_bytes; ++i) {
    buffers.push_back(make_swap_buffer(options.transfer_bytes, DType::u8));
    std::memset(buffers.back().raw_data(), int(i + 1), size_t(options.transfer_bytes));
  }
  RawThroughput raw = measure_raw(options, buffers[0].raw_data());
  fmt::print("\n{:<46} {:>12} {:>12} {:>9} {:>9}\n", "sequential transfer", "write MiB/s",
             "read MiB/s", "w / raw", "r / raw");
  fmt::print("{:<46} {:>12.0f} {:>12.0f} {:>9} {:>9}\n",
             raw.direct ? "raw, one thread (O_DIRECT)" : "raw, one thread (buffered)",
             raw.write_mib_s, raw.read_mib_s, "1.00", "1.00");
  std::vector<IoEngineChoice> engines{IoEngineChoice::thread_pool};
  if (io_uring_available()) engines.insert(engines.begin(), IoEngineChoice::io_uring);
  for (IoEngineChoice engine : engines) {
    StoreThroughput store = measure_store(options, engine, buffers);
    fmt::print("{:<46} {:>12.0f} {:>12.0f} {:>9.2f} {:>9.2f}\n", "SwapStore: " + store.engine,
               store.write_mib_s, store.read_mib_s, store.write_mib_s / raw.write_mib_s,
               store.read_mib_s / raw.read_mib_s);
  }
  std::string refusal;
  if (!io_uring_available(&refusal)) fmt::print("(io_uring refused here: {})\n", refusal);
  buffers.clear();
  fmt::print("\n{} sub-groups x 3 tensors x {} MiB, {} update passes each\n", options.sub_groups,
             options.sub_group_numel * 4 >> 20, options.compute_passes);
  fmt::print("{:<46} {:>9} {:>9} {:>9} {:>12} {:>9}\n", "SubGroupSwapper.for_each", "step s",
             "I/O s", "compute s", "I/O+comp. s", "overlap");
  for (bool pipelined : {false, true}) {
    PipelineRun run = measure_pipeline(options, pipelined);
    double sum = run.io_seconds + run.compute_seconds;
    fmt::print("{:<46} {:>9.3f} {:>9.3f} {:>9.3f} {:>12.3f} {:>8.0f}%\n",
               pipelined ? "pipelined (read g+1, write g-1 during g)" : "sequential (no pipeline)",
               run.step_seconds, run.io_seconds, run.compute_seconds, sum,
               100.0 * (sum - run.step_seconds) / sum);
  }
  fmt::print("overlap: the share of I/O + compute hidden by running them at once\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  NvmeIoOptions options;
  std::optional<int> status =
      apps::read_command_line(argc, argv, kNvmeIoCommandLine, [&](const apps::Flags& flags) {
        options.folder = flags.get_string("folder");
        options.bytes = flags.get_int("mib", 1) << 20;
        options.transfer_bytes = flags.get_int("transfer-mib", 1) << 20;
        options.block_bytes = flags.get_int("block-kib", 4) << 10;
        options.queue_depth = flags.get_int("queue-depth", 1);
        options.sub_groups = flags.get_int("sub-groups", 1);
        options.sub_group_numel = (flags.get_int("sub-group-mib", 1) << 20) / 4;
        options.compute_passes = flags.get_int("compute-passes", 0);
      });
  if (status) return *status;
  try {
    return run(options);
  } catch (const std::exception& error) {
    fmt::print(stderr, "bench/nvme_io: {}\n", error.what());
    return 1;
  }
}
