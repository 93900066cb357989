#include "topowall/topology/alerts.hpp"

#include <fmt/format.h>

#include "topowall/topology/schema.hpp"

namespace topowall::topology {

namespace {
std::string why(const Alert& a) {
  if (a.reason == "ctmark_taken") return " (its conntrack mark was already set by another component)";
  if (a.reason == "spoofed") return fmt::format(" (spoofed source: {} sent as {})", a.edge.src, a.as);
  if (a.reason == "unclassified") return " (from a container interface not classified yet)";
  if (a.held) return fmt::format(" ({}: {} reached too many new edges while learning; its new edges wait for review)",
                                 a.reason, a.edge.src);
  return "";
}
}  // namespace

nlohmann::json alert_to_json(const Alert& a) {
  auto j = alert_json_base(a);
  if (!a.as.empty()) j["as"] = a.as;
  return j;
}

nlohmann::json alert_json_base(const Alert& a) {
  return {{"time", format_time(a.time)},
          {"src", a.edge.src},
          {"dst", a.edge.dst},
          {"src_addr", a.src_addr},
          {"dst_addr", a.dst_addr},
          {"proto", a.arp ? std::string_view("arp") : to_string(a.edge.proto)},
          {"port", a.edge.port},
          {"verdict", a.held ? "held" : a.blocked ? "blocked" : "would-block"},
          {"reason", a.reason},
          {"count", a.count},
          {"summary", a.summary}};
}

std::string alert_text(const Alert& a) {
  return fmt::format("{} {} ({}) -> {} ({}) {}/{}{}{}", a.held ? "HELD" : a.blocked ? "BLOCKED" : "WOULD-BLOCK", a.edge.src, a.src_addr,
                     a.edge.dst, a.dst_addr, a.arp ? std::string_view("arp") : to_string(a.edge.proto), a.edge.port,
                     why(a),
                     a.summary ? fmt::format(" repeated {} times", a.count) : "");
}

std::optional<Alert> AlertAggregator::on_packet(const Alert& a) {
  auto key = std::make_tuple(a.edge, a.blocked, a.reason);
  auto it = open_.find(key);
  if (it != open_.end() && a.time - it->second.opened < window_) {
    ++it->second.repeats;
    it->second.last = a;
    ++suppressed_;
    return std::nullopt;
  }
  open_[key] = Slot{a, a.time, 0};
  return a;
}

std::vector<Alert> AlertAggregator::flush(TimePoint now) {
  std::vector<Alert> out;
  for (auto it = open_.begin(); it != open_.end();) {
    if (now - it->second.opened < window_) {
      ++it;
      continue;
    }
    if (it->second.repeats) {
      Alert s = it->second.last;
      s.count = it->second.repeats;
      s.summary = true;
      s.time = now;
      out.push_back(s);
    }
    it = open_.erase(it);
  }
  return out;
}

}  // namespace topowall::topology
