// The text of the exception a call throws, or "(no error)": how the tests compare error
// messages whole.
#pragma once

#include <exception>
#include <functional>
#include <string>

inline std::string error_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const std::exception& error) {
    return error.what();
  }
  return "(no error)";
}
