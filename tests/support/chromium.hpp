// Headless Chromium (Debian's `chromium`) driven over the DevTools protocol (a websocket, Boost.Beast):
// tests and the benchmark load the radar in a real browser and read the page's own data.
#pragma once

#include <sys/types.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "topowall/result.hpp"

namespace topowall::testing {

class Chromium {
 public:
  // The browser binary, or "" when it is not installed (tests skip with that reason).
  static std::string binary();

  Chromium() = default;
  ~Chromium();
  Chromium(const Chromium&) = delete;
  Chromium& operator=(const Chromium&) = delete;

  // Start the browser on about:blank and attach to its page.
  [[nodiscard]] Status start(int width = 1400, int height = 900);
  // Cut the page off the network (DevTools' offline emulation) and record every request it makes.
  [[nodiscard]] Status offline();
  [[nodiscard]] Status navigate(const std::string& url);
  // `expr` evaluated in the page (promises awaited); its value as JSON, or the exception's text.
  [[nodiscard]] Result<nlohmann::json> eval(const std::string& expr, int timeout_ms = 20000);
  // eval's value, or the text "error: ..." when it failed (for assertions and messages).
  nlohmann::json js(const std::string& expr, int timeout_ms = 20000);
  // Polls `expr` until it is true; false after `timeout_ms`.
  bool wait_for(const std::string& expr, int timeout_ms);
  // A PNG of the page.
  [[nodiscard]] Status screenshot(const std::string& path);
  // URLs the page asked the network for (after offline()), besides file: and data: ones.
  const std::vector<std::string>& requests() const { return requests_; }
  void stop();

 private:
  [[nodiscard]] Result<nlohmann::json> call(const std::string& method, const nlohmann::json& params, int timeout_ms);
  void note_event(const nlohmann::json& ev);

  pid_t pid_ = 0;
  std::string dir_;
  struct Ws;
  Ws* ws_ = nullptr;
  int next_id_ = 1;
  std::vector<std::string> requests_;
};

}  // namespace topowall::testing
