// The agent as users run it: topowalld spawned with its own state directory,
// socket and table (twb_agent), read through the CLI and a watch connection.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "common.hpp"

extern char** environ;

namespace topowall::bench {

using namespace topowall::testing;

bool Agent::start(const Options& o, const std::vector<std::string>& extra) {
  if (launch(o, extra)) return true;
  out("agent did not start\n");
  return false;
}

bool Agent::launch(const Options& o, const std::vector<std::string>& extra) {
  dir = "/tmp/topowall-bench-agent";
  sh("rm -rf " + dir);
  mkdir(dir.c_str(), 0700);
  sock = dir + "/sock";
  std::vector<std::string> args = {o.agent, "--state-dir", dir + "/state", "--socket", sock, "--table", "twb_agent",
                                   "--nflog-group", "5401", "--netns-prefix", "twb-", "--discover-netns", "--log-level", "warn"};
  args.insert(args.end(), extra.begin(), extra.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, (dir + "/log").c_str(), O_WRONLY | O_CREAT, 0600);
  if (posix_spawn(&pid, o.agent.c_str(), &fa, nullptr, argv.data(), environ) != 0) return false;
  posix_spawn_file_actions_destroy(&fa);
  for (int i = 0; i < 100; ++i) {
    auto s = status(o);
    if (s.value("ruleset_applied", false)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

json Agent::status(const Options& o) {
  auto j = json::parse(sh_out(o.cli + " --socket " + sock + " status -o json 2>/dev/null"), nullptr, false);
  return j.is_discarded() ? json::object() : j;
}

double Agent::cpu_seconds() const {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(in)), {});
  auto p = s.rfind(')');
  std::istringstream rest(s.substr(p + 2));
  std::string f;
  long utime = 0, stime = 0;
  for (int i = 3; i <= 15; ++i) {
    rest >> f;
    if (i == 14) utime = std::stol(f);
    if (i == 15) stime = std::stol(f);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

long Agent::rss_kib(bool peak) const {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  const std::string field = peak ? "VmHWM:" : "VmRSS:";
  while (std::getline(in, line))
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(field.size()));
  return 0;
}

void Agent::stop() {
  if (pid > 0) {
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
    pid = 0;
    drop_tables("twb_agent");
  }
}

Watch::Watch(const std::string& sock) {
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, sock.c_str(), sizeof sa.sun_path - 1);
  if (fd_ < 0 || connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    return;
  }
  std::string req = "{\"v\":1,\"method\":\"flows.watch\"}\n";
  (void)!write(fd_, req.data(), req.size());
  line(1000);  // {"watching": true}
}

Watch::~Watch() {
  if (fd_ >= 0) ::close(fd_);
}

std::string Watch::line(int timeout_ms) {
  for (;;) {
    auto nl = buf_.find('\n');
    if (nl != std::string::npos) {
      auto l = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      return l;
    }
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) return "";
    char chunk[8192];
    ssize_t n = read(fd_, chunk, sizeof chunk);
    if (n <= 0) return "";
    buf_.append(chunk, static_cast<std::size_t>(n));
  }
}

}  // namespace topowall::bench
