// The tiny GPT-2 and Llama of tests/fixtures/make_gpt_fixture.py against PyTorch: the same
// weights (loaded from HF-layout files) and tokens give PyTorch's logits, loss and every
// parameter gradient within 1e-5 relative; the files written back out carry HF's names and
// load again (bf16 files converting); a checkpoint of the other architecture is refused in one
// line.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "core/safetensors.h"
#include "models/gpt.h"
#include "tests/error_of.h"
#include "tests/io/temp_dir.h"
#include "tests/largest_difference.h"
#include "tests/models/tiny_gpt_fixture.h"

using namespace zt;
using namespace zt::models;
using zt::testing::tiny_gpt;
using zt::testing::tiny_gpt_config;
using zt::testing::tiny_gpt_fixture;
using zt::testing::tiny_gpt_reference;

namespace {

using zt::testing::largest_relative_difference;

Tensor mean_loss(const Tensor& logits, const Tensor& targets) {
  return cross_entropy(logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}));
}

}  // namespace

TEST_CASE("a 2-layer GPT-2 and Llama give PyTorch's logits, loss and gradients within 1e-5") {
  for (Architecture architecture : {Architecture::gpt2, Architecture::llama}) {
    CAPTURE(architecture_name(architecture));
    SafetensorsContents reference = tiny_gpt_reference(architecture);
    auto model = tiny_gpt(architecture);
    Tensor logits = (*model)(reference.at("tokens"));
    Tensor loss = mean_loss(logits, reference.at("targets"));
    CHECK(largest_relative_difference(logits, reference.at("logits")) < 1e-5);
    CHECK(largest_relative_difference(loss, reference.at("loss")) < 1e-5);
    loss.backward();
    NamedTensors parameters = model->named_parameters();
    // Every parameter once (the tied head under wte.weight), each with PyTorch's gradient.
    size_t gradients = 0;
    for (auto& [name, tensor] : reference.tensors) gradients += name.rfind("grad.", 0) == 0;
    CHECK(parameters.size() == gradients);
    for (auto& [name, parameter] : parameters) {
      CAPTURE(name);
      REQUIRE(reference.contains("grad." + name));
      REQUIRE(parameter.grad().defined());
      CHECK(largest_relative_difference(parameter.grad(), reference.at("grad." + name)) < 1e-5);
    }
  }
}

TEST_CASE("save_hf_safetensors writes HF's names and layout that load back to the same logits") {
  zt::testing::TempDir dir;
  for (Architecture architecture : {Architecture::gpt2, Architecture::llama}) {
    CAPTURE(architecture_name(architecture));
    const std::string name = architecture_name(architecture);
    auto model = tiny_gpt(architecture);
    const std::string path = dir.file(name + ".safetensors");
    save_hf_safetensors(*model, path);
    SafetensorsContents written = load_safetensors(path);
    SafetensorsContents original = load_safetensors(tiny_gpt_fixture(name, "weights"));
    CHECK(written.metadata.at("format") == "pt");
    // The fixture's names less GPT-2's mask buffers, with the fixture's values (Conv1D stays
    // [in, out]; the tied head is stored once as wte.weight).
    std::set<std::string> written_names, expected_names;
    for (auto& [tensor_name, tensor] : written.tensors) {
      written_names.insert(tensor_name);
      CHECK(tensor.to_vector() == original.at(tensor_name).to_vector());
    }
    for (auto& [tensor_name, tensor] : original.tensors)
      if (tensor_name.find(".attn.bias") == std::string::npos) expected_names.insert(tensor_name);
    CHECK(written_names == expected_names);
    Tensor tokens = tiny_gpt_reference(architecture).at("tokens");
    GPT reloaded(tiny_gpt_config(architecture));
    load_hf_safetensors(reloaded, path);
    CHECK(reloaded(tokens).to_vector() == (*model)(tokens).to_vector());
    // Module::save's file (save_model's format: the tied head under lm_head.weight, wte.weight
    // recorded as its alias) loads through the same reader.
    model->save(dir.file(name + ".module.safetensors"));
    GPT from_module_file(tiny_gpt_config(architecture));
    load_hf_safetensors(from_module_file, dir.file(name + ".module.safetensors"));
    CHECK(from_module_file(tokens).to_vector() == (*model)(tokens).to_vector());
  }
}

TEST_CASE(
    "load_hf_safetensors takes GPT2LMHeadModel's transformer. prefix and bf16 files, and "
    "refuses a checkpoint of another model in one line") {
  zt::testing::TempDir dir;
  SafetensorsContents original = load_safetensors(tiny_gpt_fixture("gpt2", "weights"));
  NamedTensors prefixed;
  for (auto& [name, tensor] : original.tensors)
    prefixed.emplace_back("transformer." + name, tensor);
  prefixed.emplace_back("lm_head.weight", original.at("wte.weight"));
  save_safetensors(dir.file("prefixed.safetensors"), prefixed, {{"format", "pt"}});
  GPT model(tiny_gpt_config(Architecture::gpt2));
  load_hf_safetensors(model, dir.file("prefixed.safetensors"));
  SafetensorsContents reference = tiny_gpt_reference(Architecture::gpt2);
  CHECK(largest_relative_difference(model(reference.at("tokens")), reference.at("logits")) < 1e-5);

  const std::string llama_file = tiny_gpt_fixture("llama", "weights");
  std::string message = error_of([&] { load_hf_safetensors(model, llama_file); });
  CHECK(message == llama_file +
                       ": not a checkpoint of this gpt2 model: load_state_dict: unexpected tensor "
                       "\"model.embed_tokens.weight\": GPT has no such parameter or buffer");
  // A bf16 file (as Llama checkpoints come) converts to the model's f32 on loading.
  NamedTensors halved;
  SafetensorsContents llama = load_safetensors(llama_file);
  for (auto& [name, tensor] : llama.tensors) halved.emplace_back(name, tensor.to(DType::bf16));
  save_safetensors(dir.file("bf16.safetensors"), halved, {{"format", "pt"}});
  GPT from_bf16(tiny_gpt_config(Architecture::llama));
  load_hf_safetensors(from_bf16, dir.file("bf16.safetensors"));
  CHECK(from_bf16.lm_head()->weight.dtype() == DType::f32);
  CHECK(from_bf16.lm_head()->weight.to_vector() ==
        llama.at("lm_head.weight").to(DType::bf16).to(DType::f32).to_vector());

  GPTConfig wider = tiny_gpt_config(Architecture::gpt2);
  wider.n_embd = 32;
  GPT wider_model(wider);
  message =
      error_of([&] { load_hf_safetensors(wider_model, tiny_gpt_fixture("gpt2", "weights")); });
  CHECK(message.find("\"wte.weight\" has shape [32, 16], the model expects [32, 32]") !=
        std::string::npos);
  CHECK(message.find('\n') == std::string::npos);
}
