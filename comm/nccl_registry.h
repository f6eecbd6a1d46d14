// The one place code outside the CUDA archive reaches NCCL: comm/nccl_communicator.cpp, which
// is linked only into libzerotrain_cuda.a, registers its maker here at static initialisation.
// So libzerotrain.a references no CUDA symbol, a CPU-only program links without any CUDA
// library, and a program linked with the CUDA archive (whole) finds NCCL here.
#pragma once

#include <memory>

#include "comm/communicator.h"
#include "comm/mpi_communicator.h"

namespace zt::comm {

// An NCCL communicator and the CUDA device it moves this rank's tensors on.
struct DeviceCommunicator {
  std::unique_ptr<Communicator> communicator;
  int device_index = -1;
};

// Makes the NCCL communicator of `world`'s ranks, one device per rank (make_nccl_communicator).
// Collective over `world`; throws std::runtime_error on every rank alike when it cannot.
using NcclMaker = DeviceCommunicator (*)(MpiCommunicator& world);

void register_nccl_maker(NcclMaker maker);
// Null when the program is not linked with the CUDA archive (or the build has no CUDA).
NcclMaker registered_nccl_maker();

}  // namespace zt::comm
