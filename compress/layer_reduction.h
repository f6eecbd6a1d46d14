// layer_reduction: a student with fewer layers initialised from chosen layers of its teacher,
// as DeepSpeed's student_initialization does. Student layer i (under module_name_prefix) takes
// teacher layer teacher_layer[i]; the modules of other_module_name (embeddings, final norm,
// head) are copied by name; every other student tensor keeps its initial values. Done on the
// student before zt::initialize, so ZeRO partitions the initialised weights at any stage.
#pragma once

#include "core/safetensors.h"
#include "dist/config_compression.h"
#include "nn/module.h"

namespace zt::compress {

// The teacher tensor that student tensor `name` is initialised from ("" when none): with
// prefix "h" and teacher_layer [1, 3], "h.1.attn.c_attn.weight" <- "h.3.attn.c_attn.weight".
std::string teacher_name_for(const std::string& name, const dist::LayerReductionConfig& config);

// Copies the chosen teacher tensors into `student` (in place, through load_state_dict).
// Throws dist::ConfigError naming the key when the student does not have keep_number_layer
// layers under the prefix, a teacher layer or other module is missing, or shapes differ.
// Returns how many student tensors were initialised from the teacher.
int64_t initialize_student(nn::Module& student, const NamedTensors& teacher_state,
                           const dist::LayerReductionConfig& config);

}  // namespace zt::compress
