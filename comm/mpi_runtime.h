// MpiRuntime: MPI's lifetime in one object (MPI_Init_thread in the constructor, MPI_Finalize in
// the destructor), the world communicator and this rank's place on its node. Works under mpirun
// and as a singleton (a program started without mpirun is a world of one).
// run_distributed_main is the failure rule of every distributed program: a rank that throws
// never leaves the others blocked in a collective; its error is printed and the job ends (a
// world of one simply exits with status 1, without MPI_Abort's banner).
#pragma once

#include <functional>
#include <memory>
#include <string_view>

#include "comm/mpi_communicator.h"

namespace zt::comm {

class MpiRuntime {
 public:
  // One per process: MPI cannot be initialised again after it was finalised.
  MpiRuntime(int& argc, char**& argv);
  ~MpiRuntime();
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;

  MpiCommunicator& world() { return *world_; }
  int rank() const { return world_->rank(); }
  int size() const { return world_->size(); }
  // This rank among the ranks on its node (Open MPI's OMPI_COMM_WORLD_LOCAL_RANK/SIZE, else
  // MPI_Comm_split_type over shared memory).
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }
  // The thread level MPI granted (MPI_THREAD_FUNNELED was asked for: only the thread that
  // initialised MPI calls it; OpenMP workers never do).
  int thread_level() const { return thread_level_; }

 private:
  std::unique_ptr<MpiCommunicator> world_;
  int local_rank_ = 0;
  int local_size_ = 1;
  int thread_level_ = 0;
};

// Ends the whole job after printing "rank R: <message>" to stderr (MPI_Abort on the world).
// A rank other than 0 first waits a moment, so that an error every rank hits identically (a bad
// config, a missing file) is printed once, by rank 0, whose abort ends the others before they
// print; an error on one rank alone is printed by that rank, a moment later. In a world of one
// the process exits with status 1 instead (there is no job to end). Never returns.
[[noreturn]] void abort_distributed_job(std::string_view message);

// Initialises MPI, runs body on every rank and returns its status. An exception escaping body
// on any rank goes to abort_distributed_job, so no rank waits forever for a rank that failed;
// in a world of one (started without mpirun, or -np 1) it prints "rank 0: <message>", finalises
// MPI and returns 1.
int run_distributed_main(int argc, char** argv, std::function<int(MpiRuntime&)> body);

}  // namespace zt::comm
