// The CPU thread count and the one loop-splitting helper every CPU kernel uses.
// Invariant: chunk boundaries depend only on (begin, end, grain), never on the thread count,
// so a kernel whose chunks are independent gives identical results for any thread count.
#pragma once

#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace zt {

// Threads used by CPU kernels (OpenMP loops; each OpenBLAS call runs on one of them).
// Defaults to default_num_threads().
int num_threads();
void set_num_threads(int threads);
// The cores this process may run on (sched affinity) divided by the ranks on this node
// (OMPI_COMM_WORLD_LOCAL_SIZE, else 1), at least 1. ZT_NUM_THREADS overrides it.
int default_num_threads();

// This thread's index in the innermost OpenMP team (0 outside one, or built without OpenMP):
// for kernels that keep one workspace per thread of their team.
inline int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// Calls body(chunk_begin, chunk_end) over [begin, end) in chunks of `grain` elements, in
// parallel when there is more than one chunk.
template <typename Body>
void parallel_for(int64_t begin, int64_t end, int64_t grain, const Body& body) {
  if (end <= begin) return;
  if (grain < 1) grain = 1;
  int64_t chunks = (end - begin + grain - 1) / grain;
  if (chunks == 1 || num_threads() == 1) {
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      int64_t chunk_begin = begin + chunk * grain;
      body(chunk_begin, chunk_begin + grain < end ? chunk_begin + grain : end);
    }
    return;
  }
  // Without OpenMP (a program that includes this header but is built without -fopenmp) the
  // loop below runs the chunks in order on this thread.
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(num_threads())
#endif
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    int64_t chunk_begin = begin + chunk * grain;
    body(chunk_begin, chunk_begin + grain < end ? chunk_begin + grain : end);
  }
}

}  // namespace zt
