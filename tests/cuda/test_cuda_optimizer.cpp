// The CUDA fused optimizer updates and sum_of_squares against the CPU backend: Adam and SGD
// must give the CPU's bits exactly (same operations, same order, no FMA), over lists that
// mix tiny, odd and large tensors, unaligned views and thousands of tensors in one call;
// sums of squares agree to 1e-12 relative, repeat bit for bit, and flag infs and NaNs; and
// optim::Adam itself (as the ZeRO engine runs it) over GPU parameters. Without
// a GPU the cases that need one are skipped (ZT_NEEDS_CUDA_DEVICE).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <random>
#include <vector>

#include "core/backend.h"
#include "core/factory.h"
#include "core/ops/optimizer.h"
#include "core/ops/reduce.h"
#include "core/ops/view.h"
#include "optim/adam.h"
#include "optim/update_rules.h"
#include "tests/cuda/cuda_test_util.h"

using namespace zt;
using namespace zt::optim;

namespace {

using cuda_test::kGpu;

// Around the float4 width and the CUDA chunk (16384 elements), and one large tensor.
const int64_t kSizes[] = {1, 3, 4, 5, 1000, 4097, 16384, 16385, 65536 + 3, (int64_t(1) << 20) + 5};

Tensor random_f32(int64_t numel, uint32_t seed, double low, double high) {
  std::mt19937 engine(seed);
  std::uniform_real_distribution<float> distribution{float(low), float(high)};
  Tensor tensor = empty({numel});
  float* data = tensor.data_ptr<float>();
  for (int64_t i = 0; i < numel; ++i) data[i] = distribution(engine);
  return tensor;
}

// One named set of tensors (param and its operands) on the host and the same on the GPU.
struct Twin {
  std::vector<Tensor> host, device;
};

Twin make_twin(const std::vector<int64_t>& sizes, uint32_t seed, double low, double high) {
  Twin twin;
  for (int64_t numel : sizes) {
    twin.host.push_back(random_f32(numel, seed++, low, high));
    twin.device.push_back(ops::to_device(twin.host.back(), kGpu));
  }
  return twin;
}

void check_bitwise(const Twin& twin, const char* what) {
  for (size_t i = 0; i < twin.host.size(); ++i) {
    Tensor back = ops::to_device(twin.device[i], Device::cpu());
    const float* gpu = back.data_ptr<float>();
    const float* cpu = twin.host[i].data_ptr<float>();
    int64_t mismatches = 0, first = -1;
    for (int64_t e = 0; e < back.numel(); ++e) {
      if (std::memcmp(&gpu[e], &cpu[e], sizeof(float)) != 0) {
        if (first < 0) first = e;
        ++mismatches;
      }
    }
    CHECK_MESSAGE(mismatches == 0, what << " tensor " << i << " (numel " << back.numel() << "): "
                                        << mismatches << " elements differ, first at " << first);
  }
}

// Runs Adam for `steps` steps on both devices over tensors of `sizes`.
void compare_adam(const std::vector<int64_t>& sizes, const AdamHyper& base, int steps) {
  Twin params = make_twin(sizes, 100, -1.0, 1.0), m = make_twin(sizes, 300, -0.01, 0.01);
  Twin v = make_twin(sizes, 500, 0.0, 1e-4);
  for (int step = 1; step <= steps; ++step) {
    Twin grads = make_twin(sizes, 700 + 50 * uint32_t(step), -0.1, 0.1);
    AdamHyper hyper = base;
    hyper.step = step;
    for (bool on_gpu : {false, true}) {
      std::vector<AdamOperands> operands;
      for (size_t i = 0; i < sizes.size(); ++i) {
        auto pick = [&](const Twin& twin) { return on_gpu ? twin.device[i] : twin.host[i]; };
        operands.push_back({pick(params), pick(grads), pick(m), pick(v)});
      }
      ops::adam_update(operands, adam_step_constants(hyper));
    }
  }
  check_bitwise(params, "param");
  check_bitwise(m, "exp_avg");
  check_bitwise(v, "exp_avg_sq");
}

std::vector<int64_t> standard_sizes() {
  return std::vector<int64_t>(std::begin(kSizes), std::end(kSizes));
}

}  // namespace

