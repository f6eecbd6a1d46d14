// The multi-rank test binary's entry point: doctest runs on every rank (the same test cases in
// the same order), then rank 0 prints one doctest-style summary in which a test case counts as
// failed if it failed on ANY rank. Other ranks print only their failures, each line prefixed
// with "rank R: ". Run it as `mpirun -np N build/tests/mpi_tests` or alone (one rank).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/mpi/mpi_test_world.h"
#include "tests/requirements.h"

namespace zt::testing {
namespace {

comm::MpiRuntime* g_runtime = nullptr;

// What this rank's doctest run produced, gathered by the reporter for the final reduction.
struct RankResults {
  int rank = 0;
  std::ostringstream buffered_output;     // ranks other than 0: the current test case's report
  std::vector<uint8_t> test_case_failed;  // one entry per test case run, in run order
  doctest::TestRunStats run_stats{};
};
RankResults g_results;

// doctest's console reporter on rank 0; on other ranks the same report goes to a buffer that is
// printed (prefixed with the rank) only for a test case that failed there. The run's summary is
// left to main, which knows every rank's results.
struct RankReporter : doctest::ConsoleReporter {
  explicit RankReporter(const doctest::ContextOptions& options)
      : ConsoleReporter(options, g_results.rank == 0 ? *options.cout : g_results.buffered_output) {}

  void test_run_start() override {
    if (g_results.rank == 0) ConsoleReporter::test_run_start();
  }

  void test_case_end(const doctest::CurrentTestCaseStats& stats) override {
    ConsoleReporter::test_case_end(stats);
    g_results.test_case_failed.push_back(stats.testCaseSuccess ? 0 : 1);
    if (g_results.rank == 0) return;
    if (!stats.testCaseSuccess) {
      std::istringstream report(g_results.buffered_output.str());
      std::string report_line;
      std::string prefixed;
      while (std::getline(report, report_line))
        prefixed += fmt::format("rank {}: {}\n", g_results.rank, report_line);
      std::cerr << prefixed << std::flush;
    }
    g_results.buffered_output.str("");
  }

  void test_run_end(const doctest::TestRunStats& stats) override { g_results.run_stats = stats; }
};

// Combines the ranks' results; rank 0 prints the summary. Returns the number of failed cases.
int print_summary_over_ranks(MPI_Comm world, int rank) {
  int local_count = int(g_results.test_case_failed.size());
  int min_count = 0;
  int max_count = 0;
  MPI_Allreduce(&local_count, &min_count, 1, MPI_INT, MPI_MIN, world);
  MPI_Allreduce(&local_count, &max_count, 1, MPI_INT, MPI_MAX, world);
  if (min_count != max_count) {
    if (rank == 0)
      std::cerr << fmt::format(
          "mpi_tests: the ranks ran different numbers of test cases ({} to {}); pass the same "
          "filters to every rank\n",
          min_count, max_count);
    return std::max(max_count, 1);
  }
  std::vector<uint8_t> failed_anywhere = g_results.test_case_failed;
  MPI_Allreduce(MPI_IN_PLACE, failed_anywhere.data(), local_count, MPI_UINT8_T, MPI_MAX, world);
  long long assert_counts[2] = {g_results.run_stats.numAsserts,
                                g_results.run_stats.numAssertsFailed};
  MPI_Allreduce(MPI_IN_PLACE, assert_counts, 2, MPI_LONG_LONG, MPI_SUM, world);
  int failed = int(std::count(failed_anywhere.begin(), failed_anywhere.end(), 1));
  if (rank == 0) {
    const doctest::TestRunStats& stats = g_results.run_stats;
    int run = int(stats.numTestCasesPassingFilters);
    int skipped = int(stats.numTestCases - stats.numTestCasesPassingFilters);
    int ranks = 0;
    MPI_Comm_size(world, &ranks);
    std::cout << std::string(79, '=') << "\n"
              << fmt::format("[doctest] test cases: {} | {} passed | {} failed | {} skipped\n", run,
                             run - failed, failed, skipped)
              << fmt::format(
                     "[doctest] assertions: {} | {} passed | {} failed | (summed over {} ranks)\n",
                     assert_counts[0], assert_counts[0] - assert_counts[1], assert_counts[1], ranks)
              << fmt::format("[doctest] Status: {}\n", failed > 0 ? "FAILURE!" : "SUCCESS!")
              << std::flush;
  }
  return failed;
}

// What every rank has (each flag the minimum over ranks, so that every rank runs the same cases):
// gpu_per_rank when the node has at least as many GPUs as ranks on it.
Availability availability_on_every_rank(comm::MpiRuntime& runtime) {
  Availability available = detect_availability();
  available.gpu_per_rank = cuda_device_count() >= runtime.local_size();
  int flags[5] = {available.cuda_build, available.cuda_device, available.gpu_per_rank,
                  available.fashion_mnist, available.fortunes};
  MPI_Allreduce(MPI_IN_PLACE, flags, 5, MPI_INT, MPI_MIN, runtime.world().mpi_comm());
  return {flags[0] != 0, flags[1] != 0, flags[2] != 0, flags[3] != 0, flags[4] != 0};
}

}  // namespace

DOCTEST_REGISTER_REPORTER("mpi_ranks", 1, RankReporter);

comm::MpiRuntime& test_runtime() {
  return *g_runtime;
}

}  // namespace zt::testing

int main(int argc, char** argv) {
  using namespace zt;
  return comm::run_distributed_main(argc, argv, [argc, argv](comm::MpiRuntime& runtime) {
    testing::g_runtime = &runtime;
    testing::g_results.rank = runtime.rank();
    doctest::Context context;
    testing::exclude_unavailable(context, testing::availability_on_every_rank(runtime),
                                 /*print=*/runtime.rank() == 0);
    context.applyCommandLine(argc, argv);
    context.setOption("reporters", "mpi_ranks");
    // mpirun hands each rank a terminal, so doctest would colour output that is mostly piped
    // into logs.
    context.setOption("no-colors", true);
    int status = context.run();
    if (context.shouldExit()) return status;
    int failed = testing::print_summary_over_ranks(runtime.world().mpi_comm(), runtime.rank());
    return failed > 0 ? 1 : 0;
  });
}
