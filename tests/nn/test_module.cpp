// Module bookkeeping: names, state dicts, hooks, modes, conversion, and a model that learns.
#include <doctest/doctest.h>

#include <unistd.h>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>

#include "autograd/functions.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "core/safetensors.h"
#include "nn/nn.h"
#include "optim/adam.h"

using namespace zt;

namespace {

class TwoLayer final : public nn::Module {
 public:
  TwoLayer() {
    encoder = register_module(
        "encoder",
        std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
            std::make_shared<nn::Linear>(4, 8), std::make_shared<nn::ReLU>()}));
    head = register_module("head", std::make_shared<nn::Linear>(8, 3));
    scale = register_buffer("scale", ones({3}));
  }
  std::string type_name() const override { return "TwoLayer"; }
  std::shared_ptr<nn::Sequential> encoder;
  std::shared_ptr<nn::Linear> head;
  Tensor scale;

 protected:
  Tensor forward(const Tensor& x) override { return (*head)((*encoder)(x)) * scale; }
};

// Modules that do not override type_name(): named after their class.
class Unnamed final : public nn::Module {
 protected:
  Tensor forward(const Tensor& x) override { return x; }
};
template <typename Element>
class UnnamedTemplate final : public nn::Module {
 public:
  UnnamedTemplate() { register_module("inner", std::make_shared<Unnamed>()); }
};

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("zt_module_" + std::to_string(getpid()) + "_" + name))
      .string();
}

}  // namespace

TEST_CASE("named_parameters use PyTorch's dotted names in registration order") {
  TwoLayer model;
  std::vector<std::string> names;
  for (auto& [name, tensor] : model.named_parameters()) names.push_back(name);
  CHECK(names ==
        std::vector<std::string>{"encoder.0.weight", "encoder.0.bias", "head.weight", "head.bias"});
  CHECK(model.num_parameters() == 4 * 8 + 8 + 8 * 3 + 3);
  auto state = model.state_dict();
  CHECK(state.size() == 5);
  CHECK(state.front().first == "scale");  // own entries first, then children, as in PyTorch
  for (const Tensor& param : model.parameters()) {
    CHECK(param.requires_grad());
    CHECK(param.storage()->tag() == MemoryTag::param);
  }
  CHECK(model.repr().find("(head): Linear(in_features=8, out_features=3, bias=true)") !=
        std::string::npos);
}

TEST_CASE("named_modules use PyTorch's dotted names: \"\" for the root, then depth first") {
  auto model = std::make_shared<TwoLayer>();
  std::vector<std::string> names;
  for (auto& [name, module] : model->named_modules()) names.push_back(name);
  CHECK(names == std::vector<std::string>{"", "encoder", "encoder.0", "encoder.1", "head"});
}

TEST_CASE("Linear and Conv2d initialise uniformly within 1/sqrt(fan_in) like PyTorch") {
  manual_seed(3);
  nn::Linear linear(400, 300);
  double bound = 1.0 / std::sqrt(400.0);
  std::vector<double> weights = linear.weight.to_vector();
  double sum = 0.0, sum_sq = 0.0, largest = 0.0;
  for (double w : weights) {
    sum += w;
    sum_sq += w * w;
    largest = std::max(largest, std::abs(w));
  }
  double mean = sum / double(weights.size());
  double stddev = std::sqrt(sum_sq / double(weights.size()) - mean * mean);
  CHECK(largest <= bound);
  CHECK(largest > 0.99 * bound);
  CHECK(std::abs(mean) < 0.01 * bound);
  CHECK(stddev == doctest::Approx(bound / std::sqrt(3.0)).epsilon(0.02));
  nn::Conv2d conv(8, 16, 3, {.groups = 2});
  double conv_bound = 1.0 / std::sqrt(4.0 * 9.0);
  for (double w : conv.weight.to_vector()) CHECK(std::abs(w) <= conv_bound);
  CHECK(conv.weight.sizes() == Shape{16, 4, 3, 3});
}

TEST_CASE("Embedding draws N(0, 1) and zeroes its padding row") {
  manual_seed(5);
  nn::Embedding embedding(1000, 64, 3);
  std::vector<double> values = embedding.weight.to_vector();
  double sum = 0.0, sum_sq = 0.0;
  for (double v : values) {
    sum += v;
    sum_sq += v * v;
  }
  CHECK(std::abs(sum / double(values.size())) < 0.02);
  CHECK(std::sqrt(sum_sq / double(values.size())) == doctest::Approx(1.0).epsilon(0.02));
  for (int64_t j = 0; j < 64; ++j) CHECK(values[size_t(3 * 64 + j)] == 0.0);
}

TEST_CASE("state dict saved as safetensors loads into a fresh model with equal outputs") {
  manual_seed(7);
  TwoLayer trained;
  manual_seed(8);
  TwoLayer fresh;
  Tensor x = randn({5, 4});
  std::string path = temp_path("roundtrip.safetensors");
  trained.save(path);
  fresh.load(path);
  CHECK(fresh(x).to_vector() == trained(x).to_vector());
  SafetensorsContents contents = load_safetensors(path);
  CHECK(contents.contains("encoder.0.weight"));
  std::filesystem::remove(path);
}

