// The CPU backend: OpenBLAS for GEMM, OpenMP (through parallel_for) for every other loop.
// The methods are defined across core/cpu/*.cpp, one file per kind of kernel:
//   cpu_copy.cpp (copy, fill, arange), cpu_random.cpp (uniform, normal, dropout),
//   cpu_elementwise.cpp (unary, binary, where), cpu_reduce.cpp, cpu_gemm.cpp,
//   cpu_softmax.cpp (softmax, cross entropy), cpu_conv.cpp, cpu_pool.cpp, cpu_layer_norm.cpp,
//   cpu_embedding.cpp (embedding, index_select, index_add), cpu_optimizer.cpp (adam_update,
//   sgd_update; sum_of_squares is in cpu_reduce.cpp).
#pragma once

#include "core/allocator.h"
#include "core/backend.h"

namespace zt::cpu {

class CpuBackend final : public Backend {
 public:
  Device device() const override { return Device::cpu(); }
  Allocator& allocator(Device) override { return cpu_allocator(); }
  int device_count() const override { return 1; }

  void copy(const Tensor& src, const Tensor& dst) override;
  void fill(const Tensor& dst, double value) override;
  void arange(const Tensor& dst, double start, double step) override;
  void uniform(const Tensor& dst, double low, double high, uint64_t seed, uint64_t offset) override;
  void normal(const Tensor& dst, double mean, double stddev, uint64_t seed,
              uint64_t offset) override;

  void unary(UnaryOp op, const Tensor& in, const Tensor& out) override;
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) override;
  void where(const Tensor& condition, const Tensor& a, const Tensor& b, const Tensor& out) override;

  void reduce(ReduceOp op, const Tensor& in, const Tensor& out, int64_t correction) override;

  void gemm(const GemmArgs& args) override;

  void softmax_forward(const Tensor& in, const Tensor& out, bool log) override;
  void softmax_backward(const Tensor& grad_out, const Tensor& out, const Tensor& grad_in,
                        bool log) override;
  void cross_entropy_forward(const Tensor& logits, const Tensor& target, int64_t ignore_index,
                             double label_smoothing, const Tensor& losses,
                             const Tensor& log_probs) override;
  void cross_entropy_backward(const Tensor& grad_losses, const Tensor& log_probs,
                              const Tensor& target, int64_t ignore_index, double label_smoothing,
                              const Tensor& grad_logits) override;

  void conv2d_forward(const Tensor& input, const Tensor& weight, const Tensor& bias,
                      const Tensor& out, const Conv2dParams& params) override;
  void conv2d_backward_input(const Tensor& grad_out, const Tensor& weight, const Tensor& grad_input,
                             const Conv2dParams& params) override;
  void conv2d_backward_weight(const Tensor& grad_out, const Tensor& input,
                              const Tensor& grad_weight, const Conv2dParams& params) override;

  void max_pool2d_forward(const Tensor& input, const Tensor& out, const Tensor& indices,
                          const Pool2dParams& params) override;
  void max_pool2d_backward(const Tensor& grad_out, const Tensor& indices,
                           const Tensor& grad_input) override;
  void avg_pool2d_forward(const Tensor& input, const Tensor& out,
                          const Pool2dParams& params) override;
  void avg_pool2d_backward(const Tensor& grad_out, const Tensor& grad_input,
                           const Pool2dParams& params) override;

  void layer_norm_forward(const Tensor& input, const Tensor& weight, const Tensor& bias, double eps,
                          const Tensor& out, const Tensor& mean, const Tensor& rstd) override;
  void layer_norm_backward(const Tensor& grad_out, const Tensor& input, const Tensor& mean,
                           const Tensor& rstd, const Tensor& weight, const Tensor& grad_input,
                           const Tensor& grad_weight, const Tensor& grad_bias) override;

  void embedding_forward(const Tensor& weight, const Tensor& indices, const Tensor& out) override;
  void embedding_backward(const Tensor& grad_out, const Tensor& indices, const Tensor& grad_weight,
                          int64_t padding_idx) override;
  void index_select(const Tensor& in, int64_t dim, const Tensor& indices,
                    const Tensor& out) override;
  void index_add(const Tensor& out, int64_t dim, const Tensor& indices,
                 const Tensor& source) override;

  void dropout_forward(const Tensor& input, const Tensor& out, const Tensor& mask, double p,
                       uint64_t seed, uint64_t offset) override;
  void dropout_backward(const Tensor& grad_out, const Tensor& mask, double p,
                        const Tensor& grad_input) override;

  void adam_update(std::span<const AdamOperands> tensors, const AdamStepConstants& k) override;
  void sgd_update(std::span<const SgdOperands> tensors, const SgdStepConstants& k) override;
  void sum_of_squares(std::span<const Tensor> tensors, std::span<double> out) override;
};

CpuBackend& cpu_backend();

}  // namespace zt::cpu
