// In-memory stand-ins for the agent's adapters.
#pragma once

#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "alerts/sinks.hpp"
#include "topowall/address_watcher.hpp"
#include "topowall/alert_source.hpp"
#include "topowall/cluster.hpp"
#include "topowall/flow_source.hpp"
#include "topowall/ruleset_writer.hpp"
#include "topowall/runtime.hpp"

#include "topowall/time_source.hpp"

namespace topowall::fakes {

// Simulated time: moves only when a test says so.
class FakeTime final : public TimeSource {
 public:
  TimePoint now() const override { return wall; }
  std::chrono::steady_clock::time_point monotonic() const override { return mono; }
  void advance(std::chrono::milliseconds d) {
    wall += d;
    mono += d;
  }
  TimePoint wall = TimePoint{} + std::chrono::hours(24 * 365 * 56);
  std::chrono::steady_clock::time_point mono = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
};


class FakeDiscovery : public Discovery {
 public:
  void start(DiscoveryHandler h) override {
    handler = std::move(h);
    for (const auto& e : initial) handler(DiscoveryEvent{DiscoveryEvent::Kind::upsert, e, {}});
    handler(DiscoveryEvent{DiscoveryEvent::Kind::synced, {}, {}});
  }
  void stop() override {}
  DiscoveryStats stats() const override { return {}; }
  void add(const EndpointInfo& e) { handler(DiscoveryEvent{DiscoveryEvent::Kind::upsert, e, {}}); }
  void remove(const std::string& id) { handler(DiscoveryEvent{DiscoveryEvent::Kind::remove, {}, id}); }
  std::vector<EndpointInfo> initial;
  DiscoveryHandler handler;
};

class FakeFlowSource : public FlowSource {
 public:
  Status start(FlowHandler h) override {
    handler = std::move(h);
    return ok_status();
  }
  void stop() override {}
  Status resync() override {
    ++resyncs;
    for (const auto& f : table) handler(f, true);
    return ok_status();
  }
  FlowSourceStats stats() const override {
    FlowSourceStats s;
    s.subscribed = subscribed;
    s.subscribe_failures = subscribe_failures;
    return s;
  }
  Status set_subscribed(bool wanted) override {
    if (fail_subscribe && !wanted) {  // as CtListener: stays subscribed
      ++subscribe_failures;
      return Error{"leave conntrack event groups: fake failure"};
    }
    subscribed = wanted;
    return ok_status();
  }
  // Events reach the handler only while subscribed, as from the kernel.
  void emit(const FlowTuple& f) {
    table.push_back(f);
    if (subscribed) handler(f, false);
  }
  bool subscribed = true;
  bool fail_subscribe = false;
  std::uint64_t subscribe_failures = 0;
  std::vector<FlowTuple> table;  // what a dump would return
  FlowHandler handler;
  int resyncs = 0;
};

class FakeAddressWatcher : public AddressWatcher {
 public:
  void watch(const std::string& id, const std::string&, AddressCallback cb) override {
    cbs[id] = cb;
    if (auto it = addrs.find(id); it != addrs.end()) cb({it->second, ports[id]});
  }
  void unwatch(const std::string& id) override { cbs.erase(id); }
  void set(const std::string& id, std::vector<IpAddr> a, std::map<IpAddr, std::uint32_t> p = {}) {
    addrs[id] = a;
    ports[id] = p;
    if (auto it = cbs.find(id); it != cbs.end()) it->second({a, p});
  }
  std::map<std::string, std::map<IpAddr, std::uint32_t>> ports;
  std::map<std::string, std::vector<IpAddr>> addrs;
  std::map<std::string, AddressCallback> cbs;
};

class FakeWriter : public RulesetWriter {
 public:
  Result<ApplyReport> apply(const topology::RulesetModel& m) override {
    if (fail > 0) {
      --fail;
      return Error{"refused by the fake kernel"};
    }
    models.push_back(m);
    if (on_commit) on_commit();
    return ApplyReport{};
  }
  Result<ApplyReport> apply_patch(const topology::RulesetModel& m, const std::vector<IpAddr>& addrs,
                                  const std::vector<topology::AllowKey>& keys) override {
    ++patches;
    return RulesetWriter::apply_patch(m, addrs, keys);
  }
  void invalidate() override { ++invalidated; }
  Result<bool> changed_since_commit() override { return generation_moved; }
  Result<bool> intact(const topology::RulesetModel&) override {
    ++read_backs;
    return kernel_intact;
  }
  void acknowledge() override {
    generation_moved = false;
    ++acknowledged;
  }
  int fail = 0;  // refuse this many transactions
  std::function<void()> on_commit;  // runs right after a transaction is in (what happens meanwhile)
  int patches = 0, invalidated = 0;
  bool generation_moved = false;  // someone committed a transaction since our last one
  bool kernel_intact = true;      // our tables still hold what was applied
  int read_backs = 0, acknowledged = 0;
  Status remove() override { return ok_status(); }
  Result<std::vector<AllowUse>> allow_use() override { return use; }
  std::vector<AllowUse> use;  // what allow_use() reads
  WriterStats stats() const override { return {}; }
  const topology::RulesetModel& last() const { return models.back(); }
  std::vector<topology::RulesetModel> models;
};

class FakeWatch : public RulesetWatch {
 public:
  Status start(std::function<void(const std::string&)> cb) override {
    on_change = std::move(cb);
    return ok_status();
  }
  void stop() override {}
  std::uint64_t losses() const override { return lost; }
  std::function<void(const std::string&)> on_change;
  std::uint64_t lost = 0;
};

class FakeCluster : public ClusterStore {
 public:
  void start(ClusterHandler h) override { handler = std::move(h); }
  void stop() override {}
  void publish(const ClusterEndpoint& e) override { published[e.id] = e; }
  void withdraw(const std::string& id) override {
    published.erase(id);
    withdrawn.push_back(id);
  }
  bool decide(const ClusterDecision& d) override {
    decisions.push_back(d);
    return true;
  }
  ClusterStats stats() const override { return {}; }
  void upsert(const std::string& node, const std::string& id, const std::string& workload, const char* addr) {
    handler(ClusterEvent{ClusterEvent::Kind::upsert, {node, id, workload, id, {*IpAddr::parse(addr)}}});
  }
  void decision(const ClusterDecision& d) {
    ClusterEvent ev;
    ev.kind = ClusterEvent::Kind::decision;
    ev.decision = d;
    handler(ev);
  }
  void remove(const std::string& node, const std::string& id) {
    handler(ClusterEvent{ClusterEvent::Kind::remove, {node, id, "", "", {}}});
  }
  ClusterHandler handler;
  std::map<std::string, ClusterEndpoint> published;
  std::vector<std::string> withdrawn;
  std::vector<ClusterDecision> decisions;
};

// Packets the ruleset would have logged (NFLOG in the agent).
class FakeAlertSource : public AlertSource {
 public:
  Status start(AlertHandler h) override {
    handler = std::move(h);
    return ok_status();
  }
  void stop() override {}
  AlertSourceStats stats() const override { return {}; }
  void log(const FlowTuple& f, TimePoint when = Clock::now(), bool dropped = true) {
    LoggedPacket p;
    p.flow = f;
    p.dropped = dropped;
    p.when = when;
    handler(p);
  }
  AlertHandler handler;
};

// Records what reaches the alert sinks.
class FakeSink : public alerts::Sink {
 public:
  explicit FakeSink(std::vector<topology::Alert>* out) : out_(out) {}
  void send(const topology::Alert& a) override { out_->push_back(a); }

 private:
  std::vector<topology::Alert>* out_;
};

// Test data builders shared by the agent tests.
inline IpAddr ip(const char* s) { return *IpAddr::parse(s); }

inline EndpointInfo container(std::string id, std::string app, std::vector<const char*> addrs) {
  EndpointInfo e;
  e.id = id;
  e.name = id;
  e.image = "busybox";
  e.labels["app"] = app;
  e.netns_path = "/proc/1/ns/net";
  for (auto* a : addrs) e.addresses.push_back(ip(a));
  return e;
}

inline FlowTuple tcp(const char* s, const char* d, std::uint16_t port) {
  FlowTuple f;
  f.src = ip(s);
  f.dst = ip(d);
  f.sport = 45000;
  f.dport = port;
  return f;
}

inline std::vector<unsigned char> read_hex(const std::string& path) {
  std::ifstream in(path);
  std::string hex;
  in >> hex;
  std::vector<unsigned char> out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<unsigned char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

}  // namespace topowall::fakes
