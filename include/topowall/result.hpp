// Expected-style result for calls that can fail (kernel calls, parsing, I/O).
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace topowall {

struct Error {
  std::string message;  // what was wrong and, where known, what to do
  int code = 0;         // errno when it came from the kernel, else 0
};

template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error e) : v_(std::move(e)) {}
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

struct Ok {};
using Status = Result<Ok>;
[[nodiscard]] inline Status ok_status() { return Ok{}; }

}  // namespace topowall
