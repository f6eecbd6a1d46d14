// Every non-differentiable tensor op of core/, in namespace zt::ops.
#pragma once

#include "core/factory.h"
#include "core/ops/cumsum.h"
#include "core/ops/elementwise.h"
#include "core/ops/index.h"
#include "core/ops/linalg.h"
#include "core/ops/masking.h"
#include "core/ops/nn.h"
#include "core/ops/reduce.h"
#include "core/ops/view.h"
