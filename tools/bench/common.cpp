#include "common.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <thread>

#include "rtnl/addresses.hpp"

extern char** environ;

namespace topowall::bench {

namespace {
std::string g_report;
}  // namespace

void out(const std::string& s) {
  g_report += s;
  fmt::print("{}", s);
  std::fflush(stdout);
}

const std::string& report_text() { return g_report; }

double secs(Clk::duration d) { return std::chrono::duration<double>(d).count(); }

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

int run_cmd(const std::vector<std::string>& args, rusage* ru, double* wall) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  auto t0 = Clk::now();
  if (posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ) != 0) return -1;
  posix_spawn_file_actions_destroy(&fa);
  int status = 0;
  rusage local{};
  wait4(pid, &status, 0, ru ? ru : &local);
  if (wall) *wall = secs(Clk::now() - t0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool nft_file(const std::string& text, double* wall, rusage* ru) {
  std::string path = "/tmp/topowall-bench.nft";
  std::ofstream(path) << text;
  return run_cmd({"nft", "-f", path}, ru, wall) == 0;
}

const char* const kCtTable =
    "table inet twb_ct {\n chain forward {\n  type filter hook forward priority -5; policy accept;\n"
    "  ct state established,related accept\n }\n}\n";

ConnResult connect_loop(const std::string& ns_path, const std::string& ip, int port, double duration, double pace) {
  ConnResult r;
  checked(rtnl::run_in_netns(ns_path, [&]() -> Status {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(port));
    inet_pton(AF_INET, ip.c_str(), &sa.sin_addr);
    auto t0 = Clk::now();
    auto end = t0 + std::chrono::duration<double>(duration);
    std::uint64_t i = 0;
    for (;;) {
      auto now = Clk::now();
      if (now >= end) break;
      if (pace > 0) {
        auto due = t0 + std::chrono::duration_cast<Clk::duration>(std::chrono::duration<double>(static_cast<double>(i) / pace));
        if (due > now) std::this_thread::sleep_until(due);
      }
      ++i;
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      timeval tv{1, 0};
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) ++r.ok;
      else ++r.failed;
      linger lg{1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      ::close(fd);
    }
    r.seconds = secs(Clk::now() - t0);
    return ok_status();
  }), "enter the lab namespace");
  return r;
}

ConnResult connect_parallel(const std::string& ns_path, const std::string& ip, int port, double duration, unsigned clients) {
  std::vector<ConnResult> rs(clients);
  std::vector<std::thread> ts;
  for (unsigned i = 0; i < clients; ++i)
    ts.emplace_back([&, i] { rs[i] = connect_loop(ns_path, ip, port, duration); });
  for (auto& t : ts) t.join();
  ConnResult total;
  for (const auto& r : rs) {
    total.ok += r.ok;
    total.failed += r.failed;
    total.seconds = std::max(total.seconds, r.seconds);
  }
  return total;
}

}  // namespace topowall::bench
