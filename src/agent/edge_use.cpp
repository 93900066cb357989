#include "agent/edge_use.hpp"

namespace topowall::agent {

Status EdgeUse::read(RulesetWriter& writer, const topology::RulesetModel& model, const topology::ModeTable& modes,
                     const topology::EndpointTable& endpoints, FlowHistory& history) {
  auto use = writer.allow_use();
  if (!use) return use.error();
  std::map<topology::AllowKey, std::uint64_t> now;
  for (const auto& u : *use) {
    now[u.key] = u.packets;
    if (!primed_) continue;
    auto it = last_.find(u.key);
    // A counter below the last read: the element was removed and added again (or the table replaced).
    const std::uint64_t moved = it == last_.end() || u.packets < it->second ? u.packets : u.packets - it->second;
    if (!moved) continue;
    auto s = model.names.find(u.key.src), d = model.names.find(u.key.dst);
    if (s == model.names.end() || d == model.names.end()) continue;  // an id given back since: not ours to name
    if (modes.effective(s->second, endpoints.is_workload(s->second), d->second, endpoints.is_workload(d->second)) ==
        Mode::learn)
      continue;  // its connections send events, which count it
    history.on_used({s->second, d->second, static_cast<Proto>(u.key.proto), u.key.port}, moved);
  }
  last_ = std::move(now);
  primed_ = true;
  return ok_status();
}

}  // namespace topowall::agent
