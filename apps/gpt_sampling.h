// gpt_generate's sampling is the inference engine's (inference/sampling.h), under the apps
// namespace where the app and its tests name it.
#pragma once

#include "inference/sampling.h"

namespace zt::apps {

using inference::sampling_probabilities;
using inference::SamplingOptions;

}  // namespace zt::apps
