#include "cluster/etcd_client.hpp"

#include <fstream>
#include <optional>
#include <sstream>

#include "cluster/etcd_store.hpp"
#include "common/http_stream.hpp"
#include "topowall/topology/json_limits.hpp"

namespace topowall::cluster {

using nlohmann::json;

Result<std::string> read_password(const std::string& file) {
  std::ifstream in(file);
  if (!in) return Error{"cannot read the etcd password file '" + file + "': check the path and that it is readable by root"};
  std::stringstream ss;
  ss << in.rdbuf();
  auto s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  if (s.empty()) return Error{"the etcd password file '" + file + "' is empty"};
  return s;
}

void etcd_call(boost::asio::io_context& io, const EtcdTarget& t, const std::string& path, const json& body,
               const std::string& token, EtcdReply done) {
  http_post(io, t.url, path, body.dump(), std::chrono::seconds(5), [done = std::move(done)](Result<HttpReply> r) {
    if (!r) return done(r.error());
    auto j = topology::parse_json(r->body);
    if (r->status == 200 && j && j->is_object()) return done(std::move(*j));
    // The gateway's errors are {"error": "...", "code": N}; other bodies (a proxy's) are shown as they are.
    std::string why = j && j->is_object() && (*j).contains("error") && (*j)["error"].is_string()
                          ? (*j)["error"].get<std::string>()
                          : r->body.substr(0, 300);
    done(Error{"etcd answered " + std::to_string(r->status) + ": " + why});
  }, t.tls, token);
}

void etcd_authenticate(boost::asio::io_context& io, const EtcdTarget& t, const std::string& user,
                       const std::string& password, std::function<void(Result<std::string>)> done) {
  etcd_call(io, t, "/v3/auth/authenticate", {{"name", user}, {"password", password}}, "",
            [user, done = std::move(done)](Result<json> r) {
              if (!r) return done(Error{"authenticating to etcd as '" + user + "': " + r.error().message});
              auto tok = r->value("token", "");
              if (tok.empty()) return done(Error{"etcd gave no token for '" + user + "' (is auth enabled?)"});
              done(tok);
            });
}

namespace {
// A namespaced name (`shop/web`) has a '/', which is also the key's separator: `a/b` -> `c` and `a` ->
// `b/c` would share a key, one decision overwriting the other. '%' is in no name, so this is injective,
// and plain names (no '/') keep the keys they always had.
std::string key_part(const std::string& name) {
  std::string out;
  for (char c : name) out += c == '/' ? std::string("%2F") : std::string(1, c);
  return out;
}
}  // namespace

std::string decision_key(const std::string& root, const ClusterDecision& d) {
  return root + "decisions/" + key_part(d.src) + "/" + key_part(d.dst) + "/" + std::string(to_string(d.proto)) + "/" +
         std::to_string(d.port);
}

namespace {
// Writes decisions[i...] one after the other, stopping at the first refusal.
void put_from(boost::asio::io_context& io, const EtcdTarget& t, const std::string& token, const std::string& root,
              const std::shared_ptr<std::vector<ClusterDecision>>& ds, std::size_t i, const std::shared_ptr<std::optional<Status>>& out) {
  if (i == ds->size()) {
    *out = ok_status();
    return;
  }
  const auto& d = (*ds)[i];
  json body{{"key", base64_encode(decision_key(root, d))}, {"value", base64_encode(encode_decision(d))}};
  etcd_call(io, t, "/v3/kv/put", body, token, [&io, t, token, root, ds, i, out](Result<json> r) {
    if (!r) {
      *out = Error{"writing the decision on " + (*ds)[i].src + " -> " + (*ds)[i].dst + ": " + r.error().message};
      return;
    }
    put_from(io, t, token, root, ds, i + 1, out);
  });
}
}  // namespace

Status write_decisions(const DecisionWriter& w, const std::vector<ClusterDecision>& decisions) {
  EtcdTarget t;
  auto url = parse_http_url(w.url, "2379");
  if (!url) return Error{"etcd URL '" + w.url + "' must be http://host:port or https://host:port"};
  t.url = *url;
  if (t.url.tls) {
    auto ctx = make_tls_context(w.tls);
    if (!ctx) return Error{"etcd TLS: " + ctx.error().message};
    t.tls = *ctx;
  }
  std::string password;
  if (!w.cred.empty()) {
    auto p = read_password(w.cred.password_file);
    if (!p) return p.error();
    password = *p;
  }
  boost::asio::io_context io;
  auto out = std::make_shared<std::optional<Status>>();
  auto ds = std::make_shared<std::vector<ClusterDecision>>(decisions);
  if (w.cred.empty()) {
    put_from(io, t, "", w.root, ds, 0, out);
  } else {
    etcd_authenticate(io, t, w.cred.user, password, [&io, t, root = w.root, ds, out](Result<std::string> tok) {
      if (!tok) {
        *out = tok.error();
        return;
      }
      put_from(io, t, *tok, root, ds, 0, out);
    });
  }
  io.run_for(w.timeout * static_cast<int>(decisions.size() + 2));
  if (!*out) return Error{"etcd at " + w.url + " did not answer in time"};
  return **out;
}

}  // namespace topowall::cluster
