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
  // Sends {"v":1,"method":..,"params":..}; returns the whole response object.
  Result<nlohmann::json> call(const std::string& method, const nlohmann::json& params = nlohmann::json::object());
  // For streaming calls: the next line the agent pushes.
  Result<nlohmann::json> next();

 private:
  std::string path_;
  int fd_ = -1;
  std::string buf_;
};

}  // namespace topowall::cli
