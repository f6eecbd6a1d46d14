// Module::replace_child: the tree holds the replacement, the parent's own member still reaches
// it through the old child, and the old child's parameters leave the tree.
#include <doctest/doctest.h>

#include <memory>
#include <stdexcept>

#include "autograd/functions.h"
#include "core/factory.h"
#include "nn/linear.h"
#include "nn/module.h"

using namespace zt;

namespace {

// A parent that calls its child through its own typed member, as models do.
class Holder final : public nn::Module {
 public:
  Holder() { layer = register_module("layer", std::make_shared<nn::Linear>(3, 2)); }
  std::shared_ptr<nn::Linear> layer;

 protected:
  Tensor forward(const Tensor& input) override { return (*layer)(input); }
};

// Doubles its input: easy to tell from a Linear.
class Doubler final : public nn::Module {
 protected:
  Tensor forward(const Tensor& input) override { return input.clone() * 2.0; }
};

}  // namespace

TEST_CASE(
    "replace_child: calls through the parent's member run the replacement; the tree holds it") {
  auto holder = std::make_shared<Holder>();
  std::shared_ptr<nn::Linear> old = holder->layer;
  holder->replace_child("layer", std::make_shared<Doubler>());
  Tensor x = from_values({1, 2, 3}, {1, 3});
  CHECK((*holder)(x).to_vector() == std::vector<double>{2, 4, 6});
  CHECK((*old)(x).to_vector() == std::vector<double>{2, 4, 6});
  CHECK(holder->named_parameters().empty());
  CHECK(old->named_parameters().empty());
  CHECK(holder->named_children().front().second->type_name() == "Doubler");
}

TEST_CASE("replace_child: an unknown name or a null replacement is refused naming it") {
  Holder holder;
  CHECK_THROWS_WITH_AS(holder.replace_child("other", std::make_shared<Doubler>()),
                       "Holder: no child \"other\" to replace", std::invalid_argument);
  CHECK_THROWS_WITH_AS(holder.replace_child("layer", nullptr),
                       "Holder: replacement of \"layer\" is null", std::invalid_argument);
  CHECK(holder.named_parameters().size() == 2);
}
