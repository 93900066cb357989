#include "topowall/topology/identity.hpp"

#include <algorithm>
#include <cctype>

namespace topowall::topology {

namespace {
bool name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
}
}  // namespace

bool is_plain_name(std::string_view n) {
  if (n.empty() || n.size() > kMaxNameLength) return false;
  if (!std::isalnum(static_cast<unsigned char>(n[0]))) return false;
  for (char c : n)
    if (!name_char(c)) return false;
  return true;
}

bool is_namespace_name(std::string_view n) {
  if (n.empty() || n.size() > kMaxNameLength || n.front() == '-' || n.back() == '-') return false;
  return std::all_of(n.begin(), n.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; });
}

bool is_valid_name(std::string_view n) {
  const auto slash = n.find('/');
  if (slash == std::string_view::npos) return is_plain_name(n);
  return is_namespace_name(n.substr(0, slash)) && is_plain_name(n.substr(slash + 1));
}

std::string_view name_namespace(std::string_view n) {
  const auto slash = n.find('/');
  return slash == std::string_view::npos ? std::string_view() : n.substr(0, slash);
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

namespace {
// The alphabet of generated name suffixes (apimachinery's rand.String: no vowels, no 0, 1, 3), so a
// pod named `nginx-proxy` keeps its `-proxy`.
constexpr std::string_view kSuffixAlphabet = "bcdfghjklmnpqrstvwxz2456789";

bool generated_suffix(std::string_view s) {
  return s.size() == 5 && s.find_first_not_of(kSuffixAlphabet) == std::string_view::npos;
}

// `web-x2k4q` -> `web`; anything else unchanged.
std::string_view without_generated_suffix(std::string_view name) {
  const auto dash = name.rfind('-');
  if (dash == std::string_view::npos || dash == 0 || !generated_suffix(name.substr(dash + 1))) return name;
  return name.substr(0, dash);
}

std::string label(const EndpointInfo& ep, const char* key) {
  auto it = ep.labels.find(key);
  return it == ep.labels.end() ? std::string() : it->second;
}

// The owner's name from the names Kubernetes' controllers give their pods; "" if none applies.
std::string_view pod_owner(const EndpointInfo& ep) {
  const std::string_view name = ep.name;
  // Deployment: <deployment>-<pod-template-hash>-<suffix>.
  if (auto hash = label(ep, "pod-template-hash"); !hash.empty()) {
    const auto base = without_generated_suffix(name);
    const auto tail = "-" + hash;
    if (base.size() > tail.size() && base.ends_with(tail)) return base.substr(0, base.size() - tail.size());
  }
  // StatefulSet: <set>-<ordinal>.
  if (!label(ep, "statefulset.kubernetes.io/pod-name").empty()) {
    const auto dash = name.rfind('-');
    const auto ordinal = dash == std::string_view::npos ? std::string_view() : name.substr(dash + 1);
    if (dash > 0 && !ordinal.empty() && ordinal.find_first_not_of("0123456789") == std::string_view::npos)
      return name.substr(0, dash);
  }
  // DaemonSet: <daemonset>-<suffix>.
  if (!label(ep, "pod-template-generation").empty() && !label(ep, "controller-revision-hash").empty()) {
    if (const auto base = without_generated_suffix(name); base.size() != name.size()) return base;
  }
  return {};
}

// Kubernetes namespaces are DNS labels; anything else did not come from the API server. It is made one,
// marked, so it can never equal the namespace it resembles.
std::string namespace_part(std::string_view ns) {
  if (is_namespace_name(ns)) return std::string(ns);
  std::string out = "invalid-";
  for (char c : ns) {
    if (out.size() == kMaxNameLength) break;
    const char l = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out.push_back((l >= 'a' && l <= 'z') || (l >= '0' && l <= '9') ? l : '-');
  }
  while (out.back() == '-') out.pop_back();
  return out;
}

// The app part of `<namespace>/<app>`: always a plain name (sanitize_name turns '/' into '-').
std::string pod_app(const EndpointInfo& ep, const IdentityConfig& cfg) {
  for (const auto& key : cfg.labels) {
    auto it = ep.labels.find(key);
    if (it != ep.labels.end())
      if (auto n = sanitize_name(it->second); !n.empty()) return n;
  }
  if (auto n = sanitize_name(pod_owner(ep)); !n.empty()) return n;
  if (auto n = sanitize_name(without_generated_suffix(ep.name)); !n.empty()) return n;
  auto n = sanitize_name(ep.id);
  return n.empty() ? "pod" : n;
}
}  // namespace

std::string pod_identity(const EndpointInfo& ep, const IdentityConfig& cfg) {
  return namespace_part(ep.pod_namespace) + "/" + pod_app(ep, cfg);
}

std::string workload_identity(const EndpointInfo& ep, const IdentityConfig& cfg) {
  // Namespaced names are never reserved: `host`, `world` and the networks have no '/'.
  if (!ep.pod_namespace.empty()) return pod_identity(ep, cfg);
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
