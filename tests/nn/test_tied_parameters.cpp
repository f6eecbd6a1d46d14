// Tied parameters (one Parameter registered by two modules, GPT's lm_head and wte) in nn/: listed,
// counted and optimized once; saved once as safetensors' save_model saves them and loaded back
// under either name; and register_external_parameter's checks. Model: tests/nn/tied_model.h.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "core/ops/elementwise.h"
#include "core/ops/view.h"
#include "core/safetensors.h"
#include "nn/shared_tensors.h"
#include "optim/sgd.h"
#include "tests/error_of.h"
#include "tests/nn/tied_model.h"

using namespace zt;
using namespace zt::testing;

namespace {

std::vector<std::string> names_of(const NamedTensors& tensors) {
  std::vector<std::string> names;
  for (auto& [name, tensor] : tensors) names.push_back(name);
  return names;
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("zt_tied_" + std::to_string(getpid()) + "_" + name))
      .string();
}

}  // namespace

TEST_CASE("a parameter two modules registered is listed, counted and stepped once") {
  auto model = make_tied_lm(Tying::shared_parameter);
  CHECK(model->head->weight.impl() == model->wte->weight.impl());
  // As PyTorch: named_parameters keeps the first name, state_dict every name.
  CHECK(names_of(model->named_parameters()) ==
        std::vector<std::string>{"wte.weight", "hidden.weight", "hidden.bias"});
  CHECK(names_of(model->state_dict()) ==
        std::vector<std::string>{"wte.weight", "hidden.weight", "hidden.bias", "head.weight"});
  CHECK(model->num_parameters() == kTiedVocab * kTiedWidth + kTiedWidth * kTiedWidth + kTiedWidth);

  TokenBatch batch = token_batch(0);
  cross_entropy((*model)(batch.tokens), batch.targets).backward();
  Tensor before = ops::clone(model->wte->weight);
  Tensor expected = ops::sub(before, ops::mul(model->wte->weight.grad(), 0.5));
  optim::Sgd sgd(optim::single_group(model->parameters(), 0.5));
  sgd.step();
  CHECK(model->wte->weight.to_vector() == expected.to_vector());  // one step of lr * grad
}

TEST_CASE("a tied weight is saved once, as safetensors' save_model, and loads back") {
  auto saved = make_tied_lm(Tying::shared_parameter, 1);
  std::string path = temp_path("model.safetensors");
  saved->save(path);
  SafetensorsContents file = load_safetensors(path);
  // save_model keeps the alphabetically first name and records the others in the metadata.
  CHECK(names_of(file.tensors) ==
        std::vector<std::string>{"hidden.weight", "hidden.bias", "head.weight"});
  CHECK(file.metadata == SafetensorsMetadata{{"wte.weight", "head.weight"}});

  auto loaded = make_tied_lm(Tying::shared_parameter, 2);
  loaded->load(path);
  CHECK(loaded->wte->weight.to_vector() == saved->wte->weight.to_vector());
  CHECK(loaded->head->weight.impl() == loaded->wte->weight.impl());
  std::filesystem::remove(path);
}

TEST_CASE("load_state_dict takes a tied weight under either name or both, and neither is missing") {
  auto source = make_tied_lm(Tying::shared_parameter, 1);
  NamedTensors both = source->state_dict();
  for (std::string dropped : {"", "wte.weight", "head.weight"}) {
    CAPTURE(dropped);
    NamedTensors state = both;
    std::erase_if(state, [&](const auto& entry) { return entry.first == dropped; });
    auto target = make_tied_lm(Tying::shared_parameter, 2);
    target->load_state_dict(state);
    CHECK(target->wte->weight.to_vector() == source->wte->weight.to_vector());
  }
  NamedTensors neither = both;
  std::erase_if(neither, [](const auto& entry) { return entry.second.sizes() == Shape{10, 8}; });
  auto target = make_tied_lm(Tying::shared_parameter, 2);
  CHECK(error_of([&] { target->load_state_dict(neither); }) ==
        "load_state_dict: missing tensor \"wte.weight\" of shape [10, 8]");
}

TEST_CASE("remove_shared_duplicates keeps the alphabetically first name of each tied tensor") {
  Tensor buffer = arange(0.0, 12.0);
  Tensor tied = ops::narrow(buffer, 0, 0, 6);
  NamedTensors state = {{"z.weight", tied},
                        {"a.weight", ops::narrow(buffer, 0, 0, 6)},  // another view, same elements
                        {"m.other", ops::narrow(buffer, 0, 6, 6)},   // same storage, other elements
                        {"c.weight", tied}};
  SafetensorsMetadata removed = nn::remove_shared_duplicates(state);
  CHECK(names_of(state) == std::vector<std::string>{"a.weight", "m.other"});
  CHECK(removed == SafetensorsMetadata{{"c.weight", "a.weight"}, {"z.weight", "a.weight"}});
}

TEST_CASE("register_external_parameter takes a parameter, once, and refuses anything else") {
  auto model = make_tied_lm(Tying::external_declared);
  CHECK(model->external_parameters().size() == 1);
  nn::register_external_parameter(*model, model->wte->weight);
  CHECK(model->external_parameters().size() == 1);
  CHECK(error_of([&] { nn::register_external_parameter(*model, model->wte->weight.t()); }) ==
        "register_external_parameter: TiedLM: expected a parameter (a leaf tensor that requires "
        "grad, as another module registered it), got a tensor of shape [8, 10] computed by an op");
  CHECK(error_of([&] { nn::register_external_parameter(*model, ones({3})); }) ==
        "register_external_parameter: TiedLM: expected a parameter (a leaf tensor that requires "
        "grad, as another module registered it), got a tensor of shape [3] without grad");
}
