// The control socket over a real unix socket: framing, limits, SO_PEERCRED.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <fcntl.h>
#include <filesystem>
#include <future>
#include <fstream>
#include <thread>

#include "client.hpp"
#include "control/server.hpp"
#include "control_server_fixture.hpp"

using namespace topowall;
using nlohmann::json;

using namespace topowall::ctltest;

namespace {
// 200,000 levels: well under 1 MiB, and far past what one thread's stack survives when a value that
// deep is copied or dumped (each level is a recursive call).
std::string nested(std::size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }
}  // namespace

TEST_F(ServerFixture, SocketIsAPathWithMode0660) {
  struct stat st{};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);
}

TEST_F(ServerFixture, MalformedOversizedAndFailingRequestsGetErrorsAndServerStaysUp) {
  EXPECT_EQ(json::parse(raw("not json\n"))["error"]["code"], "malformed");
  EXPECT_EQ(json::parse(raw("[1,2]\n"))["error"]["code"], "malformed");
  EXPECT_EQ(json::parse(raw(std::string(10000, 'x') + "\n"))["error"]["code"], "too_large");
  EXPECT_EQ(json::parse(raw("{\"method\":\"throw\"}\n"))["error"]["code"], "internal");
  EXPECT_EQ(json::parse(raw("{\"method\":\"zzz\"}\n"))["error"]["code"], "unknown_method");
  cli::Client c(path);
  auto r = c.call("whoami");
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)["result"]["uid"], getuid());
  EXPECT_GE(server->stats().rejected, 5u);
}

TEST_F(ServerFixture, RateLimitedPerConnection) {
  cli::Client c(path);
  int limited = 0;
  for (int i = 0; i < 80; ++i) {
    auto r = c.call("whoami");
    ASSERT_TRUE(r);
    if (!(*r).value("ok", false) && (*r)["error"]["code"] == "rate_limited") ++limited;
  }
  EXPECT_GE(limited, 20);
}

TEST_F(ServerFixture, PeerCredentialsDecideWhoMayWrite) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to connect as another uid";
  chmod(path.c_str(), 0666);  // let the unprivileged child reach the socket: the check must be SO_PEERCRED
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t pid = fork();
  if (pid == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(2);
    cli::Client c(path);
    auto r = c.call("whoami");
    std::string out = r ? r->dump() : "error";
    (void)!write(pipefd[1], out.data(), out.size());
    _exit(0);
  }
  close(pipefd[1]);
  std::string out;
  char buf[512];
  ssize_t n;
  while ((n = read(pipefd[0], buf, sizeof buf)) > 0) out.append(buf, n);
  close(pipefd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  auto j = json::parse(out);
  EXPECT_EQ(j["result"]["uid"], 65534);
  EXPECT_EQ(j["result"]["may_write"], false);
  cli::Client root(path);
  EXPECT_EQ((*root.call("whoami"))["result"]["may_write"], true);
}

