// The control API's method table: envelope checks, rights from the one method list, no exception
// escaping, and every listed method served by the agent.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "agent/agent.hpp"
#include "agent/control_api.hpp"
#include "fakes.hpp"

using namespace topowall;
using nlohmann::json;

namespace {
json req(std::string_view method, json params = json::object()) {
  return {{"v", 1}, {"method", std::string(method)}, {"params", std::move(params)}};
}
control::Peer peer(bool write) {
  control::Peer p;
  p.uid = write ? 0 : 1000;
  p.may_write = write;
  return p;
}
}  // namespace

TEST(ControlApi, TheTableDecidesRightsAndNamesAndNothingEscapes) {
  agent::ControlApi api;
  int calls = 0;
  api.add(control::kStatus, [&](const json&) {
    ++calls;
    return agent::ok(json{{"fine", true}});
  });
  api.add(control::kModeSet, [&](const json&) -> json { throw std::runtime_error("boom"); });
  EXPECT_THROW(api.add("no.such.method", [](const json&) { return json(); }), std::logic_error);
  EXPECT_THROW(api.add(control::kFlowsWatch, [](const json&) { return json(); }), std::logic_error) << "a stream";

  EXPECT_TRUE(api.handle(req(control::kStatus), peer(false), nullptr)["ok"]);
  EXPECT_EQ(api.handle(req("nope"), peer(true), nullptr)["error"]["code"], "unknown_method");
  EXPECT_EQ(api.handle(req(control::kWorkloads), peer(true), nullptr)["error"]["code"], "unknown_method")
      << "listed but not registered";
  EXPECT_EQ(api.handle(req(control::kModeSet), peer(false), nullptr)["error"]["code"], "forbidden");
  EXPECT_EQ(api.handle(req(control::kModeSet), peer(true), nullptr)["error"]["code"], "internal");
  EXPECT_EQ(api.handler_errors(), 1u);
  EXPECT_EQ(api.handle({{"v", 2}, {"method", "status"}}, peer(true), nullptr)["error"]["code"], "bad_version");
  EXPECT_EQ(api.handle({{"v", 1}, {"method", 3}}, peer(true), nullptr)["error"]["code"], "malformed");
  EXPECT_EQ(api.handle(req(control::kStatus, json::array()), peer(true), nullptr)["error"]["code"], "malformed");
  EXPECT_EQ(calls, 1);
}

TEST(ControlApi, TheAgentServesEveryListedMethod) {
  boost::asio::io_context io;
  agent::Adapters ad;
  ad.store = std::make_unique<store::MemoryStateStore>();
  agent::AgentConfig cfg;
  agent::Agent a(io, cfg, std::move(ad));
  ASSERT_TRUE(a.start());
  for (const auto& m : control::kMethods) {
    auto r = a.handle(req(m.name), peer(true), m.streams ? control::PushFn([](const json&) { return true; }) : nullptr);
    if (r.is_null()) continue;  // a stream answered on the connection
    EXPECT_NE(r.value("error", json::object()).value("code", ""), "unknown_method") << m.name;
    EXPECT_NE(r.value("error", json::object()).value("code", ""), "internal") << m.name << ": " << r.dump();
  }
}

// A change that could not be saved is not answered "ok": the operator learns it would not survive a restart.
TEST(ControlApi, AChangeThatCannotBeSavedIsNotAnsweredOk) {
  boost::asio::io_context io;
  agent::Adapters ad;
  auto st = std::make_unique<store::MemoryStateStore>();
  auto* store = st.get();
  ad.store = std::move(st);
  agent::AgentConfig cfg;
  agent::Agent a(io, cfg, std::move(ad));
  ASSERT_TRUE(a.start());
  store->full = true;
  auto r = a.handle(req(control::kModeSet, {{"mode", "enforce"}}), peer(true), nullptr);
  EXPECT_EQ(r["error"]["code"], "not_saved") << r.dump();
  EXPECT_NE(r["error"]["message"].get<std::string>().find("no space left"), std::string::npos);
  EXPECT_EQ(a.state().modes.global, Mode::enforce) << "live all the same";
  store->full = false;
  EXPECT_TRUE(a.handle(req(control::kModeSet, {{"mode", "enforce"}}), peer(true), nullptr)["ok"]);
}
