// Hugging Face's safetensors files for GPT: the names HF's GPT-2 and Llama checkpoints use,
// mapped onto the model's own (which are HF's already, GPT-2's Conv1D layout included), and
// the file HF writes for a model back out.
#include <fmt/format.h>

#include <set>
#include <stdexcept>
#include <string>

#include "autograd/grad_mode.h"
#include "core/safetensors.h"
#include "models/gpt.h"

namespace zt::models {

namespace {

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Tensors of HF files that are not weights: GPT-2's causal-mask buffers and Llama's rotary
// frequencies, all recomputed here.
bool is_recomputed_buffer(const std::string& name) {
  return ends_with(name, ".attn.bias") || ends_with(name, ".attn.masked_bias") ||
         ends_with(name, ".rotary_emb.inv_freq");
}

// The model's name for a tensor of an HF file: GPT2LMHeadModel's "transformer." prefix goes
// (GPT2Model's files have none).
std::string model_name(const std::string& file_name, Architecture architecture) {
  const std::string prefix = "transformer.";
  if (architecture == Architecture::gpt2 && file_name.rfind(prefix, 0) == 0)
    return file_name.substr(prefix.size());
  return file_name;
}

}  // namespace

void load_hf_safetensors(GPT& model, const std::string& path) {
  SafetensorsContents contents = load_safetensors(path);
  NamedTensors state;
  std::set<std::string> seen;
  for (auto& [file_name, tensor] : contents.tensors) {
    if (is_recomputed_buffer(file_name)) continue;
    std::string name = model_name(file_name, model.config().architecture);
    if (!seen.insert(name).second) {
      throw std::runtime_error(fmt::format(
          "{}: \"{}\" appears twice (with and without the \"transformer.\" prefix)", path, name));
    }
    state.emplace_back(std::move(name), tensor);
  }
  try {
    model.load_state_dict(state, /*strict=*/true);
  } catch (const std::exception& error) {
    throw std::runtime_error(fmt::format("{}: not a checkpoint of this {} model: {}", path,
                                         architecture_name(model.config().architecture),
                                         error.what()));
  }
}

void save_hf_safetensors(const GPT& model, const std::string& path) {
  autograd::NoGradGuard no_grad;
  NamedTensors state;
  for (auto& [name, tensor] : model.state_dict()) {
    // HF stores a tied head once, under the embedding's name.
    if (model.config().tie_word_embeddings && name == "lm_head.weight") continue;
    state.emplace_back(name, tensor.detach().to(Device::cpu()));
  }
  save_safetensors(path, state, {{"format", "pt"}});
}

}  // namespace zt::models
