// The apps' flag parser and its help text, both made from one table: values in both spellings,
// the table's defaults, --help/-h winning over other errors but not when it is a flag's value,
// errors that name the flag, and a usage that lists every flag with its default.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "apps/cli_flags.h"

using namespace zt;

namespace {

const apps::CommandLine kTable{"prog",
                               "Does a thing.",
                               {
                                   {"epochs", "N", "3", "epochs to train"},
                                   {"model", "cnn|mlp", "cnn", "the network"},
                                   {"lr", "LR", "0.001", "learning rate"},
                                   {"save-dir", "DIR", "", "checkpoints", "none, no checkpoints"},
                                   {"index", "N", "", "an image"},
                                   {"report", "", "", "report and stop"},
                               },
                               "IN [OUT]",
                               0,
                               2};

// argv of {"prog", args...} for the parser.
struct Argv {
  explicit Argv(std::vector<std::string> args) : strings(std::move(args)) {
    strings.insert(strings.begin(), "prog");
    for (std::string& text : strings) pointers.push_back(text.data());
    pointers.push_back(nullptr);
  }
  apps::Flags parse() { return apps::Flags(int(strings.size()), pointers.data(), kTable); }
  std::vector<std::string> strings;
  std::vector<char*> pointers;
};

std::string usage_error_of(std::vector<std::string> args) {
  try {
    Argv(std::move(args)).parse();
  } catch (const apps::UsageError& error) {
    return error.what();
  }
  return "(no error)";
}

bool asks_for_help(std::vector<std::string> args) {
  try {
    Argv(std::move(args)).parse();
  } catch (const apps::HelpRequested&) {
    return true;
  }
  return false;
}

}  // namespace

TEST_CASE("flags take values in both spellings and fall back to the table's defaults") {
  Argv argv({"--epochs", "5", "--model=mlp", "--report", "in.txt"});
  apps::Flags flags = argv.parse();
  CHECK(flags.get_int("epochs", 1) == 5);
  CHECK(flags.get_choice("model") == "mlp");
  CHECK(flags.has("report"));
  CHECK(flags.get_double("lr", 0.0) == doctest::Approx(0.001));  // the table's default
  CHECK_FALSE(flags.has("save-dir"));
  CHECK(flags.get_string("save-dir").empty());
  CHECK(flags.positionals() == std::vector<std::string>{"in.txt"});
  // A value may start with a dash: it is the flag's value, not a flag.
  CHECK(Argv({"--lr", "-1"}).parse().get_string("lr") == "-1");
}

TEST_CASE("--help and -h ask for help anywhere a flag stands, even after a bad flag") {
  CHECK(asks_for_help({"--help"}));
  CHECK(asks_for_help({"-h"}));
  CHECK(asks_for_help({"--epoch", "1", "-h"}));      // an unknown flag before it
  CHECK(asks_for_help({"a", "b", "c", "--help"}));   // too many positionals
  CHECK_FALSE(asks_for_help({"--save-dir", "-h"}));  // the value of --save-dir
  CHECK_FALSE(asks_for_help({"--save-dir=--help"}));
}

TEST_CASE("a misshapen command line is a usage error naming the argument") {
  CHECK(usage_error_of({"--epoch", "1"}) == "unknown flag --epoch");
  CHECK(usage_error_of({"-x"}) == "unexpected argument '-x'");
  CHECK(usage_error_of({"--epochs"}) == "--epochs needs a value");
  CHECK(usage_error_of({"--report=1"}) == "--report takes no value");
  CHECK(usage_error_of({"a", "b", "c"}) == "expected IN [OUT], got 3 arguments");
  CHECK(usage_error_of({"--epoch", "1", "--bad"}) == "unknown flag --epoch");  // the first one
}

TEST_CASE("bad values name the flag and what was expected") {
  CHECK_THROWS_WITH_AS(Argv({"--epochs", "0"}).parse().get_int("epochs", 1),
                       "--epochs: expected an integer >= 1, got '0'", apps::FlagError);
  CHECK_THROWS_WITH_AS(Argv({"--model", "rnn"}).parse().get_choice("model"),
                       "--model: expected one of cnn|mlp, got 'rnn'", apps::FlagError);
  CHECK_THROWS_WITH_AS(Argv({"--lr", "x"}).parse().get_double("lr", 0.0),
                       "--lr: expected a number > 0, got 'x'", apps::FlagError);
  // A flag the program reads but did not declare, or reads without its missing default, is the
  // program's bug.
  CHECK_THROWS_AS(Argv({}).parse().get_string("epoch"), std::logic_error);
  CHECK_THROWS_AS(Argv({}).parse().get_int("index", 0), std::logic_error);
}

TEST_CASE("the usage lists every flag with its value and default, and --help") {
  std::string usage = apps::usage_text(kTable);
  CHECK(usage.rfind("usage: prog [FLAGS] IN [OUT]\nDoes a thing.\n", 0) == 0);
  CHECK(usage.find("  --epochs N ") != std::string::npos);
  CHECK(usage.find("epochs to train (default: 3)") != std::string::npos);
  CHECK(usage.find("the network (default: cnn)") != std::string::npos);
  CHECK(usage.find("checkpoints (default: none, no checkpoints)") != std::string::npos);
  CHECK(usage.find("an image (default: none)") != std::string::npos);
  CHECK(usage.find("report and stop\n") != std::string::npos);  // a switch shows no default
  CHECK(usage.find("  -h, --help ") != std::string::npos);
  for (const apps::FlagSpec& flag : kTable.flags)
    CHECK(usage.find("--" + flag.name) != std::string::npos);
}
