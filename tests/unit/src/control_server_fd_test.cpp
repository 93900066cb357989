// The control socket's descriptors (SCM_RIGHTS) and rights (SO_PEERCRED), over a real unix socket.
#include <dirent.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "agent/control_api.hpp"
#include "client.hpp"
#include "control_server_fixture.hpp"

using namespace topowall;
using namespace topowall::ctltest;
using nlohmann::json;

namespace {

int open_fds() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (readdir(d)) ++n;
    closedir(d);
  }
  return n;
}

// Sends `bytes` in one sendmsg with `fds` attached.
bool send_with_fds(int sock, const std::string& bytes, const std::vector<int>& fds) {
  iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> ctrl(CMSG_SPACE(sizeof(int) * fds.size()));
  if (!fds.empty()) {
    msg.msg_control = ctrl.data();
    msg.msg_controllen = ctrl.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  return sendmsg(sock, &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
}

int connect_to(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strcpy(sa.sun_path, path.c_str());
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  return fd;
}

std::vector<json> read_answers(int fd, std::size_t n) {
  std::vector<json> out;
  std::string buf;
  char c;
  while (out.size() < n && read(fd, &c, 1) == 1) {
    if (c != '\n') {
      buf.push_back(c);
      continue;
    }
    out.push_back(json::parse(buf));
    buf.clear();
  }
  return out;
}

long inode_of(int fd) {
  struct stat st{};
  return fstat(fd, &st) == 0 ? static_cast<long>(st.st_ino) : -2;
}

}  // namespace

// Pipelined requests, only the second carrying a descriptor: the kernel may deliver both lines in one
// read, and the descriptor still goes to the request it was sent with. The server closes it after the
// call: the pipe's write end, its only other copy, is gone and the reader sees the end.
TEST_F(ServerFixture, APassedDescriptorGoesToTheRequestItCameWith) {
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  int sock = connect_to(path);
  ASSERT_TRUE(send_with_fds(sock, "{\"method\":\"fd\"}\n", {}));
  ASSERT_TRUE(send_with_fds(sock, "{\"method\":\"fd\"}\n", {p[1]}));
  ASSERT_TRUE(send_with_fds(sock, "{\"method\":\"fd\"}\n", {}));
  close(p[1]);
  auto answers = read_answers(sock, 3);
  ASSERT_EQ(answers.size(), 3u);
  EXPECT_EQ(answers[0]["result"]["ino"], -1);
  EXPECT_EQ(answers[1]["result"]["ino"], inode_of(p[0])) << "a pipe's two ends share the inode";
  EXPECT_EQ(answers[2]["result"]["ino"], -1) << "lent for one call only";
  char c;
  EXPECT_EQ(read(p[0], &c, 1), 0) << "the server closed its copy after the call";
  close(p[0]);
  close(sock);
}

// Descriptors sent with no request to take them, or many at once, would fill the agent's descriptor
// table: more than kMaxPassedFds waiting is refused, the connection closed, and every one of them closed.
TEST_F(ServerFixture, TooManyPassedDescriptorsAreRefusedAndClosed) {
  const int before = open_fds();
  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  // One message with ten, then one byte at a time with one each and no newline.
  for (bool one_message : {true, false}) {
    int sock = connect_to(path);
    if (one_message) {
      ASSERT_TRUE(send_with_fds(sock, "{", std::vector<int>(10, devnull)));
    } else {
      for (int i = 0; i < 5; ++i) {
        (void)send_with_fds(sock, " ", {devnull});
        std::this_thread::sleep_for(std::chrono::milliseconds(5));  // separate reads on the server
      }
    }
    auto answers = read_answers(sock, 1);
    ASSERT_EQ(answers.size(), 1u) << one_message;
    EXPECT_EQ(answers[0]["error"]["code"], "too_many_fds");
    char c;
    // Closed: an end of file, or a reset when the server closed with our later bytes still unread.
    const auto n = read(sock, &c, 1);
    EXPECT_TRUE(n == 0 || (n < 0 && errno == ECONNRESET)) << "the connection is not closed: " << n << " " << errno;
    close(sock);
  }
  close(devnull);
  int now = 0;
  for (int i = 0; i < 100 && (now = open_fds()) > before; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(now, before) << "no descriptor stayed open in the server";
  cli::Client c(path);
  EXPECT_TRUE(c.call("whoami")) << "the server keeps serving";
}

namespace {
// The agent's method table behind the real server: the rights come from SO_PEERCRED and the table.
struct ApiServerFixture : ::testing::Test {
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to connect as another uid (setresuid)";
    api.add(control::kStatus, [](const json&) { return agent::ok(json{{"marker", "status-read"}}); });
    api.add(control::kModeSet, [this](const json&) {
      ++writes;
      return agent::ok(json{{"mode", "enforce"}});
    });
  }
  void start(const std::string& group) {
    path = "/tmp/topowall-ctl-rights-" + std::to_string(getpid()) + ".sock";
    control::ServerOptions o;
    o.path = path;
    o.group = group;
    server = std::make_unique<control::Server>(
        io, o, [this](const json& r, const control::Peer& p, const control::PushFn& push) { return api.handle(r, p, push); });
    ASSERT_TRUE(server->start());
    thread = std::thread([this] { io.run(); });
  }
  void TearDown() override {
    if (!thread.joinable()) return;
    io.stop();
    thread.join();
    server.reset();
  }
  // The real CLI as `uid`/`gid` with exactly `groups`: its exit code and output.
  std::pair<int, std::string> cli_as(uid_t uid, gid_t gid, const std::vector<gid_t>& groups,
                                     const std::vector<std::string>& args) {
    int out[2];
    EXPECT_EQ(pipe(out), 0);
    std::vector<std::string> argv{TOPOWALL_CLI, "--socket", path};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    pid_t pid = fork();
    if (pid == 0) {
      dup2(out[1], 1);
      dup2(out[1], 2);
      if (setgroups(groups.size(), groups.data()) != 0 || setresgid(gid, gid, gid) != 0 || setresuid(uid, uid, uid) != 0)
        _exit(99);
      execv(cargv[0], cargv.data());
      _exit(98);
    }
    close(out[1]);
    std::string text;
    char buf[4096];
    ssize_t n;
    while ((n = read(out[0], buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
    close(out[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text};
  }
  agent::ControlApi api;
  int writes = 0;
  boost::asio::io_context io;
  std::unique_ptr<control::Server> server;
  std::thread thread;
  std::string path;
};
constexpr uid_t kNobody = 65534;
}  // namespace

// The socket's mode widened (chmod 666) lets anyone connect; only SO_PEERCRED decides who may change
// state. Another uid reads, and is refused a change with a message that says why and what is needed.
TEST_F(ApiServerFixture, AWidenedSocketStillRefusesChangesToAnotherUid) {
  start("");
  ASSERT_EQ(chmod(path.c_str(), 0666), 0);
  auto [rc, out] = cli_as(kNobody, kNobody, {}, {"mode", "enforce"});
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("changing state needs root or the control group (uid 65534 is neither) [forbidden]"),
            std::string::npos) << out;
  EXPECT_EQ(writes, 0) << "the method never ran";
  auto [rc2, out2] = cli_as(kNobody, kNobody, {}, {"-o", "json", "status"});
  EXPECT_EQ(rc2, 0) << out2;
  EXPECT_NE(out2.find("status-read"), std::string::npos) << out2;
  auto [rc3, out3] = cli_as(0, 0, {}, {"-o", "json", "mode", "enforce"});
  EXPECT_EQ(rc3, 0) << "root may: " << out3;
  EXPECT_EQ(writes, 1);
}

// With --control-group, a member may change state: by its primary group or a supplementary one (read
// from the kernel's copy taken at connect, SO_PEERGROUPS). A non-member is still refused.
TEST_F(ApiServerFixture, TheControlGroupMayChangeStateAndNobodyElse) {
  const group* g = getgrgid(kNobody);  // nogroup on Debian: one that exists everywhere this runs
  if (!g) GTEST_SKIP() << "no group with gid 65534 to use as the control group";
  start(g->gr_name);
  ASSERT_EQ(chmod(path.c_str(), 0666), 0);
  const gid_t other = 4242;  // a group that is not the control group
  EXPECT_EQ(cli_as(kNobody, other, {other}, {"mode", "enforce"}).first, 1) << "not a member";
  EXPECT_EQ(writes, 0);
  auto [rc, out] = cli_as(kNobody, other, {other, kNobody}, {"-o", "json", "mode", "enforce"});
  EXPECT_EQ(rc, 0) << "a supplementary member: " << out;
  auto [rc2, out2] = cli_as(kNobody, kNobody, {}, {"-o", "json", "mode", "enforce"});
  EXPECT_EQ(rc2, 0) << "a primary member: " << out2;
  EXPECT_EQ(writes, 2);
}