TEST_SUITE("cuda") {
  TEST_CASE("cuda_adam_equals_the_cpu_bitwise_with_and_without_decoupled_decay" *
            ZT_NEEDS_CUDA_DEVICE) {
    for (bool decoupled : {true, false}) {
      for (bool bias_correction : {true, false}) {
        CAPTURE(decoupled);
        CAPTURE(bias_correction);
        compare_adam(standard_sizes(),
                     {.lr = 1e-3,
                      .weight_decay = 0.01,
                      .decoupled_weight_decay = decoupled,
                      .bias_correction = bias_correction},
                     3);
      }
    }
  }

  TEST_CASE("cuda_sgd_equals_the_cpu_bitwise_with_momentum_nesterov_first_step_and_decay" *
            ZT_NEEDS_CUDA_DEVICE) {
    const SgdHyper hypers[] = {{0.1, 0.0, 0.0, 0.0, false},
                               {0.1, 0.0, 0.0, 0.01, false},
                               {0.1, 0.9, 0.0, 0.01, false},
                               {0.05, 0.9, 0.3, 0.0, false},
                               {0.05, 0.8, 0.0, 0.02, true}};
    std::vector<int64_t> sizes = standard_sizes();
    for (const SgdHyper& hyper : hypers) {
      CAPTURE(hyper.momentum);
      CAPTURE(hyper.weight_decay);
      CAPTURE(hyper.nesterov);
      Twin params = make_twin(sizes, 1, -1.0, 1.0), buffers = make_twin(sizes, 200, -0.1, 0.1);
      for (int step = 0; step < 3; ++step) {
        Twin grads = make_twin(sizes, 400 + 50 * uint32_t(step), -0.1, 0.1);
        for (bool on_gpu : {false, true}) {
          std::vector<SgdOperands> operands;
          for (size_t i = 0; i < sizes.size(); ++i) {
            auto pick = [&](const Twin& twin) { return on_gpu ? twin.device[i] : twin.host[i]; };
            operands.push_back(
                {pick(params), pick(grads), hyper.momentum != 0.0 ? pick(buffers) : Tensor()});
          }
          ops::sgd_update(operands, sgd_step_constants(hyper, step == 0));
        }
      }
      check_bitwise(params, "param");
      check_bitwise(buffers, "momentum_buffer");
    }
  }

  TEST_CASE("cuda_adam_handles_unaligned_views_and_3000_small_tensors_in_one_call" *
            ZT_NEEDS_CUDA_DEVICE) {
    // Views at odd offsets of one flat buffer (no float4 path), as ZeRO slices can be.
    Tensor flat_param = random_f32(10007, 9, -1.0, 1.0), flat_grad = random_f32(10007, 10, -1, 1);
    Tensor gpu_param = ops::to_device(flat_param, kGpu), gpu_grad = ops::to_device(flat_grad, kGpu);
    Tensor m = zeros({10007}), v = zeros({10007});
    Tensor gpu_m = zeros({10007}, {.device = kGpu}), gpu_v = zeros({10007}, {.device = kGpu});
    AdamStepConstants k = adam_step_constants({.lr = 0.01, .weight_decay = 0.1});
    for (bool on_gpu : {false, true}) {
      std::vector<AdamOperands> operands;
      for (int64_t begin : {int64_t(1), int64_t(4099)}) {
        auto piece = [&](const Tensor& t) { return ops::narrow(t, 0, begin, 4001); };
        operands.push_back(
            on_gpu ? AdamOperands{piece(gpu_param), piece(gpu_grad), piece(gpu_m), piece(gpu_v)}
                   : AdamOperands{piece(flat_param), piece(flat_grad), piece(m), piece(v)});
      }
      ops::adam_update(operands, k);
    }
    CHECK(ops::to_device(gpu_param, Device::cpu()).to_vector() == flat_param.to_vector());
    CHECK(ops::to_device(gpu_v, Device::cpu()).to_vector() == v.to_vector());

    std::vector<int64_t> small;
    for (int i = 0; i < 3000; ++i) small.push_back(1 + (i * 37) % 300);
    compare_adam(small, {.lr = 1e-2, .weight_decay = 0.01}, 2);
  }

  TEST_CASE("cuda_sum_of_squares_matches_the_cpu_repeats_bitwise_and_flags_non_finite" *
            ZT_NEEDS_CUDA_DEVICE) {
    std::vector<Tensor> host;
    uint32_t seed = 20;
    for (DType dtype : {DType::f32, DType::f64, DType::f16, DType::bf16}) {
      for (int64_t numel : {int64_t(0), int64_t(1), int64_t(4097), (int64_t(1) << 20) + 5}) {
        host.push_back(ops::to_dtype(random_f32(numel, seed++, -3.0, 3.0), dtype));
      }
    }
    Tensor with_inf = random_f32(5000, 1, -1, 1), with_nan = random_f32(300, 2, -1, 1);
    with_inf.data_ptr<float>()[4321] = std::numeric_limits<float>::infinity();
    with_nan.data_ptr<float>()[0] = std::numeric_limits<float>::quiet_NaN();
    host.push_back(with_inf);
    host.push_back(with_nan);
    host.push_back(full({4096}, double(std::numeric_limits<float>::max())));  // finite
    std::vector<Tensor> device;
    for (const Tensor& tensor : host) device.push_back(ops::to_device(tensor, kGpu));

    std::vector<double> cpu = ops::sum_of_squares(host), gpu = ops::sum_of_squares(device);
    REQUIRE(gpu.size() == cpu.size());
    const size_t finite_count = host.size() - 3;
    for (size_t i = 0; i < finite_count; ++i) {
      CAPTURE(i);
      CHECK(std::abs(gpu[i] - cpu[i]) <= 1e-12 * std::abs(cpu[i]));
    }
    CHECK(gpu[finite_count] == std::numeric_limits<double>::infinity());
    CHECK(std::isnan(gpu[finite_count + 1]));
    CHECK(std::isfinite(gpu[finite_count + 2]));
    CHECK(gpu[finite_count + 2] == doctest::Approx(cpu[finite_count + 2]).epsilon(1e-12));
    std::vector<double> again = ops::sum_of_squares(device);
    CHECK(std::memcmp(again.data(), gpu.data(), gpu.size() * sizeof(double)) == 0);

    std::vector<Tensor> many_host, many_device;
    for (int i = 0; i < 3000; ++i) {
      many_host.push_back(random_f32(1 + (i * 53) % 500, uint32_t(i), -1, 1));
      many_device.push_back(ops::to_device(many_host.back(), kGpu));
    }
    std::vector<double> many_cpu = ops::sum_of_squares(many_host);
    std::vector<double> many_gpu = ops::sum_of_squares(many_device);
    for (size_t i = 0; i < many_cpu.size(); ++i) {
      CHECK_MESSAGE(std::abs(many_gpu[i] - many_cpu[i]) <= 1e-12 * many_cpu[i], "tensor " << i);
    }
  }

  TEST_CASE("cuda_fused_updates_reject_a_list_across_devices" * ZT_NEEDS_CUDA_DEVICE) {
    Tensor host = zeros({4}), gpu = zeros({4}, {.device = kGpu});
    std::vector<AdamOperands> mixed = {{gpu, gpu, gpu, gpu}, {gpu, host, gpu, gpu}};
    CHECK_THROWS_WITH_AS(ops::adam_update(mixed, adam_step_constants({})),
                         doctest::Contains("tensors[1].grad: expected a contiguous f32 tensor "
                                           "on cuda:0"),
                         std::invalid_argument);
    CHECK_THROWS_AS(ops::sum_of_squares({gpu, host}), std::invalid_argument);
  }

  TEST_CASE("optim_adam_over_gpu_parameters_in_two_groups_equals_the_cpu_bitwise" *
            ZT_NEEDS_CUDA_DEVICE) {
    // The ZeRO engine hands the optimizer views of its flat buffers, on the model's device.
    std::vector<Tensor> host = {random_f32(1000, 1, -1.0, 1.0), random_f32(7, 2, -1.0, 1.0)};
    std::vector<Tensor> gpu = {host[0].to(kGpu), host[1].to(kGpu)};
    auto groups_of = [](const std::vector<Tensor>& params) {
      return std::vector<ParamGroup>{{{params[0]}, 0.01, 0.1}, {{params[1]}, 0.005, 0.0}};
    };
    Adam host_adam(groups_of(host)), gpu_adam(groups_of(gpu));
    for (uint32_t step = 0; step < 3; ++step) {
      for (size_t p = 0; p < host.size(); ++p) {
        Tensor grad = random_f32(host[p].numel(), 10 + step * 2 + uint32_t(p), -0.5, 0.5);
        host[p].set_grad(grad);
        gpu[p].set_grad(grad.to(kGpu));
      }
      host_adam.step();
      gpu_adam.step();
    }
    for (size_t p = 0; p < host.size(); ++p)
      CHECK(gpu[p].to(Device::cpu()).to_vector() == host[p].to_vector());
  }
}
