// The names of the elementwise ops and which of them run on integer dtypes, generated from the
// lists of core/unary_ops.h and core/backend.h, for error messages and the ops layer's checks.
#include "core/backend.h"

namespace zt {

const char* unary_op_name(UnaryOp op) {
  switch (op) {
#define ZT_UNARY_NAME_CASE(name, Struct) \
  case UnaryOp::name:                    \
    return #name;
    ZT_UNARY_OPS(ZT_UNARY_NAME_CASE, ZT_UNARY_NAME_CASE)
#undef ZT_UNARY_NAME_CASE
  }
  return "unary";
}

bool unary_accepts_integers(UnaryOp op) {
  switch (op) {
#define ZT_UNARY_INTEGERS_CASE(name, Struct) \
  case UnaryOp::name:                        \
    return unary_math::Struct::kAcceptsIntegers;
    ZT_UNARY_OPS(ZT_UNARY_INTEGERS_CASE, ZT_UNARY_INTEGERS_CASE)
#undef ZT_UNARY_INTEGERS_CASE
  }
  return false;
}

const char* binary_op_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::add:
      return "add";
    case BinaryOp::sub:
      return "sub";
    case BinaryOp::mul:
      return "mul";
    case BinaryOp::div:
      return "div";
    case BinaryOp::pow:
      return "pow";
    case BinaryOp::maximum:
      return "maximum";
    case BinaryOp::minimum:
      return "minimum";
    case BinaryOp::eq:
      return "eq";
    case BinaryOp::ne:
      return "ne";
    case BinaryOp::lt:
      return "lt";
    case BinaryOp::le:
      return "le";
    case BinaryOp::gt:
      return "gt";
    case BinaryOp::ge:
      return "ge";
#define ZT_BACKWARD_NAME_CASE(name, Struct) \
  case BinaryOp::name##_backward:           \
    return #name "_backward";
      ZT_UNARY_OPS(ZT_UNARY_SKIP, ZT_BACKWARD_NAME_CASE)
#undef ZT_BACKWARD_NAME_CASE
  }
  return "binary";
}

bool is_comparison(BinaryOp op) {
  return op == BinaryOp::eq || op == BinaryOp::ne || op == BinaryOp::lt || op == BinaryOp::le ||
         op == BinaryOp::gt || op == BinaryOp::ge;
}

// The fused backwards are floating only.
bool binary_accepts_integers(BinaryOp op) {
  return is_comparison(op) || op == BinaryOp::add || op == BinaryOp::sub || op == BinaryOp::mul ||
         op == BinaryOp::maximum || op == BinaryOp::minimum;
}

}  // namespace zt
