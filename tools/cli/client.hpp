// Minimal blocking client of the agent's control socket.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "topowall/result.hpp"

namespace topowall::cli {

class Client {
 public:
  explicit Client(std::string path) : path_(std::move(path)) {}
  ~Client();
  Status connect();
  // Sends {"v":1,"method":..,"params":..}; returns the whole response object. With `pass_fd`, that
  // descriptor goes along with the request line (SCM_RIGHTS): how a graph of any size is handed over.
  Result<nlohmann::json> call(const std::string& method, const nlohmann::json& params = nlohmann::json::object(),
                              int pass_fd = -1);
  // For streaming calls: the next line the agent pushes.
  Result<nlohmann::json> next();

 private:
  std::string path_;
  int fd_ = -1;
  std::string buf_;
};

}  // namespace topowall::cli
