#include "chromium.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>

#include "lab.hpp"

extern char** environ;

namespace topowall::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
using nlohmann::json;

struct Chromium::Ws {
  asio::io_context io;
  beast::websocket::stream<beast::tcp_stream> ws{io};
  // One message, or "" after `timeout_ms`.
  std::string read(int timeout_ms) {
    beast::flat_buffer buf;
    bool done = false;
    beast::error_code err;
    ws.async_read(buf, [&](beast::error_code ec, std::size_t) { done = true; err = ec; });
    io.restart();
    io.run_for(std::chrono::milliseconds(timeout_ms));
    if (!done) {
      beast::get_lowest_layer(ws).cancel();
      io.restart();
      io.run();
      return "";
    }
    return err ? "" : beast::buffers_to_string(buf.data());
  }
};

std::string Chromium::binary() {
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser"})
    if (access(p, X_OK) == 0) return p;
  return "";
}

Chromium::~Chromium() { stop(); }

void Chromium::stop() {
  delete ws_;
  ws_ = nullptr;
  if (pid_ > 0) {
    kill(-pid_, SIGKILL);  // its own process group: the renderer and GPU helpers go too
    waitpid(pid_, nullptr, 0);
    pid_ = 0;
  }
  if (!dir_.empty()) sh("rm -rf '" + dir_ + "' '" + dir_ + ".log'");
  dir_.clear();
}

Status Chromium::start(int width, int height) {
  const auto bin = binary();
  if (bin.empty()) return Error{"chromium is not installed (tools/install-deps.sh installs it)"};
  char tmpl[] = "/tmp/topowall-chromium-XXXXXX";
  if (!mkdtemp(tmpl)) return Error{"cannot make a profile directory in /tmp"};
  dir_ = tmpl;
  std::vector<std::string> args = {bin, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                   "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
                                   "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--mute-audio",
                                   "--user-data-dir=" + dir_, "--remote-debugging-port=0", "--remote-allow-origins=*",
                                   "--window-size=" + std::to_string(width) + "," + std::to_string(height), "about:blank"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, (dir_ + ".log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  const int rc = posix_spawn(&pid_, bin.c_str(), &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return Error{"cannot start " + bin + ": " + std::strerror(rc)};
  // The browser writes its DevTools port into the profile once it listens.
  std::string port;
  for (int i = 0; i < 300 && port.empty(); ++i) {
    std::ifstream in(dir_ + "/DevToolsActivePort");
    std::getline(in, port);
    if (port.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (port.empty()) return Error{"chromium did not open its DevTools port in 15 s; see " + dir_ + ".log"};
  ws_ = new Ws;
  try {
    tcp::resolver res(ws_->io);
    auto eps = res.resolve("127.0.0.1", port);
    beast::tcp_stream http_conn(ws_->io);
    http_conn.connect(eps);
    http::request<http::empty_body> req{http::verb::get, "/json/list", 11};
    req.set(http::field::host, "127.0.0.1");
    http::write(http_conn, req);
    beast::flat_buffer buf;
    http::response<http::string_body> res_msg;
    http::read(http_conn, buf, res_msg);
    std::string target;
    for (const auto& t : json::parse(res_msg.body()))
      if (t.value("type", "") == "page") target = t.value("webSocketDebuggerUrl", "");
    if (target.empty()) return Error{"chromium lists no page to attach to"};
    target = target.substr(target.find("/devtools/"));
    beast::get_lowest_layer(ws_->ws).connect(eps);
    ws_->ws.read_message_max(256u << 20);
    ws_->ws.handshake("127.0.0.1:" + port, target);
  } catch (const std::exception& e) {
    return Error{std::string("cannot attach to chromium's DevTools: ") + e.what()};
  }
  if (auto r = call("Runtime.enable", json::object(), 10000); !r) return r.error();
  if (auto r = call("Page.enable", json::object(), 10000); !r) return r.error();
  return ok_status();
}

void Chromium::note_event(const json& ev) {
  if (ev.value("method", "") != "Network.requestWillBeSent") return;
  auto url = ev["params"]["request"].value("url", "");
  if (url.rfind("file:", 0) != 0 && url.rfind("data:", 0) != 0 && url != "about:blank") requests_.push_back(url);
}

Result<json> Chromium::call(const std::string& method, const json& params, int timeout_ms) {
  if (!ws_) return Error{"chromium is not started"};
  const int id = next_id_++;
  try {
    ws_->ws.write(asio::buffer(json{{"id", id}, {"method", method}, {"params", params}}.dump()));
  } catch (const std::exception& e) {
    return Error{method + ": " + e.what()};
  }
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < end) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
    auto msg = ws_->read(static_cast<int>(std::max<long>(1, left.count())));
    if (msg.empty()) continue;
    auto j = json::parse(msg, nullptr, false);
    if (j.is_discarded()) continue;
    if (!j.contains("id")) {
      note_event(j);
      continue;
    }
    if (j["id"] != id) continue;
    if (j.contains("error")) return Error{method + ": " + j["error"].dump()};
    return j["result"];
  }
  return Error{method + ": no answer in " + std::to_string(timeout_ms) + " ms"};
}

Status Chromium::offline() {
  if (auto r = call("Network.enable", json::object(), 10000); !r) return r.error();
  auto r = call("Network.emulateNetworkConditions",
                {{"offline", true}, {"latency", 0}, {"downloadThroughput", -1}, {"uploadThroughput", -1}}, 10000);
  if (!r) return r.error();
  return ok_status();
}

Status Chromium::navigate(const std::string& url) {
  auto r = call("Page.navigate", {{"url", url}}, 30000);
  if (!r) return r.error();
  if (r->contains("errorText")) return Error{"navigating to " + url + ": " + (*r)["errorText"].get<std::string>()};
  return ok_status();
}

Result<json> Chromium::eval(const std::string& expr, int timeout_ms) {
  auto r = call("Runtime.evaluate", {{"expression", expr}, {"returnByValue", true}, {"awaitPromise", true}}, timeout_ms);
  if (!r) return r.error();
  if (r->contains("exceptionDetails")) return Error{"page threw: " + (*r)["exceptionDetails"].dump()};
  return (*r)["result"].value("value", json());
}

json Chromium::js(const std::string& expr, int timeout_ms) {
  auto r = eval(expr, timeout_ms);
  return r ? *r : json("error: " + r.error().message);
}

bool Chromium::wait_for(const std::string& expr, int timeout_ms) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < end) {
    auto r = eval("!!(" + expr + ")", 5000);
    if (r && *r == true) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

Status Chromium::screenshot(const std::string& path) {
  auto r = call("Page.captureScreenshot", {{"format", "png"}}, 30000);
  if (!r) return r.error();
  std::string b64 = r->value("data", "");
  // base64 decode
  std::string out;
  int val = 0, bits = -8;
  for (unsigned char c : b64) {
    int d = c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26 : c >= '0' && c <= '9' ? c - '0' + 52
            : c == '+' ? 62 : c == '/' ? 63 : -1;
    if (d < 0) continue;
    val = (val << 6) + d;
    bits += 6;
    if (bits >= 0) {
      out.push_back(static_cast<char>((val >> bits) & 0xff));
      bits -= 8;
    }
  }
  std::ofstream f(path, std::ios::binary);
  f << out;
  if (!f) return Error{"cannot write " + path};
  return ok_status();
}

}  // namespace topowall::testing
