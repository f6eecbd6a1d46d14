// A scratch directory that every rank of a communicator names the same (the multi-rank tests
// that write files: checkpoints, model files); rank 0 empties it first and removes it at the end.
#pragma once

#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "comm/communicator.h"
#include "core/factory.h"

namespace zt::testing {

class SharedScratch {
 public:
  explicit SharedScratch(comm::Communicator& comm, const std::string& purpose = "checkpoint-test")
      : comm_(comm) {
    Tensor id = full({1}, double(getpid()), {.dtype = DType::f64});
    comm.broadcast(id, 0);
    path_ = fmt::format("/tmp/zt-{}-{}", purpose, int64_t(id.item()));
    if (comm.rank() == 0) std::filesystem::remove_all(path_);
    comm.barrier();
  }
  ~SharedScratch() {
    comm_.barrier();
    if (comm_.rank() == 0) std::filesystem::remove_all(path_);
  }
  SharedScratch(const SharedScratch&) = delete;
  SharedScratch& operator=(const SharedScratch&) = delete;
  const std::string& path() const { return path_; }

 private:
  comm::Communicator& comm_;
  std::string path_;
};

}  // namespace zt::testing
