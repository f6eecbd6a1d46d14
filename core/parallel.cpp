// Thread-count setting of the OpenMP loops; OpenBLAS always runs single-threaded.
#include "core/parallel.h"

#include <sched.h>

#include <atomic>
#include <cstdlib>
#include <string>

extern "C" void openblas_set_num_threads(int num_threads);

namespace zt {

namespace {
std::atomic<int> configured_threads{0};

int env_int(const char* name, int fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  long value = std::strtol(text, &end, 10);
  return (end != nullptr && *end == '\0' && value > 0) ? int(value) : fallback;
}
}  // namespace

int default_num_threads() {
  int from_env = env_int("ZT_NUM_THREADS", 0);
  if (from_env > 0) return from_env;
  cpu_set_t mask;
  int cores = 1;
  if (sched_getaffinity(0, sizeof mask, &mask) == 0) cores = CPU_COUNT(&mask);
  int local_ranks = env_int("OMPI_COMM_WORLD_LOCAL_SIZE", 1);
  int threads = cores / local_ranks;
  return threads < 1 ? 1 : threads;
}

int num_threads() {
  int threads = configured_threads.load(std::memory_order_relaxed);
  if (threads == 0) {
    threads = default_num_threads();
    set_num_threads(threads);
  }
  return threads;
}

void set_num_threads(int threads) {
  if (threads < 1) threads = 1;
  configured_threads.store(threads, std::memory_order_relaxed);
  // OpenBLAS never threads on its own: its threaded driver rounds differently from the
  // single-threaded one, so the CPU backend cuts large products itself (cpu_gemm.cpp).
  openblas_set_num_threads(1);
}

}  // namespace zt
