// Matrix products without autograd, through Backend::gemm.
#pragma once

#include "core/tensor.h"

namespace zt::ops {

// NumPy/PyTorch matmul: 1-d @ 1-d is a dot product, 2-d @ 2-d a matrix product, and leading
// batch dimensions broadcast. Strided 2-d inputs whose last or second-last stride is 1 are
// passed to gemm without a copy.
Tensor matmul(const Tensor& a, const Tensor& b);
Tensor mm(const Tensor& a, const Tensor& b);   // [m,k] @ [k,n]
Tensor bmm(const Tensor& a, const Tensor& b);  // [b,m,k] @ [b,k,n]
// x [..., in] @ weight[out, in]^T + bias[out]; bias may be undefined.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);

}  // namespace zt::ops
