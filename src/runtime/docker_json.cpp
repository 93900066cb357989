#include "runtime/docker_json.hpp"

#include <algorithm>

namespace topowall::runtime {

using nlohmann::json;

namespace {
const json* at(const json& j, std::initializer_list<const char*> path) {
  const json* cur = &j;
  for (auto* k : path) {
    if (!cur->is_object()) return nullptr;
    auto it = cur->find(k);
    if (it == cur->end() || it->is_null()) return nullptr;
    cur = &*it;
  }
  return cur;
}

std::string str(const json& j, std::initializer_list<const char*> path) {
  auto* v = at(j, path);
  return v && v->is_string() ? v->get<std::string>() : std::string();
}

void add_addr(EndpointInfo& ep, const std::string& text) {
  if (text.empty()) return;
  auto ip = IpAddr::parse(text);
  if (ip && std::find(ep.addresses.begin(), ep.addresses.end(), *ip) == ep.addresses.end())
    ep.addresses.push_back(*ip);
}
}  // namespace

bool is_running(const json& inspect) {
  auto* running = at(inspect, {"State", "Running"});
  return running && running->is_boolean() && running->get<bool>();
}

bool is_initialised(const json& inspect) {
  auto* pid = at(inspect, {"State", "Pid"});
  return pid && pid->is_number_integer() && pid->get<long long>() > 0;
}

bool shares_host_network(const json& inspect) { return str(inspect, {"HostConfig", "NetworkMode"}) == "host"; }

Result<EndpointInfo> parse_inspect(const json& j) {
  EndpointInfo ep;
  ep.kind = EndpointKind::container;
  ep.id = str(j, {"Id"});
  if (ep.id.empty()) return Error{"container inspect: missing Id"};
  // Every runtime we support sends both; without them the record is not one we understand.
  for (const char* field : {"State", "NetworkSettings"})
    if (auto* v = at(j, {field}); !v || !v->is_object())
      return Error{"container " + ep.id + " inspect: " + field + " missing or not an object"};
  if (shares_host_network(j)) return Error{"container " + ep.id + " shares the node's network namespace"};
  ep.name = str(j, {"Name"});
  if (!ep.name.empty() && ep.name[0] == '/') ep.name.erase(0, 1);
  ep.image = str(j, {"Config", "Image"});
  if (auto* labels = at(j, {"Config", "Labels"}); labels && labels->is_object())
    for (auto it = labels->begin(); it != labels->end(); ++it)
      if (it->is_string()) ep.labels[it.key()] = it->get<std::string>();
  if (auto* pid = at(j, {"State", "Pid"}); pid && pid->is_number_integer()) ep.pid = pid->get<int>();
  ep.netns_path = str(j, {"NetworkSettings", "SandboxKey"});
  if (ep.netns_path.empty() && ep.pid > 0) ep.netns_path = "/proc/" + std::to_string(ep.pid) + "/ns/net";
  add_addr(ep, str(j, {"NetworkSettings", "IPAddress"}));
  add_addr(ep, str(j, {"NetworkSettings", "GlobalIPv6Address"}));
  if (auto* nets = at(j, {"NetworkSettings", "Networks"}); nets && nets->is_object())
    for (const auto& n : *nets) {
      add_addr(ep, str(n, {"IPAddress"}));
      add_addr(ep, str(n, {"GlobalIPv6Address"}));
    }
  return ep;
}

std::optional<ContainerEvent> parse_event(const json& j) {
  auto type = str(j, {"Type"});
  if (!type.empty() && type != "container") return std::nullopt;
  ContainerEvent ev;
  ev.id = str(j, {"Actor", "ID"});
  if (ev.id.empty()) ev.id = str(j, {"id"});
  if (!is_valid_container_id(ev.id)) return std::nullopt;
  auto action = str(j, {"Action"});
  if (action.empty()) action = str(j, {"status"});
  if (action == "init") ev.action = ContainerEvent::Action::init;
  else if (action == "start" || action == "restart" || action == "unpause") ev.action = ContainerEvent::Action::start;
  else if (action == "die" || action == "stop" || action == "destroy" || action == "remove" ||
           action == "cleanup")
    ev.action = ContainerEvent::Action::stop;
  return ev;
}

std::set<std::string> container_ids(const json& list) {
  std::set<std::string> out;
  if (!list.is_array()) return out;
  for (const auto& c : list)
    if (auto id = str(c, {"Id"}); is_valid_container_id(id)) out.insert(std::move(id));
  return out;
}

bool is_valid_container_id(const std::string& id) {
  return !id.empty() && id.size() <= 128 && std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == '-';
  });
}

}  // namespace topowall::runtime
