// A program's first step: its command line read before anything else, MPI included. --help
// prints the usage and a bad flag prints the error and the usage, once (by the launcher's rank 0:
// every rank reads the same command line and reaches the same verdict), without MPI's abort
// banner since MPI never started.
#pragma once

#include <fmt/format.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <optional>

#include "apps/cli_flags.h"

namespace zt::apps {

// This process's rank as its launcher set it before MPI starts (mpirun, srun, other PMI
// launchers); 0 when started alone.
inline int launcher_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"}) {
    const char* text = std::getenv(name);
    if (text == nullptr) continue;
    int rank = 0;
    const char* end = text + std::strlen(text);
    auto [parsed_end, error] = std::from_chars(text, end, rank);
    if (error == std::errc() && parsed_end == end) return rank;
  }
  return 0;
}

// Parses argv against `command_line` and hands the flags to `read`, which builds the program's
// options (and may throw FlagError, or std::invalid_argument, on a bad value). Returns nullopt
// to go on, or the status the program exits with: 0 after --help, 1 after an error. A rank other
// than 0 prints nothing and exits 0 after an error, so that mpirun never ends rank 0 before it
// has printed; rank 0's status is the job's.
inline std::optional<int> read_command_line(int argc, char** argv, const CommandLine& command_line,
                                            const std::function<void(const Flags&)>& read) {
  const bool printing = launcher_rank() == 0;
  try {
    read(Flags(argc, argv, command_line));
    return std::nullopt;
  } catch (const HelpRequested&) {
    if (printing) fmt::print("{}", usage_text(command_line));
    return 0;
  } catch (const UsageError& error) {
    if (printing)
      fmt::print(stderr, "{}: {}\n{}", command_line.program, error.what(),
                 usage_text(command_line));
  } catch (const std::exception& error) {
    if (printing) fmt::print(stderr, "{}: {}\n", command_line.program, error.what());
  }
  std::fflush(stderr);
  return printing ? 1 : 0;
}

}  // namespace zt::apps
