// The control API: a method table (name -> handler; whether it needs write access and whether it
// streams come from the one list in topowall/control_methods.hpp). Checks the envelope, the caller's
// rights, and turns any exception into an `internal` error: nothing escapes to the event loop.
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "control/server.hpp"
#include "topowall/control_methods.hpp"

namespace topowall::agent {

class ControlApi {
 public:
  using Handler = std::function<nlohmann::json(const nlohmann::json& params)>;
  // A method that may take a descriptor the client passed with the request (control::Peer::passed_fd,
  // lent for the call; -1 when none came).
  using FdHandler = std::function<nlohmann::json(const nlohmann::json& params, int passed_fd)>;
  using StreamHandler = std::function<nlohmann::json(const nlohmann::json& params, const control::PushFn& push)>;

  // Register the handler of a method of control::kMethods (throws std::logic_error for any other name:
  // a programming error, caught by the tests).
  void add(std::string_view name, Handler h);
  void add_with_fd(std::string_view name, FdHandler h);
  void add_stream(std::string_view name, StreamHandler h);
  // Methods of kMethods without a handler (the tests check there are none).
  std::vector<std::string_view> missing() const;

  nlohmann::json handle(const nlohmann::json& req, const control::Peer& peer, const control::PushFn& push);
  std::uint64_t handler_errors() const { return handler_errors_; }

 private:
  std::map<std::string, FdHandler, std::less<>> handlers_;
  std::map<std::string, StreamHandler, std::less<>> streams_;
  std::uint64_t handler_errors_ = 0;
};

// The success envelope.
nlohmann::json ok(nlohmann::json result);

}  // namespace topowall::agent
