// layer_reduction: a 2-layer GPT student built from layers 1 and 3 of a 4-layer teacher holds
// exactly those layers' tensors and the teacher's embeddings and final norm, and nothing else
// of the teacher; the name mapping and the errors naming the key.
#include <doctest/doctest.h>

#include <map>
#include <string>

#include "compress/layer_reduction.h"
#include "core/factory.h"
#include "dist/config.h"
#include "models/gpt.h"

using namespace zt;
using namespace zt::compress;

namespace {

models::GPTConfig gpt_with_layers(int64_t layers) {
  models::GPTConfig config;
  config.vocab_size = 32;
  config.block_size = 8;
  config.n_layer = layers;
  config.n_head = 2;
  config.n_embd = 8;
  return config;
}

dist::LayerReductionConfig reduction(int64_t keep, std::vector<int64_t> layers) {
  dist::LayerReductionConfig config;
  config.enabled = true;
  config.keep_number_layer = keep;
  config.module_name_prefix = "h";
  config.teacher_layer = std::move(layers);
  config.other_module_name = {"wte", "wpe", "ln_f"};
  return config;
}

std::string error_of(nn::Module& student, const NamedTensors& teacher,
                     const dist::LayerReductionConfig& config) {
  try {
    initialize_student(student, teacher, config);
  } catch (const dist::ConfigError& error) {
    return error.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("layer reduction: teacher names for student tensors") {
  const dist::LayerReductionConfig config = reduction(2, {1, 3});
  CHECK(teacher_name_for("h.0.attn.c_attn.weight", config) == "h.1.attn.c_attn.weight");
  CHECK(teacher_name_for("h.1.ln_2.bias", config) == "h.3.ln_2.bias");
  CHECK(teacher_name_for("wte.weight", config) == "wte.weight");
  CHECK(teacher_name_for("ln_f.weight", config) == "ln_f.weight");
  CHECK(teacher_name_for("lm_head.weight", config) == "");
  CHECK(teacher_name_for("h.2.ln_1.weight", config) == "");  // beyond teacher_layer
  CHECK(teacher_name_for("hx.0.weight", config) == "");
}

TEST_CASE("layer reduction: the student holds exactly the teacher's chosen layers") {
  manual_seed(1);
  auto teacher_model = std::make_shared<models::GPT>(gpt_with_layers(4));
  models::GPT& teacher = *teacher_model;
  manual_seed(2);
  auto student_model = std::make_shared<models::GPT>(gpt_with_layers(2));
  models::GPT& student = *student_model;
  const NamedTensors teacher_state = teacher.state_dict();
  std::map<std::string, std::vector<double>> before;
  for (const auto& [name, tensor] : student.state_dict()) before[name] = tensor.to_vector();
  const int64_t copied = initialize_student(student, teacher_state, reduction(2, {1, 3}));
  std::map<std::string, Tensor> teacher_tensors(teacher_state.begin(), teacher_state.end());
  int64_t layer_tensors = 0;
  for (const auto& [name, tensor] : student.state_dict()) {
    std::string source = name;
    if (name.starts_with("h.0.")) source = "h.1." + name.substr(4);
    if (name.starts_with("h.1.")) source = "h.3." + name.substr(4);
    layer_tensors += name.starts_with("h.") ? 1 : 0;
    CHECK_MESSAGE(tensor.to_vector() == teacher_tensors.at(source).to_vector(), name);
    if (name.starts_with("wte") || name.starts_with("wpe"))  // not the student's own init
      CHECK(tensor.to_vector() != before.at(name));
  }
  // 12 tensors a GPT-2 layer; wte, wpe, ln_f weight and bias (the tied head is wte's).
  CHECK(layer_tensors == 24);
  CHECK(copied == 24 + 4);
  // Teacher layers 0 and 2 are nowhere in the student (their random projection weights; the
  // LayerNorms and biases start equal in every layer).
  for (const auto& [name, tensor] : student.state_dict()) {
    if (!name.starts_with("h.") || !name.ends_with("c_attn.weight")) continue;
    CHECK(tensor.to_vector() != teacher_tensors.at("h.0." + name.substr(4)).to_vector());
    CHECK(tensor.to_vector() != teacher_tensors.at("h.2." + name.substr(4)).to_vector());
  }
}

TEST_CASE("layer reduction: what cannot initialise the student is one line naming the key") {
  auto teacher = std::make_shared<models::GPT>(gpt_with_layers(4));
  auto student_model = std::make_shared<models::GPT>(gpt_with_layers(2));
  models::GPT& student = *student_model;
  const NamedTensors state = teacher->state_dict();
  CHECK(error_of(student, state, reduction(3, {0, 1, 2})) ==
        "compression_training.layer_reduction.keep_number_layer: the student has 2 layers under "
        "\"h\", expected 3");
  CHECK(error_of(student, state, reduction(2, {1, 7})) ==
        "compression_training.layer_reduction: the teacher has no h.7.ln_1.weight (for the "
        "student's h.1.ln_1.weight)");
  dist::LayerReductionConfig other = reduction(2, {0, 1});
  other.other_module_name = {"embeddings"};
  CHECK(error_of(student, state, other) ==
        "compression_training.layer_reduction.other_module_name: \"embeddings\" names no module "
        "of the student");
  models::GPTConfig wide = gpt_with_layers(4);
  wide.n_embd = 16;
  auto wide_teacher = std::make_shared<models::GPT>(wide);
  CHECK(error_of(student, wide_teacher->state_dict(), reduction(2, {0, 1}))
            .starts_with(
                "compression_training.layer_reduction: the teacher's wte.weight is [32, 16], the "
                "student's wte.weight is [32, 8]"));
}
