// A whole agent on fakes for the fuzz targets whose input reaches it (control requests, the state file,
// cluster values): fresh for every input, so a crash replays from its input alone.
#pragma once

#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <memory>
#include <optional>

#include "agent/agent.hpp"
#include "fakes.hpp"

namespace topowall::fuzz {

struct AgentRig {
  // `state`: what the state file held (already parsed, as FileStateStore::load hands it over).
  explicit AgentRig(std::optional<nlohmann::json> state = std::nullopt) {
    spdlog::set_level(spdlog::level::off);  // the log costs more than the work
    auto rt = std::make_unique<fakes::FakeDiscovery>();
    rt->initial = {fakes::container("w1", "web", {"10.0.0.2"}), fakes::container("w2", "web", {"10.0.0.3", "fd00::3"}),
                   fakes::container("a1", "api", {"10.0.0.4", "fd00::4"})};
    auto fl = std::make_unique<fakes::FakeFlowSource>();
    flows = fl.get();
    auto st = std::make_unique<store::MemoryStateStore>();
    st->doc = std::move(state);
    auto cl = std::make_unique<fakes::FakeCluster>();
    cluster = cl.get();
    ad.runtime = std::move(rt);
    ad.flows = std::move(fl);
    ad.store = std::move(st);
    ad.addresses = std::make_unique<fakes::FakeAddressWatcher>();
    ad.writer = std::make_unique<fakes::FakeWriter>();
    ad.cluster = std::move(cl);
    agent::AgentConfig cfg;
    cfg.bridge_sysctl_dir = "/nonexistent";  // never the host's
    agent = std::make_unique<agent::Agent>(io, cfg, std::move(ad));
  }
  // Started, with a learned edge and two pending flows for requests to act on.
  bool start_with_flows() {
    if (!agent->start()) return false;
    flows->emit(fakes::tcp("10.0.0.2", "10.0.0.4", 8080));
    flows->emit(fakes::tcp("10.0.0.4", "10.0.0.3", 5432));
    flows->emit(fakes::tcp("10.0.0.3", "10.0.0.9", 443));
    return true;
  }

  boost::asio::io_context io;
  agent::Adapters ad;
  fakes::FakeFlowSource* flows = nullptr;
  fakes::FakeCluster* cluster = nullptr;
  std::unique_ptr<agent::Agent> agent;  // owns the fakes; gone before `io`
};

}  // namespace topowall::fuzz
