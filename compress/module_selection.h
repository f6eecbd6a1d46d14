// Which modules a compression group selects: DeepSpeed's module patterns are regular
// expressions searched in the dotted module names ("*" selects every compressible module); the
// compressible ones are Linear, Conv2d and GPT-2's Conv1D. A pattern that selects nothing is an
// error naming the group's key, since a typo would otherwise compress nothing without a word.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "dist/config_compression.h"
#include "nn/module.h"

namespace zt::compress {

struct NamedModule {
  std::string name;
  std::shared_ptr<nn::Module> module;
};

// The model's Linear, Conv1D and Conv2d modules, depth first.
std::vector<NamedModule> compressible_modules(nn::Module& model);

// Whether `pattern` ("*" or a regular expression) selects the module called `name`.
bool pattern_selects(const std::string& pattern, const std::string& name);

// One selected module and the names of its related modules (the group's related_modules entry
// for the pattern that selected it, paired by position when it matches one module per source).
struct Selection {
  NamedModule target;
  std::vector<std::string> related_modules;
};

// The modules `group` selects among `candidates`, skipping names `excluded` selects. Throws
// dist::ConfigError: "<group.path>.modules: \"p\" selects no Linear, Conv1D or Conv2d module (the
// model has ...)", and likewise for a related pattern.
std::vector<Selection> select_modules(const std::vector<NamedModule>& candidates,
                                      const dist::CompressionGroup& group,
                                      const std::vector<std::string>& excluded = {});

}  // namespace zt::compress
