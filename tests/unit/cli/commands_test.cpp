// The commands, run through the tree build_app makes: what they send the agent, and their exit codes.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "app.hpp"

using namespace topowall;
using nlohmann::json;

namespace {

// An agent that answers one request with `answer`, keeping the request it got.
class OneShotAgent {
 public:
  explicit OneShotAgent(json answer) {
    path_ = (std::filesystem::temp_directory_path() / ("topowall-cli-" + std::to_string(::getpid()) + ".sock")).string();
    ::unlink(path_.c_str());
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, path_.c_str(), sizeof sa.sun_path - 1);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd_, 1) != 0) ADD_FAILURE() << "bind";
    thread_ = std::thread([this, answer] { serve(answer); });
  }
  ~OneShotAgent() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  const std::string& path() const { return path_; }
  // The request, once the command has run.
  json request() const { return json::parse(line_, nullptr, false); }

 private:
  void serve(const json& answer) {
    int c = ::accept(fd_, nullptr, nullptr);
    if (c < 0) return;
    char ch;
    while (::read(c, &ch, 1) == 1 && ch != '\n') line_ += ch;
    auto out = answer.dump() + "\n";
    (void)!::write(c, out.data(), out.size());
    ::close(c);
  }

  std::string path_, line_;
  int fd_ = -1;
  std::thread thread_;
};

struct Run {
  int rc;
  std::string out, err;
};

Run run(const std::string& args) {
  cli::Ctx ctx;
  auto app = cli::build_app(ctx);
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  app->parse(args);
  auto out = testing::internal::GetCapturedStdout();
  return {ctx.rc, out, testing::internal::GetCapturedStderr()};
}

json ok(json result) { return {{"v", 1}, {"ok", true}, {"result", std::move(result)}}; }

}  // namespace

TEST(Commands, ApproveSendsIdsCommentAndExpiry) {
  OneShotAgent agent(ok({{"approved", {"web>api tcp/8080"}}}));
  auto r = run("--socket " + agent.path() + " flows approve 3 4 --comment why --for 7d");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "approved: web>api tcp/8080\n");
  auto req = agent.request();
  EXPECT_EQ(req["method"], "flows.approve");
  EXPECT_EQ(req["params"], (json{{"ids", {3, 4}}, {"comment", "why"}, {"for_seconds", 7 * 24 * 3600}}));
}

TEST(Commands, ExplainSendsTheFlowAndPrintsJsonWhenAsked) {
  OneShotAgent agent(ok({{"verdict", "accept"}}));
  auto r = run("--socket " + agent.path() + " -o json explain web api icmp/8");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "{\n  \"verdict\": \"accept\"\n}\n");
  EXPECT_EQ(agent.request()["method"], "explain");
  EXPECT_EQ(agent.request()["params"], (json{{"src", "web"}, {"dst", "api"}, {"proto", "icmp"}, {"port", 8}}));
}

TEST(Commands, ModeSendsTheWorkloadOverride) {
  OneShotAgent agent(ok({{"mode", "enforce"}}));
  auto r = run("--socket " + agent.path() + " -o json mode learn --workload db --for 30m");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(agent.request()["method"], "mode.set");
  EXPECT_EQ(agent.request()["params"], (json{{"mode", "learn"}, {"workload", "db"}, {"for_seconds", 1800}}));
}

TEST(Commands, ARefusalExitsOne) {
  OneShotAgent agent({{"v", 1}, {"ok", false}, {"error", {{"code", "forbidden"}, {"message", "no"}}}});
  auto r = run("--socket " + agent.path() + " edges remove web api tcp/8080");
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.err, "topowall: no [forbidden]\n");
  EXPECT_EQ(agent.request()["method"], "edges.remove");
}

TEST(Commands, UsageErrorsExitTwoWithoutCallingTheAgent) {
  const std::string s = "--socket /nonexistent/topowall.sock ";
  auto r = run(s + "flows approve 1 --for 7x");
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err, "topowall: --for '7x' is not a duration like 7d\n");
  r = run(s + "mode learn --for 30x");
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err, "topowall: --for '30x' is not a duration like 30m\n");
  for (const char* bad : {"explain a b tcp", "explain a b tcp/x", "edges remove a b 8080"}) {
    r = run(s + bad);
    EXPECT_EQ(r.rc, 2) << bad;
    EXPECT_EQ(r.err, "topowall: expected PROTO/PORT such as tcp/8080\n") << bad;
  }
  r = run(s + "topology import /nonexistent/graph.json");
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err, "topowall: cannot read /nonexistent/graph.json\n");
}

TEST(Commands, AnUnreachableAgentExitsThree) {
  for (const char* cmd : {"status", "flows watch", "rules show"}) {
    auto r = run(std::string("--socket /nonexistent/topowall.sock ") + cmd);
    EXPECT_EQ(r.rc, 3) << cmd;
    EXPECT_NE(r.err.find("cannot reach topowalld"), std::string::npos) << r.err;
  }
}

TEST(Commands, ArgumentsOutsideTheTreeAreParseErrors) {
  cli::Ctx ctx;
  auto app = cli::build_app(ctx);
  EXPECT_THROW(app->parse(std::string("mode sometimes")), CLI::ValidationError);
  EXPECT_THROW(app->parse(std::string("-o xml status")), CLI::ValidationError);
}
