// MpiRuntime and the distributed failure rule. With several ranks the rule relies on MPI_Abort
// ending every rank (Open MPI's mpirun kills the whole job when one process aborts or dies from a
// signal). A world of one has nobody to end, so its errors end it as any program's do.
#include "comm/mpi_runtime.h"

#include <fmt/format.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

namespace zt::comm {
namespace {

// How long a rank other than 0 waits before printing its error and aborting, in case rank 0
// hit the same error and its abort is already on the way (measured: rank 0's abort ends the
// others in well under a second on an oversubscribed 2-core machine).
constexpr std::chrono::milliseconds kNonRootAbortDelay{2000};

std::optional<int> int_from_env(const char* name) {
  const char* text = std::getenv(name);
  if (text == nullptr) return std::nullopt;
  int value = 0;
  const char* end = text + std::strlen(text);
  auto [parsed_end, error] = std::from_chars(text, end, value);
  if (error != std::errc() || parsed_end != end) return std::nullopt;
  return value;
}

void check_mpi_init(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw std::runtime_error(fmt::format("{}: {}", what, std::string_view(text, length)));
}

int world_rank_or_minus_one() {
  int initialized = 0;
  int finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  int rank = -1;
  if (initialized && !finalized) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

}  // namespace

MpiRuntime::MpiRuntime(int& argc, char**& argv) {
  int initialized = 0;
  int finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized || finalized)
    throw std::logic_error(
        "MpiRuntime: MPI is already initialised or was finalised; make one MpiRuntime per process");
  check_mpi_init(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &thread_level_),
                 "MPI_Init_thread");
  world_ = std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, false);
  std::optional<int> env_local_rank = int_from_env("OMPI_COMM_WORLD_LOCAL_RANK");
  std::optional<int> env_local_size = int_from_env("OMPI_COMM_WORLD_LOCAL_SIZE");
  if (env_local_rank && env_local_size) {
    local_rank_ = *env_local_rank;
    local_size_ = *env_local_size;
    return;
  }
  // Not started by Open MPI's launcher: ask MPI which ranks share this node's memory.
  MPI_Comm node = MPI_COMM_NULL;
  check_mpi_init(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, world_->rank(),
                                     MPI_INFO_NULL, &node),
                 "MPI_Comm_split_type");
  MPI_Comm_rank(node, &local_rank_);
  MPI_Comm_size(node, &local_size_);
  MPI_Comm_free(&node);
}

MpiRuntime::~MpiRuntime() {
  world_.reset();
  MPI_Finalize();
}

void abort_distributed_job(std::string_view message) {
  int rank = world_rank_or_minus_one();
  int size = 1;
  if (rank >= 0) MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (rank > 0 && size > 1) std::this_thread::sleep_for(kNonRootAbortDelay);
  fmt::print(stderr, "rank {}: {}\n", rank, message);
  std::fflush(nullptr);
  // A world of one: MPI_Abort would only add Open MPI's banner (and, started without mpirun,
  // sometimes ORTE's "Data unpack would read past end of buffer"). This may be called from a
  // destructor with MPI work unfinished, so the process ends without MPI_Finalize, which Open
  // MPI accepts silently for a status other than 0.
  if (rank >= 0 && size > 1) MPI_Abort(MPI_COMM_WORLD, 1);
  std::_Exit(1);
}

int run_distributed_main(int argc, char** argv, std::function<int(MpiRuntime&)> body) {
  std::optional<MpiRuntime> runtime;
  try {
    runtime.emplace(argc, argv);
  } catch (const std::exception& error) {
    fmt::print(stderr, "{}: {}\n", argc > 0 ? argv[0] : "zerotrain", error.what());
    return 1;
  }
  std::string failure;
  try {
    return body(*runtime);
  } catch (const std::exception& error) {
    failure = error.what();
  } catch (...) {
    failure = "an exception not derived from std::exception";
  }
  if (runtime->size() > 1) abort_distributed_job(failure);
  // A world of one waits for nobody: body's objects are gone, so MPI is finalised and the
  // process exits with status 1 as any failed program does, with no MPI banner.
  fmt::print(stderr, "rank 0: {}\n", failure);
  runtime.reset();
  return 1;
}

}  // namespace zt::comm