TEST_CASE("load_state_dict names a missing, unexpected or mis-shaped tensor and changes nothing") {
  TwoLayer model;
  std::vector<double> before = model.head->weight.to_vector();
  NamedTensors state = model.state_dict();
  auto entry = [&](const std::string& name) {
    return size_t(
        std::find_if(state.begin(), state.end(), [&](const auto& e) { return e.first == name; }) -
        state.begin());
  };
  NamedTensors missing = state;
  missing.erase(missing.begin() + long(entry("encoder.0.weight")));
  CHECK_THROWS_WITH(model.load_state_dict(missing),
                    doctest::Contains("missing tensor \"encoder.0.weight\""));
  NamedTensors extra = state;
  extra.emplace_back("head.gamma", zeros({3}));
  CHECK_THROWS_WITH(model.load_state_dict(extra),
                    doctest::Contains("unexpected tensor \"head.gamma\""));
  NamedTensors misshaped = state;
  misshaped[entry("head.weight")].second = zeros({3, 7});
  misshaped[entry("encoder.0.weight")].second = zeros({8, 4});  // valid, must not be applied
  CHECK_THROWS_WITH(model.load_state_dict(misshaped),
                    doctest::Contains("\"head.weight\" has shape [3, 7]"));
  CHECK(model.head->weight.to_vector() == before);
  CHECK_NOTHROW(model.load_state_dict(extra, /*strict=*/false));
}

TEST_CASE("forward hooks run around forward, in order, and can be removed") {
  nn::Linear layer(2, 2);
  std::vector<std::string> events;
  int64_t pre = layer.register_forward_pre_hook([&](nn::Module&, const nn::TensorList& inputs) {
    events.push_back(fmt::format("pre {}", inputs.at(0).size(0)));
  });
  layer.register_forward_hook(
      [&](nn::Module& module, const nn::TensorList&, const nn::TensorList& outputs) {
        events.push_back(module.type_name() + " post " + std::to_string(outputs.at(0).size(1)));
      });
  layer(zeros({3, 2}));
  CHECK(events == std::vector<std::string>{"pre 3", "Linear post 2"});
  layer.remove_hook(pre);
  layer(zeros({1, 2}));
  CHECK(events.size() == 3);
}

TEST_CASE("a module without type_name() is named by its class, without namespaces") {
  Unnamed unnamed;
  CHECK(unnamed.type_name() == "Unnamed");  // "(anonymous namespace)::" dropped
  CHECK_THROWS_WITH(unnamed(zeros({1}), zeros({1})),
                    doctest::Contains("Unnamed: forward takes 1 input, got 2"));
  UnnamedTemplate<std::vector<int>> outer;
  CHECK(outer.repr() ==
        "UnnamedTemplate<std::vector<int, std::allocator<int> > >(\n"
        "  (inner): Unnamed()\n)");
  CHECK(nn::Linear(2, 3).type_name() == "Linear");  // an override still wins
}

TEST_CASE("eval() reaches every child and turns dropout off") {
  nn::Sequential model{std::make_shared<nn::Linear>(4, 4), std::make_shared<nn::Dropout>(0.5)};
  Tensor x = ones({2, 4});
  model.eval();
  CHECK_FALSE(model[1]->is_training());
  CHECK(model(x).to_vector() == model(x).to_vector());
  model.train();
  CHECK(model[1]->is_training());
}

TEST_CASE("to(f64) converts parameters in place so the layer's members see it") {
  nn::Linear layer(3, 2);
  std::vector<double> before = layer.weight.to_vector();
  layer.to(DType::f64);
  CHECK(layer.weight.dtype() == DType::f64);
  CHECK(layer.parameters()[0].dtype() == DType::f64);
  for (size_t i = 0; i < before.size(); ++i) CHECK(layer.weight.to_vector()[i] == before[i]);
  CHECK(layer(ones({1, 3}, {.dtype = DType::f64})).dtype() == DType::f64);
}

TEST_CASE("to(f16) converts floating parameters and buffers, keeping their memory tags") {
  std::optional<TwoLayer> built;
  {
    MemoryTagGuard buffers_as_comm(MemoryTag::comm);  // any tag other than the default
    built.emplace();
  }
  TwoLayer& model = *built;
  MemoryTag buffer_tag = model.scale.storage()->tag();
  REQUIRE(buffer_tag == MemoryTag::comm);
  model.head->weight.set_grad(ones(model.head->weight.sizes()));
  model.to(DType::f16);
  for (auto& [name, param] : model.named_parameters()) {
    CAPTURE(name);
    CHECK(param.dtype() == DType::f16);
    CHECK(param.storage()->tag() == MemoryTag::param);
    CHECK(param.requires_grad());
  }
  CHECK_FALSE(model.head->weight.grad().defined());
  CHECK(model.scale.dtype() == DType::f16);
  CHECK(model.scale.storage()->tag() == buffer_tag);
  model.to(Device::cpu());  // already there: the same storage stays
  CHECK(model.scale.dtype() == DType::f16);
}

TEST_CASE("a small MLP trained with Adam separates two Gaussian blobs") {
  manual_seed(11);
  Tensor centers = from_values({-2.0, 0.0, 2.0, 0.0}, {2, 2});
  std::vector<int64_t> labels(128);
  for (int i = 0; i < 128; ++i) labels[size_t(i)] = i % 2;
  Tensor target = from_int64(labels, {128});
  Tensor points = randn({128, 2}) * 0.5 + index_select(centers, 0, target);
  nn::Sequential model{std::make_shared<nn::Linear>(2, 16), std::make_shared<nn::Tanh>(),
                       std::make_shared<nn::Linear>(16, 2)};
  optim::Adam adam(optim::single_group(model.parameters(), 0.05));
  double first_loss = 0, last_loss = 0;
  for (int step = 0; step < 60; ++step) {
    Tensor loss = cross_entropy(model(points), target);
    adam.zero_grad();
    loss.backward();
    adam.step();
    if (step == 0) first_loss = loss.item();
    last_loss = loss.item();
  }
  CHECK(last_loss < 0.1 * first_loss);
  std::vector<double> predicted = argmax(model(points), 1).to_vector();
  int correct = 0;
  for (int i = 0; i < 128; ++i) correct += predicted[size_t(i)] == labels[size_t(i)];
  CHECK(correct >= 126);
}
