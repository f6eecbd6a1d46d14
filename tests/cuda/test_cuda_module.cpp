// Module::to(Device): a model moved to the GPU keeps its values, dtypes, memory tags and
// trainability, trains there to the host's gradients, and comes back unchanged. Without a GPU
// the cases that need one are skipped (ZT_NEEDS_CUDA_DEVICE); moving to the device a tensor is
// already on is checked on the host.
#include <doctest/doctest.h>

#include <memory>
#include <vector>

#include "autograd/functions.h"
#include "core/backend.h"
#include "core/factory.h"
#include "nn/nn.h"
#include "tests/cuda/cuda_test_util.h"

using namespace zt;

namespace {

std::shared_ptr<nn::Module> small_model() {
  manual_seed(7);
  return std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Linear>(6, 5), std::make_shared<nn::LayerNorm>(Shape{5}),
      std::make_shared<nn::Tanh>(), std::make_shared<nn::Linear>(5, 3)});
}

std::vector<double> values_of(const NamedTensors& tensors) {
  std::vector<double> values;
  for (auto& [name, tensor] : tensors) {
    std::vector<double> part = tensor.to_vector();
    values.insert(values.end(), part.begin(), part.end());
  }
  return values;
}

}  // namespace

TEST_SUITE("cuda") {
  TEST_CASE("Module::to(cpu) leaves a host model's tensors where they are") {
    std::shared_ptr<nn::Module> model = small_model();
    std::vector<const float*> before;
    for (auto& [name, param] : model->named_parameters()) before.push_back(param.data_ptr<float>());
    model->to(Device::cpu());
    size_t i = 0;
    for (auto& [name, param] : model->named_parameters())
      CHECK(param.data_ptr<float>() == before[i++]);
  }

  TEST_CASE("Module::to(cuda) moves parameters in place and back, values and tags unchanged" *
            ZT_NEEDS_CUDA_DEVICE) {
    std::shared_ptr<nn::Module> model = small_model();
    NamedTensors params = model->named_parameters();  // handles that must follow the move
    std::vector<double> host_values = values_of(params);
    model->to(Device::cuda(0));
    for (auto& [name, param] : params) {
      CAPTURE(name);
      CHECK(param.device() == Device::cuda(0));
      CHECK(param.storage()->tag() == MemoryTag::param);
      CHECK(param.requires_grad());
    }
    CHECK(values_of(params) == host_values);
    model->to(Device::cpu());
    for (auto& [name, param] : params) CHECK(param.device() == Device::cpu());
    CHECK(values_of(params) == host_values);
  }

  TEST_CASE("a model moved to the GPU gives the host's outputs and gradients" *
            ZT_NEEDS_CUDA_DEVICE) {
    std::shared_ptr<nn::Module> host = small_model();
    std::shared_ptr<nn::Module> gpu = small_model();
    gpu->to(Device::cuda(0));
    Tensor input = randn({4, 6});
    std::vector<int64_t> labels = {0, 2, 1, 2};
    Tensor target = from_int64(labels, {4});
    Tensor host_loss = cross_entropy((*host)(input), target);
    Tensor gpu_loss = cross_entropy((*gpu)(input.to(Device::cuda(0))), target.to(Device::cuda(0)));
    host_loss.backward();
    gpu_loss.backward();
    CHECK(gpu_loss.item() == doctest::Approx(host_loss.item()).epsilon(1e-5));
    NamedTensors host_params = host->named_parameters(), gpu_params = gpu->named_parameters();
    for (size_t i = 0; i < host_params.size(); ++i) {
      CAPTURE(host_params[i].first);
      std::vector<double> expected = host_params[i].second.grad().to_vector();
      std::vector<double> actual = gpu_params[i].second.grad().to_vector();
      REQUIRE(actual.size() == expected.size());
      for (size_t j = 0; j < expected.size(); ++j)
        CHECK(actual[j] == doctest::Approx(expected[j]).epsilon(1e-5).scale(1e-6));
    }
  }

}  // TEST_SUITE("cuda")