TEST_F(ServerFixture, TooManyConnectionsAreRefusedWithoutStoppingTheServer) {
  std::vector<std::unique_ptr<cli::Client>> held;
  for (int i = 0; i < 64; ++i) {
    held.push_back(std::make_unique<cli::Client>(path));
    ASSERT_TRUE(held.back()->call("whoami")) << i;  // each is accepted and served
  }
  EXPECT_EQ(json::parse(raw("{\"method\":\"whoami\"}\n"))["error"]["code"], "busy");
  for (int i = 0; i < 4; ++i) {
    // The CLI, refused, reads the reason; with the pause the agent has closed before the CLI sends, so
    // the send gets EPIPE (a SIGPIPE would kill this test).
    cli::Client refused(path);
    ASSERT_TRUE(refused.connect());
    if (i % 2) std::this_thread::sleep_for(std::chrono::milliseconds(30));
    auto busy = refused.call("whoami");
    ASSERT_TRUE(busy) << busy.error().message;
    EXPECT_EQ((*busy)["error"]["code"], "busy");
  }
  held.pop_back();
  // The server learns of the close asynchronously: a freed slot is usable again within a few seconds.
  bool served = false;
  for (int i = 0; i < 100 && !served; ++i) {
    cli::Client again(path);
    auto r = again.call("whoami");
    ASSERT_TRUE(r);
    served = (*r).value("ok", false);
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(served) << "a freed slot is usable again";
}

// The CLI against an agent that answers in a shape it does not know: a clear error and exit 1, not an
// uncaught exception.
TEST_F(ServerFixture, TheCliNamesAnAnswerItCannotRead) {
  std::string out;
  FILE* p = popen((std::string(TOPOWALL_CLI) + " --socket " + path + " status 2>&1").c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[512];
  while (fgets(buf, sizeof buf, p)) out += buf;
  int status = pclose(p);
  ASSERT_TRUE(WIFEXITED(status)) << out;
  EXPECT_EQ(WEXITSTATUS(status), 1) << out;
  EXPECT_NE(out.find("unexpected answer from the agent"), std::string::npos) << out;
}

// A request nested 200,000 deep killed the agent (stack overflow copying or dumping it). It is refused
// while parsed, before the handler sees it, and the same connection goes on being served.
TEST_F(FullSizeServerFixture, DeeplyNestedRequestIsRefusedAndTheConnectionKeepsServing) {
  const std::string deep = "{\"method\":\"echo\",\"params\":{\"x\":" + nested(200000) + "}}\n";
  ASSERT_LT(deep.size(), max_request_bytes);
  auto answers = raw_lines(deep + "{\"method\":\"whoami\"}\n", 2);
  auto refused = json::parse(answers[0], nullptr, false);
  ASSERT_TRUE(refused.is_object()) << answers[0].substr(0, 200);
  EXPECT_EQ(refused["error"]["code"], "malformed");
  EXPECT_NE(refused["error"]["message"].get<std::string>().find("64"), std::string::npos) << refused.dump();
  auto next = json::parse(answers[1], nullptr, false);
  EXPECT_EQ(next.value("ok", false), true) << answers[1];
  EXPECT_EQ(handled.load(), 1);  // only whoami reached the handler
  EXPECT_EQ(server->stats().rejected, 1u);
  // Ordinary nesting is untouched.
  cli::Client c(path);
  auto r = c.call("echo", json::parse(R"({"a":{"b":[1,[2,[3]]]}})"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ((*r)["result"]["a"]["b"][1][1][0], 3);
}

// `topowall topology import` of a hostile file: the CLI died copying it into the request. It says what
// is wrong with the file and exits 2, before contacting the agent.
TEST_F(ServerFixture, TheCliRefusesADeeplyNestedGraphFile) {
  const std::string file = "/tmp/topowall-deep-graph-" + std::to_string(getpid()) + ".json";
  std::ofstream(file) << nested(200000);
  std::string out;
  const std::string cmd = std::string(TOPOWALL_CLI) + " --socket " + path + " topology import " + file + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[512];
  while (fgets(buf, sizeof buf, p)) out += buf;
  int status = pclose(p);
  std::filesystem::remove(file);
  ASSERT_TRUE(WIFEXITED(status)) << "the CLI died: " << out;
  EXPECT_EQ(WEXITSTATUS(status), 2) << out;
  EXPECT_NE(out.find("64"), std::string::npos) << out;
  EXPECT_EQ(handled.load(), 0);
}

// An answer nested 200,000 deep (from whatever listens on the socket) is an error naming it, not a
// crash when the CLI prints it.
TEST(ControlClient, TheCliRefusesADeeplyNestedAnswer) {
  const std::string path = "/tmp/topowall-fake-agent-" + std::to_string(getpid()) + ".sock";
  ::unlink(path.c_str());
  int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strcpy(sa.sun_path, path.c_str());
  ASSERT_EQ(bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(listen(lfd, 1), 0);
  std::thread fake([lfd] {
    int fd = accept(lfd, nullptr, nullptr);
    if (fd < 0) return;
    char c;
    while (read(fd, &c, 1) == 1 && c != '\n') {}
    const std::string answer = "{\"v\":1,\"ok\":true,\"result\":" + nested(200000) + "}\n";
    (void)!send(fd, answer.data(), answer.size(), MSG_NOSIGNAL);
    close(fd);
  });
  std::string out;
  FILE* p = popen((std::string(TOPOWALL_CLI) + " --socket " + path + " -o json status 2>&1").c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[512];
  while (fgets(buf, sizeof buf, p)) out += buf;
  int status = pclose(p);
  fake.join();
  close(lfd);
  ::unlink(path.c_str());
  ASSERT_TRUE(WIFEXITED(status)) << "the CLI died: " << out.substr(0, 300);
  EXPECT_EQ(WEXITSTATUS(status), 1) << out.substr(0, 300);
  EXPECT_NE(out.find("64"), std::string::npos) << out.substr(0, 300);
}

// A client that pipelines requests and never reads its answers: the server stops reading from it once its
// queued output reaches the bound, so what the server holds for it stays under the bound (plus the one answer
// that crossed it), and the other clients are served meanwhile. Reading resumes once the client reads, and
// every answer arrives, in the order of the requests.
TEST_F(SmallOutputServerFixture, AClientThatNeverReadsCannotGrowTheServersOutput) {
  constexpr int kRequests = 3000;
  std::string requests;
  for (int i = 0; i < kRequests; ++i) requests += "{\"method\":\"seq\",\"params\":{\"seq\":" + std::to_string(i) + "}}\n";
  int stuck = connect_raw(requests);
  // The server answers until its kernel buffer and the queue are full, then waits.
  std::uint64_t last = 0;
  for (int i = 0; i < 200; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    auto now = stats_now().requests;
    if (i > 10 && now == last) break;
    last = now;
  }
  auto st = stats_now();
  EXPECT_LT(st.requests, static_cast<std::uint64_t>(kRequests)) << "reading paused";
  EXPECT_GE(st.output_peak, max_output_bytes / 2) << "the queue did fill";
  EXPECT_LE(st.output_peak, max_output_bytes + kBig + 1024) << "and stayed under the bound";
  EXPECT_LE(st.output_bytes, max_output_bytes + kBig + 1024);
  EXPECT_GE(st.paused, 1u);
  for (int i = 0; i < 3; ++i) {
    cli::Client other(path);
    auto r = other.call("whoami");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ((*r).value("ok", false), true) << "others are still served";
  }
  EXPECT_LE(stats_now().output_peak, max_output_bytes + kBig + 1024) << "still under the bound";
  // Once the client reads, the server reads on: every request is answered, in order. (The rate limit
  // refuses some: their answers hold no seq and are counted apart.)
  int answered = 0, limited = 0, next_seq = 0;
  bool in_order = true;
  std::string buf;
  char chunk[65536];
  for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
       answered + limited < kRequests && std::chrono::steady_clock::now() < until;) {
    auto n = read(stuck, chunk, sizeof chunk);
    if (n <= 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    buf.append(chunk, static_cast<std::size_t>(n));
    for (auto nl = buf.find('\n'); nl != std::string::npos; nl = buf.find('\n')) {
      auto j = json::parse(buf.substr(0, nl));
      buf.erase(0, nl + 1);
      if (!j.value("ok", false)) {
        ++limited;
        ++next_seq;  // the refused request's place
        continue;
      }
      in_order = in_order && j["result"]["seq"] == next_seq;
      ++next_seq;
      ++answered;
    }
  }
  EXPECT_EQ(answered + limited, kRequests) << "reading resumed as the queue drained";
  EXPECT_TRUE(in_order) << "answers come in the order of the requests";
  EXPECT_GT(answered, 0);
  close(stuck);
  bool freed = false;
  for (int i = 0; i < 100 && !freed; ++i) {
    freed = stats_now().output_bytes == 0;
    if (!freed) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(freed) << "a closed client's queue is released";
}

// A stream (flows watch) whose client never reads: once its queue reaches the bound, the server refuses
// further lines (the agent drops the watcher) and closes the connection instead of buffering forever.
TEST_F(SmallOutputServerFixture, AWatcherThatNeverReadsIsCutOffAtTheBound) {
  int stuck = connect_raw("{\"method\":\"watch\"}\n");
  for (int i = 0; i < 200 && !stats_now().requests; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::promise<int> pushed;
  boost::asio::post(io, [&] {
    int n = 0;
    while (n < 1000 && watcher && watcher(json(std::string(kBig, 'y')))) ++n;
    pushed.set_value(n);
  });
  EXPECT_LT(pushed.get_future().get(), 1000) << "the stream was refused once the client fell behind";
  auto st = stats_now();
  EXPECT_LE(st.output_peak, max_output_bytes + kBig + 1024);
  EXPECT_GE(st.slow_closed, 1u);
  bool freed = false;
  for (int i = 0; i < 100 && !freed; ++i) {
    freed = stats_now().output_bytes == 0;
    if (!freed) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(freed) << "the connection was closed and its queue released";
  close(stuck);
}
