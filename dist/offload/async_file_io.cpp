// The choice of AsyncFileIo engine, and the thread-pool engine: blocking pread/pwrite, one
// block per worker thread at a time. It keeps as many blocks in flight as io_uring would
// (intra_op_parallelism workers x queue_depth), so that both engines load the disk alike.
#include "dist/offload/async_file_io.h"

#include <fmt/format.h>

#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "dist/offload/io_block_queue.h"

namespace zt::offload {
namespace {

class ThreadPoolFileIo final : public AsyncFileIo {
 public:
  explicit ThreadPoolFileIo(const dist::AioConfig& aio) : queue_(aio.block_size) {
    int64_t threads = aio.intra_op_parallelism * aio.queue_depth;
    for (int64_t i = 0; i < threads; ++i) workers_.emplace_back([this] { run(); });
  }
  ~ThreadPoolFileIo() override {
    queue_.stop();
    for (std::thread& worker : workers_) worker.join();
  }
  JobId submit(int fd, IoDirection direction, void* buffer, int64_t bytes,
               int64_t file_offset) override {
    return queue_.submit(fd, direction, buffer, bytes, file_offset);
  }
  IoJobResult wait(JobId job) override { return queue_.wait(job); }
  std::string_view engine() const override { return "O_DIRECT thread pool"; }

 private:
  void run() {
    for (;;) {
      std::vector<IoBlock> blocks = queue_.take(1, true);
      if (blocks.empty()) return;  // stopped and drained
      queue_.complete(blocks[0], transfer_blocking(blocks[0]));
    }
  }

  IoBlockQueue queue_;
  std::vector<std::thread> workers_;
};

void check_aio_sizes(const dist::AioConfig& aio) {
  auto check = [](const char* key, int64_t value) {
    if (value <= 0)
      throw std::invalid_argument(
          fmt::format("aio.{}: expected a positive number, got {}", key, value));
  };
  check("block_size", aio.block_size);
  check("queue_depth", aio.queue_depth);
  check("intra_op_parallelism", aio.intra_op_parallelism);
}

// ZT_AIO_ENGINE=thread_pool forces the fallback engine (how a machine that allows io_uring
// runs the path that containers get); io_uring forces io_uring; unset or automatic: choose.
IoEngineChoice choice_from_environment(IoEngineChoice choice) {
  if (choice != IoEngineChoice::automatic) return choice;
  const char* value = std::getenv("ZT_AIO_ENGINE");
  if (value == nullptr || std::string(value).empty() || std::string(value) == "automatic")
    return choice;
  if (std::string(value) == "thread_pool") return IoEngineChoice::thread_pool;
  if (std::string(value) == "io_uring") return IoEngineChoice::io_uring;
  throw std::invalid_argument(
      fmt::format("ZT_AIO_ENGINE: expected io_uring, thread_pool or automatic, got '{}'", value));
}

}  // namespace

std::unique_ptr<AsyncFileIo> make_thread_pool_file_io(const dist::AioConfig& aio) {
  return std::make_unique<ThreadPoolFileIo>(aio);
}

std::unique_ptr<AsyncFileIo> make_async_file_io(const dist::AioConfig& aio, IoEngineChoice choice) {
  check_aio_sizes(aio);
  choice = choice_from_environment(choice);
  if (choice == IoEngineChoice::thread_pool) return make_thread_pool_file_io(aio);
  std::string refusal;
  std::unique_ptr<AsyncFileIo> uring = make_uring_file_io(aio, refusal);
  if (uring) return uring;
  if (choice == IoEngineChoice::io_uring)
    throw std::runtime_error("io_uring was asked for and the kernel refused it: " + refusal);
  return make_thread_pool_file_io(aio);
}

}  // namespace zt::offload
