#include "topowall/topology/identity.hpp"

#include <algorithm>
#include <cctype>

namespace topowall::topology {

namespace {
bool name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
}
}  // namespace

bool is_valid_name(std::string_view n) {
  if (n.empty() || n.size() > kMaxNameLength) return false;
  if (!std::isalnum(static_cast<unsigned char>(n[0]))) return false;
  for (char c : n)
    if (!name_char(c)) return false;
  return true;
}

std::string sanitize_name(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (out.size() == kMaxNameLength) break;
    if (out.empty() && !std::isalnum(static_cast<unsigned char>(c))) continue;
    out.push_back(name_char(c) ? c : '-');
  }
  return out;
}

std::string image_repository_name(std::string_view image) {
  if (auto at = image.find('@'); at != std::string_view::npos) image = image.substr(0, at);
  if (auto slash = image.rfind('/'); slash != std::string_view::npos) image = image.substr(slash + 1);
  if (auto colon = image.find(':'); colon != std::string_view::npos) image = image.substr(0, colon);
  return std::string(image);
}

namespace {
std::string pick_identity(const EndpointInfo& ep, const IdentityConfig& cfg) {
  for (const auto& key : cfg.labels) {
    auto it = ep.labels.find(key);
    if (it != ep.labels.end()) {
      if (auto n = sanitize_name(it->second); !n.empty()) return n;
    }
  }
  // Image ids (sha256:...) name nothing a human would recognise.
  if (!ep.image.empty() && ep.image.rfind("sha256:", 0) != 0) {
    if (auto n = sanitize_name(image_repository_name(ep.image)); !n.empty()) return n;
  }
  auto n = sanitize_name(ep.name);
  return n.empty() ? sanitize_name(ep.id) : n;
}
}  // namespace

bool is_reserved_name(std::string_view name, const IdentityConfig& cfg) {
  return name == kHost || name == kWorld || std::find(cfg.reserved.begin(), cfg.reserved.end(), name) != cfg.reserved.end();
}

std::string workload_identity(const EndpointInfo& ep, const IdentityConfig& cfg) {
  auto n = pick_identity(ep, cfg);
  // A container or namespace must never impersonate the node, the outside world or a named network:
  // it would share that identity's id, and so its edges. Each k prefixes differently (within the
  // length limit), so one is free; the names stay valid.
  if (!is_reserved_name(n, cfg)) return n;
  auto named = [&n](const std::string& prefix) { return (prefix + n).substr(0, kMaxNameLength); };
  auto out = named("workload-");
  for (int k = 2; is_reserved_name(out, cfg); ++k) out = named("workload-" + std::to_string(k) + "-");
  return out;
}

}  // namespace topowall::topology
