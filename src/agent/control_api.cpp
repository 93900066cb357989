#include "agent/control_api.hpp"

#include <stdexcept>

namespace topowall::agent {

using nlohmann::json;

json ok(json result) { return json{{"v", control::kProtocolVersion}, {"ok", true}, {"result", std::move(result)}}; }

void ControlApi::add(std::string_view name, Handler h) {
  add_with_fd(name, [h = std::move(h)](const json& params, int) { return h(params); });
}

void ControlApi::add_with_fd(std::string_view name, FdHandler h) {
  const auto* m = control::find_method(name);
  if (!m || m->streams) throw std::logic_error("no such request/answer control method: " + std::string(name));
  handlers_.insert_or_assign(std::string(name), std::move(h));
}

void ControlApi::add_stream(std::string_view name, StreamHandler h) {
  const auto* m = control::find_method(name);
  if (!m || !m->streams) throw std::logic_error("no such streaming control method: " + std::string(name));
  streams_.insert_or_assign(std::string(name), std::move(h));
}

std::vector<std::string_view> ControlApi::missing() const {
  std::vector<std::string_view> out;
  for (const auto& m : control::kMethods)
    if (!handlers_.count(m.name) && !streams_.count(m.name)) out.push_back(m.name);
  return out;
}

json ControlApi::handle(const json& req, const control::Peer& peer, const control::PushFn& push) {
  auto v = req.find("v");
  if (v != req.end() && (!v->is_number_integer() || v->get<int>() != control::kProtocolVersion))
    return control::error_response("bad_version", "protocol version " + v->dump() + " is not supported; this agent speaks v" +
                                                      std::to_string(control::kProtocolVersion));
  auto mit = req.find("method");
  if (mit == req.end() || !mit->is_string())
    return control::error_response("malformed", "request needs a string field 'method'");
  json params = req.value("params", json::object());
  if (!params.is_object()) return control::error_response("malformed", "'params' must be an object");
  const auto& name = mit->get_ref<const std::string&>();
  const auto* method = control::find_method(name);
  if (!method || (!handlers_.count(name) && !streams_.count(name)))
    return control::error_response("unknown_method", "unknown method '" + name + "'");
  if (method->needs_write && !peer.may_write)
    return control::error_response("forbidden", "changing state needs root or the control group (uid " +
                                                    std::to_string(peer.uid) + " is neither)");
  try {
    if (method->streams) {
      if (!push) return control::error_response("bad_params", name + " needs a streaming connection");
      return streams_.find(name)->second(params, push);
    }
    return handlers_.find(name)->second(params, peer.passed_fd);
  } catch (const std::exception& e) {
    ++handler_errors_;
    return control::error_response("internal", e.what());
  }
}

}  // namespace topowall::agent
