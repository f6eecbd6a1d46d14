// Name mapping on state dicts, so any model whose layers sit under "<prefix>.<i>." works.
#include "compress/layer_reduction.h"

#include <fmt/format.h>

#include <map>
#include <set>

#include "dist/config.h"

namespace zt::compress {

namespace {

// The layer index of `name` under "<prefix>.", or -1 (and the rest after "<i>.").
int64_t layer_of(const std::string& name, const std::string& prefix, std::string& rest) {
  const std::string head = prefix + ".";
  if (name.rfind(head, 0) != 0) return -1;
  const size_t dot = name.find('.', head.size());
  if (dot == std::string::npos) return -1;
  const std::string index = name.substr(head.size(), dot - head.size());
  if (index.empty() || index.find_first_not_of("0123456789") != std::string::npos) return -1;
  rest = name.substr(dot + 1);
  return std::stoll(index);
}

bool under_module(const std::string& name, const std::string& module) {
  return name == module || name.rfind(module + ".", 0) == 0;
}

}  // namespace

std::string teacher_name_for(const std::string& name, const dist::LayerReductionConfig& config) {
  std::string rest;
  const int64_t layer = layer_of(name, config.module_name_prefix, rest);
  if (layer >= 0) {
    if (layer >= int64_t(config.teacher_layer.size())) return "";
    return fmt::format("{}.{}.{}", config.module_name_prefix, config.teacher_layer[size_t(layer)],
                       rest);
  }
  for (const std::string& module : config.other_module_name)
    if (under_module(name, module)) return name;
  return "";
}

int64_t initialize_student(nn::Module& student, const NamedTensors& teacher_state,
                           const dist::LayerReductionConfig& config) {
  const std::string key = "compression_training.layer_reduction";
  const NamedTensors student_state = student.state_dict();
  std::set<int64_t> student_layers;
  for (const auto& [name, tensor] : student_state) {
    std::string rest;
    const int64_t layer = layer_of(name, config.module_name_prefix, rest);
    if (layer >= 0) student_layers.insert(layer);
  }
  if (int64_t(student_layers.size()) != config.keep_number_layer) {
    throw dist::ConfigError(fmt::format(
        "{}.keep_number_layer: the student has {} layers under \"{}\", expected {}", key,
        student_layers.size(), config.module_name_prefix, config.keep_number_layer));
  }
  std::map<std::string, Tensor> teacher(teacher_state.begin(), teacher_state.end());
  for (const std::string& module : config.other_module_name) {
    bool found = false;
    for (const auto& [name, tensor] : student_state) found |= under_module(name, module);
    if (!found) {
      throw dist::ConfigError(
          fmt::format("{}.other_module_name: \"{}\" names no module of the student", key, module));
    }
  }
  NamedTensors initial;
  for (const auto& [name, tensor] : student_state) {
    const std::string source = teacher_name_for(name, config);
    if (source.empty()) continue;
    auto found = teacher.find(source);
    if (found == teacher.end()) {
      throw dist::ConfigError(
          fmt::format("{}: the teacher has no {} (for the student's {})", key, source, name));
    }
    if (found->second.sizes() != tensor.sizes()) {
      throw dist::ConfigError(fmt::format("{}: the teacher's {} is {}, the student's {} is {}", key,
                                          source, shape_str(found->second.sizes()), name,
                                          shape_str(tensor.sizes())));
    }
    initial.emplace_back(name, found->second);
  }
  student.load_state_dict(initial, /*strict=*/false);
  return int64_t(initial.size());
}

}  // namespace zt::compress
