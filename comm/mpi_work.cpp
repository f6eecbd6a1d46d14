// MPI error checking, type mappings, and ending the job from a Work's destructor.
#include "comm/mpi_work.h"

#include <fmt/format.h>

#include <exception>
#include <stdexcept>

#include "comm/mpi_runtime.h"

namespace zt::comm::detail {

void check_mpi(int code, std::string_view op) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw std::runtime_error(fmt::format("{}: MPI error: {}", op, std::string_view(text, length)));
}

MPI_Datatype mpi_datatype(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return MPI_FLOAT;
    case DType::f64:
      return MPI_DOUBLE;
    case DType::f16:
    case DType::bf16:
      return MPI_UINT16_T;  // raw bits: only moved, never reduced
    case DType::i32:
      return MPI_INT32_T;
    case DType::i64:
      return MPI_INT64_T;
    case DType::u8:
    case DType::i4x2:  // packed bytes: only moved, never reduced
      return MPI_UINT8_T;
    case DType::i8:
      return MPI_INT8_T;
  }
  throw std::invalid_argument(fmt::format("mpi: no MPI datatype for dtype {}", int(dtype)));
}

MPI_Op mpi_op(ReduceOperation op) {
  switch (op) {
    case ReduceOperation::sum:
      return MPI_SUM;
    case ReduceOperation::max:
      return MPI_MAX;
    case ReduceOperation::min:
      return MPI_MIN;
  }
  throw std::invalid_argument("mpi: unknown ReduceOperation");
}

int element_count(const Tensor& tensor) {
  return int(tensor.numel());
}

void wait_or_abort_job(Work& work) {
  try {
    work.wait();
  } catch (const std::exception& error) {
    // A destructor can't throw, and a collective that failed leaves the group unusable.
    abort_distributed_job(fmt::format("{} (in an unfinished Work being destroyed)", error.what()));
  }
}

}  // namespace zt::comm::detail
