#include "cluster/etcd_codec.hpp"

#include <charconv>
#include <cstring>

#include "topowall/topology/identity.hpp"
#include "topowall/topology/json_limits.hpp"
#include "topowall/topology/schema.hpp"

namespace topowall::cluster {

using nlohmann::json;

namespace {
const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

std::string base64_encode(const std::string& in) {
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) out += kAlphabet[(acc >> (bits -= 6)) & 0x3f];
  }
  if (bits > 0) out += kAlphabet[(acc << (6 - bits)) & 0x3f];
  while (out.size() % 4) out += '=';
  return out;
}

std::string base64_decode(const std::string& in) {
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const char* p = c ? std::strchr(kAlphabet, c) : nullptr;
    if (!p) continue;  // padding (or junk) carries no bits
    acc = (acc << 6) | static_cast<std::uint32_t>(p - kAlphabet);
    bits += 6;
    if (bits >= 8) out += static_cast<char>((acc >> (bits -= 8)) & 0xff);
  }
  return out;
}

long long etcd_int(const nlohmann::json& v) {
  if (v.is_number_integer()) return v.get<long long>();
  if (!v.is_string()) return 0;
  const auto& t = v.get_ref<const std::string&>();
  long long n = 0;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), n);
  return ec == std::errc() && end == t.data() + t.size() ? n : 0;
}

std::string prefix_end(std::string prefix) {
  while (!prefix.empty() && static_cast<unsigned char>(prefix.back()) == 0xff) prefix.pop_back();
  if (prefix.empty()) return std::string(1, '\0');
  prefix.back() = static_cast<char>(prefix.back() + 1);
  return prefix;
}

std::string encode_endpoint(const ClusterEndpoint& e) {
  json addrs = json::array();
  for (const auto& a : e.addresses) addrs.push_back(a.to_string());
  return json{{"node", e.node}, {"id", e.id}, {"workload", e.workload}, {"name", e.name}, {"addresses", addrs}}.dump();
}

Result<ClusterEndpoint> decode_endpoint(const std::string& value) try {
  // Any node (or anyone with etcd access) writes these, and every agent reads them at start.
  auto parsed = topology::parse_json(value);
  if (!parsed) return parsed.error();
  const auto& j = *parsed;
  if (!j.is_object()) return Error{"not a JSON object"};
  ClusterEndpoint e;
  e.node = j.value("node", "");
  e.id = j.value("id", "");
  e.workload = j.value("workload", "");
  e.name = j.value("name", "");
  // Names reach the ruleset and alerts: the same rule as every other name.
  if (e.node.empty() || e.id.empty() || !topology::is_valid_name(e.workload))
    return Error{"missing node or id, or workload name '" + e.workload + "' is not valid"};
  if (topology::is_reserved_name(e.workload))
    return Error{"workload name '" + e.workload + "' is reserved (agents never announce it)"};
  if (!j.contains("addresses") || !j["addresses"].is_array()) return Error{"no address list"};
  for (const auto& a : j["addresses"]) {
    auto ip = a.is_string() ? IpAddr::parse(a.get<std::string>()) : std::nullopt;
    if (!ip) return Error{"address " + a.dump() + " is not an IP address"};
    e.addresses.push_back(*ip);
  }
  return e;
} catch (const std::exception& ex) {  // a field of the wrong type: another writer's value, never fatal here
  return Error{std::string("malformed: ") + ex.what()};
}

std::string encode_decision(const ClusterDecision& d) {
  return json{{"src", d.src},         {"dst", d.dst},     {"proto", std::string(to_string(d.proto))}, {"port", d.port},
              {"state", d.state},     {"until", d.until}, {"comment", d.comment},        {"node", d.node}}
      .dump();
}

Result<ClusterDecision> decode_decision(const std::string& value) try {
  auto parsed = topology::parse_json(value);
  if (!parsed) return parsed.error();
  const auto& j = *parsed;
  if (!j.is_object()) return Error{"not a JSON object"};
  ClusterDecision d;
  d.src = j.value("src", "");
  d.dst = j.value("dst", "");
  auto proto = parse_proto(j.value("proto", ""));
  auto port = j.value("port", -1);
  d.state = j.value("state", "");
  d.until = j.value("until", "");
  d.comment = j.value("comment", "");
  d.node = j.value("node", "");
  if (!topology::is_valid_name(d.src) || !topology::is_valid_name(d.dst)) return Error{"invalid workload names"};
  if (!proto || port < 0 || port > 65535) return Error{"invalid protocol or port"};
  if (d.state != "approved" && d.state != "denied" && d.state != "removed") return Error{"unknown state '" + d.state + "'"};
  if (!d.until.empty() && !topology::parse_time(d.until)) return Error{"until '" + d.until + "' is not RFC 3339"};
  if (d.comment.size() > 1024) return Error{"comment longer than 1024 bytes"};
  d.proto = *proto;
  d.port = static_cast<std::uint16_t>(port);
  return d;
} catch (const std::exception& ex) {
  return Error{std::string("malformed: ") + ex.what()};
}


std::string encode_ranges(const std::string& node, const std::vector<Cidr>& ranges) {
  json rs = json::array();
  for (const auto& r : ranges) rs.push_back(r.to_string());
  return json{{"node", node}, {"ranges", rs}}.dump();
}

Result<NodeAnnouncement> decode_ranges(const std::string& value) try {
  auto parsed = topology::parse_json(value);
  if (!parsed) return parsed.error();
  const auto& j = *parsed;
  if (!j.is_object()) return Error{"not a JSON object"};
  NodeAnnouncement a;
  a.node = j.value("node", "");
  if (!topology::is_plain_name(a.node)) return Error{"node name '" + a.node + "' is not valid"};
  if (!j.contains("ranges") || !j["ranges"].is_array()) return Error{"no range list"};
  for (const auto& r : j["ranges"]) {
    auto c = r.is_string() ? Cidr::parse(r.get<std::string>()) : std::nullopt;
    if (!c) return Error{"range " + r.dump() + " is not a CIDR"};
    a.ranges.push_back(*c);
  }
  return a;
} catch (const std::exception& ex) {
  return Error{std::string("malformed: ") + ex.what()};
}

}  // namespace topowall::cluster
