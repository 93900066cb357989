// Crash-safe persistence of the agent's state file.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "topowall/result.hpp"

namespace topowall::store {

class StateStore {
 public:
  virtual ~StateStore() = default;
  // nullopt when there is no state yet (a fresh state directory).
  [[nodiscard]] virtual Result<std::optional<nlohmann::json>> load() = 0;
  [[nodiscard]] virtual Status save(const nlohmann::json& doc) = 0;
  // The document as text (topology::state_to_text: a large graph is never built as a JSON value).
  [[nodiscard]] virtual Status save_text(const std::string& text);
};

// <dir>/state.json, written as temp file + fsync + rename + fsync(dir).
class FileStateStore final : public StateStore {
 public:
  explicit FileStateStore(std::string dir);
  [[nodiscard]] Status prepare();  // create the directory (0700) if needed
  [[nodiscard]] Result<std::optional<nlohmann::json>> load() override;
  [[nodiscard]] Status save(const nlohmann::json& doc) override;
  [[nodiscard]] Status save_text(const std::string& text) override;
  std::string path() const { return dir_ + "/state.json"; }

 private:
  std::string dir_;
};

class MemoryStateStore final : public StateStore {
 public:
  [[nodiscard]] Result<std::optional<nlohmann::json>> load() override { return doc; }
  [[nodiscard]] Status save(const nlohmann::json& d) override {
    if (full) return Error{"no space left on device (test)"};
    doc = d;
    ++saves;
    return ok_status();
  }
  std::optional<nlohmann::json> doc;
  int saves = 0;
  bool full = false;  // saving fails, as on a full disk
};

}  // namespace topowall::store
