#include "cluster/etcd_store.hpp"

#include <spdlog/spdlog.h>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <limits>

#include "common/http_post.hpp"
#include "common/http_stream.hpp"
#include "topowall/topology/identity.hpp"
#include "topowall/topology/json_limits.hpp"
#include "topowall/topology/schema.hpp"

namespace topowall::cluster {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using nlohmann::json;

namespace {
const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

long long as_ll(const json& v) {  // etcd's gateway writes 64-bit numbers as strings
  if (v.is_string()) return std::stoll(v.get<std::string>());
  if (v.is_number()) return v.get<long long>();
  return 0;
}

// The revision after an answer's header.revision; 0 (watch from now) when etcd left it out. A const
// json's operator[] on a missing key is undefined behaviour, hence find.
long long next_revision(const json& r) {
  auto h = r.find("header");
  if (h == r.end() || !h->is_object()) return 0;
  const auto rev = as_ll(h->value("revision", json(0)));
  return rev > 0 && rev < std::numeric_limits<long long>::max() ? rev + 1 : 0;
}

// One watch message (a line of the stream) at most: etcd's are far smaller (values are at most 1.5 MiB);
// a stream that never ends its line must not grow the buffer without bound.
constexpr std::size_t kMaxWatchLine = 64 << 20;
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

EtcdStore::EtcdStore(asio::io_context& io, EtcdOptions opts)
    : io_(io), opts_(std::move(opts)), url_(parse_http_url(opts_.url, "2379").value_or(HttpUrl{})), retry_(io), renew_(io) {
  if (url_.tls) {
    auto ctx = make_tls_context(opts_.tls);
    if (ctx) tls_ = *ctx;
    else tls_error_ = ctx.error().message;
  }
}

EtcdStore::~EtcdStore() {
  stop();
  *alive_ = false;
}

Status EtcdStore::validate() const {
  if (url_.host.empty())
    return Error{"--cluster-etcd '" + opts_.url + "' must be http://host:port or https://host:port of an etcd member"};
  if (!tls_error_.empty()) return Error{"--cluster-etcd TLS: " + tls_error_};
  if (!topology::is_valid_name(opts_.node))
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
  auto& slot = local_[e.id];
  slot = e;
  slot.node = opts_.node;
  if (lease_) put(slot);
}

void EtcdStore::withdraw(const std::string& id) {
  if (!local_.erase(id) || !lease_) return;
  request("/v3/kv/deleterange", {{"key", base64_encode(key(id))}}, [](Result<json>) {});
}

void EtcdStore::decide(const ClusterDecision& d) {
  auto mine = d;
  mine.node = opts_.node;
  if (lease_) put_decision(mine);
  else unsent_.push_back(mine);  // written once connected
}

void EtcdStore::put_decision(const ClusterDecision& d) {
  ++stats_.publishes;
  const auto k = decisions() + d.src + "/" + d.dst + "/" + std::string(to_string(d.proto)) + "/" + std::to_string(d.port);
  request("/v3/kv/put", {{"key", base64_encode(k)}, {"value", base64_encode(encode_decision(d))}}, [](Result<json>) {});
}

void EtcdStore::on_decision_kv(const std::string& key, const json& kv) {
  auto d = decode_decision(base64_decode(kv.value("value", "")));
  if (!d) {
    ++stats_.errors;
    spdlog::warn("cluster: ignoring {}: {}", key, d.error().message);
    return;
  }
  if (d->node == opts_.node) return;  // made here, applied here already
  ClusterEvent ev;
  ev.kind = ClusterEvent::Kind::decision;
  ev.decision = *d;
  handler_(ev);
}

void EtcdStore::put(const ClusterEndpoint& e) {
  ++stats_.publishes;
  request("/v3/kv/put",
          {{"key", base64_encode(key(e.id))}, {"value", base64_encode(encode_endpoint(e))}, {"lease", std::to_string(lease_)}},
          [](Result<json>) {});
}

// --- requests: one at a time, in order ----------------------------------------

void EtcdStore::request(std::string path, json body, Reply done) {
  queue_.push_back({std::move(path), std::move(body), std::move(done)});
  if (!busy_) pump();
}

void EtcdStore::pump() {
  if (queue_.empty()) {
    busy_ = false;
    return;
  }
  busy_ = true;
  auto& p = queue_.front();
  http_post(io_, url_, p.path, p.body.dump(), std::chrono::seconds(5), [this, alive = alive_](Result<HttpReply> r) {
    if (!*alive) return;
    auto cb = std::move(queue_.front().done);
    queue_.pop_front();
    auto out = [&]() -> Result<json> {
      if (!r) return r.error();
      auto j = topology::parse_json(r->body);
      if (r->status != 200 || !j || !j->is_object())
        return Error{"etcd answered " + std::to_string(r->status) + ": " + r->body};
      return std::move(*j);
    }();
    if (!out) ++stats_.errors;
    try {
      cb(std::move(out));
    } catch (const std::exception& e) {  // never out of a loop callback
      ++stats_.errors;
      spdlog::error("cluster: handling an etcd reply failed: {}", e.what());
    }
    pump();
  }, tls_);
}

// --- connection life: lease, full read, watch, keepalive ------------------------

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

void EtcdStore::connect() {
  const auto gen = generation_;
  request("/v3/lease/grant", {{"TTL", opts_.ttl.count()}}, [this, gen](Result<json> r) {
    if (gen != generation_ || stopped_) return;
    if (!r) return fail("etcd at " + opts_.url + " unreachable: " + r.error().message);
    lease_ = as_ll((*r)["ID"]);
    if (!lease_) return fail("etcd granted no lease");
    const auto end = prefix_end(opts_.root);
    request("/v3/kv/range", {{"key", base64_encode(opts_.root)}, {"range_end", base64_encode(end)}},
            [this, gen](Result<json> r) {
              if (gen != generation_ || stopped_) return;
              if (!r) return fail("reading the cluster's endpoints failed: " + r.error().message);
              on_range(*r);
            });
  });
}

std::optional<ClusterEndpoint> EtcdStore::decode_kv(const std::string& key, const json& kv) {
  auto e = decode_endpoint(base64_decode(kv.value("value", "")));
  if (e) return *e;
  ++stats_.errors;  // another node's bad write must not stop this one
  spdlog::warn("cluster: ignoring {}: {}", key, e.error().message);
  return std::nullopt;
}

void EtcdStore::on_range(const json& r) {
  const auto gen = generation_;
  const auto mine = endpoints() + opts_.node + "/";
  std::map<std::string, ClusterEndpoint> seen;
  std::vector<std::pair<std::string, json>> decided;
  for (const auto& kv : r.value("kvs", json::array())) {
    auto k = base64_decode(kv.value("key", ""));
    if (k.rfind(decisions(), 0) == 0) {
      decided.emplace_back(k, kv);
      continue;
    }
    if (k.rfind(endpoints(), 0) != 0) continue;
    if (k.rfind(mine, 0) == 0) {
      // Ours from before (a restart, or a withdraw lost while disconnected): drop what is no longer here.
      if (!local_.count(k.substr(mine.size())))
        request("/v3/kv/deleterange", {{"key", base64_encode(k)}}, [](Result<json>) {});
      continue;
    }
    if (auto e = decode_kv(k, kv)) seen[k] = *e;
  }
  for (const auto& [id, e] : local_) put(e);  // under the new lease
  if (stats_.resyncs++ > 0)                   // a re-read: what vanished meanwhile goes
    for (const auto& [k, e] : remote_)
      if (!seen.count(k)) handler_(ClusterEvent{ClusterEvent::Kind::remove, e});
  remote_ = seen;
  for (const auto& [k, e] : remote_) handler_(ClusterEvent{ClusterEvent::Kind::upsert, e});
  for (const auto& [k, kv] : decided) on_decision_kv(k, kv);  // idempotent: replayed on every (re)connect
  for (const auto& d : unsent_) put_decision(d);
  unsent_.clear();
  handler_(ClusterEvent{ClusterEvent::Kind::synced, {}, {}});
  if (gen != generation_) return;
  start_watch(next_revision(r));
  keepalive();
}

void EtcdStore::start_watch(long long revision) {
  auto w = std::make_shared<Watch>(io_, tls_);
  watch_ = w;
  const auto gen = generation_;
  w->req = {http::verb::post, "/v3/watch", 11};
  w->req.set(http::field::host, url_.host);
  w->req.set(http::field::content_type, "application/json");
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
  w->stream.connect(url_.host, url_.port, [w, lost](Status st) {
    if (!st) return lost(st.error().message);
    w->stream.tcp().expires_never();  // then an endless stream: liveness is the keepalive's job
    w->stream.async_write(w->req, [w, lost](beast::error_code ec, std::size_t) {
      if (ec) return lost(ec.message());
      read_watch(w, lost);
    });
  });
}

void EtcdStore::on_watch_message(const json& m) {
  const auto& res = m.contains("result") ? m["result"] : m;
  if (res.value("canceled", false) || res.contains("compact_revision")) {
    fail("etcd cancelled the watch (compaction)");
    return;
  }
  if (res.value("created", false)) {
    stats_.connected = true;
    backoff_ = std::chrono::milliseconds(500);
  }
  const auto mine = endpoints() + opts_.node + "/";
  for (const auto& ev : res.value("events", json::array())) {
    const auto& kv = ev.value("kv", json::object());
    auto k = base64_decode(kv.value("key", ""));
    if (k.rfind(decisions(), 0) == 0) {
      ++stats_.events;
      if (ev.value("type", "PUT") != "DELETE") on_decision_kv(k, kv);
      continue;
    }
    if (k.rfind(endpoints(), 0) != 0 || k.rfind(mine, 0) == 0) continue;
    ++stats_.events;
    if (ev.value("type", "PUT") == "DELETE") {
      if (auto it = remote_.find(k); it != remote_.end()) {
        auto gone = it->second;
        remote_.erase(it);
        handler_(ClusterEvent{ClusterEvent::Kind::remove, gone});
      }
      continue;
    }
    if (auto e = decode_kv(k, kv)) {
      remote_[k] = *e;
      handler_(ClusterEvent{ClusterEvent::Kind::upsert, *e});
    }
  }
}

void EtcdStore::keepalive() {
  const auto gen = generation_;
  renew_.expires_after(opts_.ttl / 3);
  renew_.async_wait([this, gen, alive = alive_](boost::system::error_code ec) {
    if (ec || !*alive || gen != generation_) return;
    request("/v3/lease/keepalive", {{"ID", std::to_string(lease_)}}, [this, gen](Result<json> r) {
      if (gen != generation_ || stopped_) return;
      if (!r) return fail("renewing the lease failed: " + r.error().message);
      const auto& res = r->contains("result") ? (*r)["result"] : *r;
      if (as_ll(res.value("TTL", json("0"))) <= 0) return fail("the lease expired (etcd was out of reach too long)");
      keepalive();
    });
  });
}

}  // namespace topowall::cluster
