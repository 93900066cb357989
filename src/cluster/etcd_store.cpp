#include "cluster/etcd_codec.hpp"
#include "cluster/etcd_store.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <limits>

#include "common/http_post.hpp"
#include "common/http_stream.hpp"
#include "topowall/topology/identity.hpp"
#include "topowall/topology/json_limits.hpp"

namespace topowall::cluster {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using nlohmann::json;

namespace {
// Tokens expire (etcd's simple tokens after 5 idle minutes, JWTs after their TTL): take a new one first.
constexpr auto kTokenRefresh = std::chrono::seconds(240);
// etcd's answers when the token is no longer good ("invalid auth token", "revision of auth store is old").
bool token_refused(const Error& e) {
  return e.message.find("auth token") != std::string::npos || e.message.find("auth store") != std::string::npos;
}


// One watch message (a line of the stream) at most: etcd's are far smaller (values are at most 1.5 MiB);
// a stream that never ends its line must not grow the buffer without bound.
constexpr std::size_t kMaxWatchLine = 64 << 20;
// Keys per page of the full read: about 250 kB of JSON each.
constexpr int kRangePage = 1000;
}  // namespace

// The long-lived watch: one POST whose chunked response streams one JSON object per line.
struct EtcdStore::Watch {
  Watch(asio::io_context& io, const std::shared_ptr<asio::ssl::context>& tls) : stream(io, tls) {}
  HttpStream stream;
  http::request<http::string_body> req;
  http::response_parser<http::string_body> parser;
  beast::flat_buffer buf;
  std::string lines;
  std::function<std::size_t(std::uint64_t, beast::string_view, beast::error_code&)> on_chunk;
};

// Reads the stream until it ends; each piece goes through the parser's chunk callback.
void EtcdStore::read_watch(const std::shared_ptr<Watch>& w, Lost lost) {
  w->stream.async_read_some(w->buf, w->parser, [w, lost](beast::error_code ec, std::size_t) {
    if (ec) return lost(ec.message());
    if (w->parser.is_done()) return lost("etcd closed it");
    read_watch(w, lost);
  });
}

EtcdStore::EtcdStore(asio::io_context& io, EtcdOptions opts) : io_(io), opts_(std::move(opts)), retry_(io), renew_(io) {
  target_.url = parse_http_url(opts_.url, "2379").value_or(HttpUrl{});
  if (target_.url.tls) {
    auto ctx = make_tls_context(opts_.tls);
    if (ctx) target_.tls = *ctx;
    else tls_error_ = ctx.error().message;
  }
  for (auto [cred, out] : {std::pair{&opts_.auth, &password_}, std::pair{&opts_.decisions, &decisions_password_}}) {
    if (cred->empty()) continue;
    auto p = read_password(cred->password_file);
    if (p) *out = *p;
    else password_error_ = p.error().message;
  }
}

EtcdStore::~EtcdStore() {
  stop();
  *alive_ = false;
}

Status EtcdStore::validate() const {
  if (target_.url.host.empty())
    return Error{"--cluster-etcd '" + opts_.url + "' must be http://host:port or https://host:port of an etcd member"};
  if (!tls_error_.empty()) return Error{"--cluster-etcd TLS: " + tls_error_};
  if (!password_error_.empty()) return Error{password_error_};
  if (!topology::is_plain_name(opts_.node))
    return Error{"node name '" + opts_.node + "' is not valid: letters, digits, '.', '_', '-' (set --node-name)"};
  return ok_status();
}

void EtcdStore::start(ClusterHandler handler) {
  handler_ = std::move(handler);
  stopped_ = false;
  connect();
}

void EtcdStore::stop() {
  if (stopped_) return;
  stopped_ = true;
  ++generation_;
  retry_.cancel();
  renew_.cancel();
  if (watch_) {
    watch_->stream.close();
    watch_.reset();
  }
  // Leaving on purpose: revoke the lease so the others drop this node's endpoints now, not after the TTL.
  if (lease_) request("/v3/lease/revoke", {{"ID", std::to_string(lease_)}}, [](Result<json>) {});
  lease_ = 0;
  stats_.connected = false;
}

void EtcdStore::publish(const ClusterEndpoint& e) {
  for (const auto& a : e.addresses)  // said here, once, rather than only on the other nodes
    if (!opts_.ranges.empty() &&
        std::none_of(opts_.ranges.begin(), opts_.ranges.end(), [&](const Cidr& c) { return c.contains(a); }) &&
        warned_outside_.insert({e.id, a}).second)
      spdlog::warn("cluster: endpoint {} ({}) has {}, outside this node's --cluster-range: the other nodes ignore it",
                   e.name, e.workload, a.to_string());
  auto& slot = local_[e.id];
  slot = e;
  slot.node = opts_.node;
  if (lease_) put(slot);
}

void EtcdStore::withdraw(const std::string& id) {
  if (!local_.erase(id) || !lease_) return;
  request("/v3/kv/deleterange", {{"key", base64_encode(key(id))}}, written("withdrawing endpoint " + id));
}

// What a write of this node's own keys does when etcd refuses it: a refused token means a new one and a
// full resync (which writes everything again); anything else (a role without the grant) is logged.
EtcdStore::Reply EtcdStore::written(std::string what) {
  return [this, gen = generation_, what = std::move(what)](Result<json> r) {
    if (r || gen != generation_ || stopped_) return;
    if (token_refused(r.error())) return fail(what + " failed: " + r.error().message);
    spdlog::warn("cluster: {} failed: {} (check this node's etcd role: deploy/etcd-rbac.sh)", what, r.error().message);
  };
}

bool EtcdStore::decide(const ClusterDecision& d) {
  if (!password_.empty() && opts_.decisions.empty()) {
    // Under RBAC a node's role may only read decisions: the operator writes them (topowall ... --etcd).
    ++stats_.decisions_local;
    if (!std::exchange(told_decisions_local_, true))
      spdlog::info("cluster: decisions made here apply on this node only: write them for the cluster with "
                   "`topowall flows approve|deny` or `edges remove` and --etcd-user, or give the agent "
                   "--cluster-decisions-user");
    return false;
  }
  auto mine = d;
  mine.node = opts_.node;
  if (lease_) write_decision(mine);
  else unsent_.push_back(mine);  // written once connected
  return true;
}

// With a decisions credential, each decision takes a fresh token (they are rare, and a token kept for
// them would have expired).
void EtcdStore::write_decision(const ClusterDecision& d) {
  if (opts_.decisions.empty()) return put_decision(d);
  request("/v3/auth/authenticate", {{"name", opts_.decisions.user}, {"password", decisions_password_}},
          [this, d](Result<json> r) {
            if (!r) return spdlog::warn("cluster: the decision on {} -> {} was not shared: authenticating as '{}': {}",
                                        d.src, d.dst, opts_.decisions.user, r.error().message);
            decisions_token_ = r->value("token", "");
            put_decision(d);
          },
          As::nobody);
}

void EtcdStore::put_decision(const ClusterDecision& d) {
  ++stats_.publishes;
  request("/v3/kv/put", {{"key", base64_encode(decision_key(opts_.root, d))}, {"value", base64_encode(encode_decision(d))}},
          [d](Result<json> r) {
            if (!r)
              spdlog::warn("cluster: the decision on {} -> {} was not shared (it applies on this node only): {}", d.src,
                           d.dst, r.error().message);
          },
          opts_.decisions.empty() ? As::node : As::decisions);
}

void EtcdStore::put(const ClusterEndpoint& e) {
  ++stats_.publishes;
  request("/v3/kv/put",
          {{"key", base64_encode(key(e.id))}, {"value", base64_encode(encode_endpoint(e))}, {"lease", std::to_string(lease_)}},
          written("writing endpoint " + e.id));
}

void EtcdStore::put_ranges() {
  if (opts_.ranges.empty()) return;
  request("/v3/kv/put",
          {{"key", base64_encode(ranges_key())},
           {"value", base64_encode(encode_ranges(opts_.node, opts_.ranges))},
           {"lease", std::to_string(lease_)}},
          written("announcing this node's ranges"));
}

// --- requests: one at a time, in order ----------------------------------------

void EtcdStore::request(std::string path, json body, Reply done, As as) {
  queue_.push_back({std::move(path), std::move(body), std::move(done), as});
  if (!busy_) pump();
}

void EtcdStore::pump() {
  if (queue_.empty()) {
    busy_ = false;
    return;
  }
  busy_ = true;
  auto& p = queue_.front();
  const auto& token = p.as == As::node ? token_ : p.as == As::decisions ? decisions_token_ : std::string();
  etcd_call(io_, target_, p.path, p.body, token, [this, alive = alive_](Result<json> out) {
    if (!*alive) return;
    auto cb = std::move(queue_.front().done);
    queue_.pop_front();
    if (!out) ++stats_.errors;
    try {
      cb(std::move(out));
    } catch (const std::exception& e) {  // never out of a loop callback
      ++stats_.errors;
      spdlog::error("cluster: handling an etcd reply failed: {}", e.what());
    }
    pump();
  });
}

// --- connection life: token, lease, full read, watch, keepalive ------------------

void EtcdStore::fail(const std::string& what) {
  if (stopped_) return;
  // At most one line per backoff step (10 s at most) while etcd stays away.
  spdlog::warn("cluster: {}; remote endpoints stay as last known; retrying in {} ms", what, backoff_.count());
  stats_.connected = false;
  ++generation_;
  renew_.cancel();
  if (watch_) {
    watch_->stream.close();
    watch_.reset();
  }
  lease_ = 0;
  retry_.expires_after(backoff_);
  backoff_ = std::min(backoff_ * 2, std::chrono::milliseconds(10000));
  retry_.async_wait([this, alive = alive_](boost::system::error_code ec) {
    if (!ec && *alive && !stopped_) connect();
  });
}

// This node's token (under RBAC), then `then`.
void EtcdStore::authenticate(std::uint64_t gen, std::function<void()> then) {
  if (password_.empty()) return then();
  request("/v3/auth/authenticate", {{"name", opts_.auth.user}, {"password", password_}},
          [this, gen, then = std::move(then)](Result<json> r) {
            if (gen != generation_ || stopped_) return;
            if (!r) return fail("authenticating to etcd as '" + opts_.auth.user + "' failed: " + r.error().message);
            token_ = r->value("token", "");
            token_at_ = std::chrono::steady_clock::now();
            then();
          },
          As::nobody);
}

void EtcdStore::connect() { authenticate(generation_, [this] { grant(); }); }

void EtcdStore::grant() {
  const auto gen = generation_;
  request("/v3/lease/grant", {{"TTL", opts_.ttl.count()}}, [this, gen](Result<json> r) {
    if (gen != generation_ || stopped_) return;
    if (!r) return fail("etcd at " + opts_.url + " unreachable: " + r.error().message);
    lease_ = etcd_int((*r)["ID"]);
    if (!lease_) return fail("etcd granted no lease");
    read_all(gen, opts_.root, 0, std::make_shared<json>());
  });
}

// The full read, a page at a time, every page at the first one's revision (one consistent snapshot): a
// cluster's whole prefix in one answer (25 MB for 100k endpoints) is more than an HTTP reply may hold
// (8 MiB) and than one request's timeout allows.
void EtcdStore::read_all(std::uint64_t gen, const std::string& from, long long revision, std::shared_ptr<json> acc) {
  json body{{"key", base64_encode(from)}, {"range_end", base64_encode(prefix_end(opts_.root))}, {"limit", kRangePage}};
  if (revision) body["revision"] = std::to_string(revision);
  request("/v3/kv/range", std::move(body), [this, gen, revision, acc](Result<json> r) {
    if (gen != generation_ || stopped_) return;
    if (!r) return fail("reading the cluster's endpoints failed: " + r.error().message);
    auto page = r->contains("kvs") && (*r)["kvs"].is_array() ? std::move((*r)["kvs"]) : json::array();
    const bool more = r->value("more", false) && !page.empty();
    std::string next;
    if (more) next = base64_decode(page.back().value("key", "")) + std::string(1, '\0');  // just after the last
    if (acc->is_null()) {
      *acc = std::move(*r);  // the first page's header: the snapshot's revision, where the watch starts
      (*acc)["kvs"] = json::array();
    }
    auto& kvs = (*acc)["kvs"];
    for (auto& kv : page) kvs.push_back(std::move(kv));
    if (!more) return on_range(*acc);
    long long rev = revision;
    if (auto h = acc->find("header"); !rev && h != acc->end() && h->is_object()) rev = etcd_int(h->value("revision", json(0)));
    read_all(gen, next, rev, acc);
  });
}

void EtcdStore::start_watch(long long revision) {
  auto w = std::make_shared<Watch>(io_, target_.tls);
  watch_ = w;
  const auto gen = generation_;
  w->req = {http::verb::post, "/v3/watch", 11};
  w->req.set(http::field::host, target_.url.host);
  w->req.set(http::field::content_type, "application/json");
  if (!token_.empty()) w->req.set(http::field::authorization, token_);
  w->req.body() = json{{"create_request",
                        {{"key", base64_encode(opts_.root)},
                         {"range_end", base64_encode(prefix_end(opts_.root))},
                         {"start_revision", std::to_string(revision)}}}}
                      .dump();
  w->req.prepare_payload();
  w->parser.body_limit(boost::none);  // an endless stream
  Watch* wp = w.get();  // the parser that calls this belongs to *wp: no ownership cycle
  w->on_chunk = [this, wp, gen, alive = alive_](std::uint64_t, beast::string_view body,
                                                beast::error_code& ec) -> std::size_t {
    if (!*alive || gen != generation_) return body.size();
    auto* w = wp;
    w->lines.append(body.data(), body.size());
    for (auto nl = w->lines.find('\n'); nl != std::string::npos; nl = w->lines.find('\n')) {
      auto m = topology::parse_json(std::string_view(w->lines).substr(0, nl));
      w->lines.erase(0, nl + 1);
      try {
        if (m && m->is_object()) on_watch_message(*m);
      } catch (const std::exception& e) {  // never out of the parser's callback: count it, keep watching
        ++stats_.errors;
        spdlog::warn("cluster: a watch message could not be read: {}", e.what());
      }
    }
    if (w->lines.size() > kMaxWatchLine) {  // ends the read: the watch is lost, and reconnects
      w->lines.clear();
      ec = http::error::body_limit;
    }
    return body.size();
  };
  w->parser.on_chunk_body(w->on_chunk);
  Lost lost = [this, gen, alive = alive_](const std::string& why) {
    if (*alive && gen == generation_) fail("the watch on etcd ended: " + why);
  };
  w->stream.tcp().expires_after(std::chrono::seconds(5));  // connect and handshake
  w->stream.connect(target_.url.host, target_.url.port, [w, lost](Status st) {
    if (!st) return lost(st.error().message);
    w->stream.tcp().expires_never();  // then an endless stream: liveness is the keepalive's job
    w->stream.async_write(w->req, [w, lost](beast::error_code ec, std::size_t) {
      if (ec) return lost(ec.message());
      read_watch(w, lost);
    });
  });
}

void EtcdStore::keepalive() {
  const auto gen = generation_;
  renew_.expires_after(opts_.ttl / 3);
  renew_.async_wait([this, gen, alive = alive_](boost::system::error_code ec) {
    if (ec || !*alive || gen != generation_) return;
    auto renew = [this, gen] {
      request("/v3/lease/keepalive", {{"ID", std::to_string(lease_)}}, [this, gen](Result<json> r) {
        if (gen != generation_ || stopped_) return;
        if (!r) return fail("renewing the lease failed: " + r.error().message);
        const auto& res = r->contains("result") ? (*r)["result"] : *r;
        if (etcd_int(res.value("TTL", json("0"))) <= 0) return fail("the lease expired (etcd was out of reach too long)");
        keepalive();
      });
    };
    if (!password_.empty() && std::chrono::steady_clock::now() - token_at_ > kTokenRefresh) authenticate(gen, renew);
    else renew();
  });
}

}  // namespace topowall::cluster
