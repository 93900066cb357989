// The compiler: graph + endpoints + modes -> the desired nftables ruleset,
// as a model of sets and maps. No rule per edge: rules are fixed, plus two small
// chains per workload id; elements grow with endpoints + edges (never their
// product), and per-packet cost is a few hash lookups whatever the graph size.
//
// How a new connection is judged: the source address maps (vmap) to a chain
// that writes the source's id into the claimed mark bits; the destination
// address maps to the destination's chain, which looks up
// (mark & mask . proto . port) in that destination's set of allowed sources.
#pragma once

#include <absl/container/btree_set.h>

#include <compare>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "topowall/topology/endpoints.hpp"
#include "topowall/topology/graph.hpp"
#include "topowall/topology/learner.hpp"
#include "topowall/types.hpp"

namespace topowall::topology {

inline constexpr std::uint32_t kHostId = 1;
inline constexpr std::uint32_t kWorldId = 2;
// Workloads whose id does not fit the mark bits share this one: no edge names it, so their flows are
// judged "no edge" under the node's global mode (fail closed), never left unjudged.
inline constexpr std::uint32_t kOverflowId = 3;
inline constexpr std::uint32_t kFirstWorkloadId = 16;

// Stable numeric ids for names: a name keeps its id while it is in use, so incremental updates never
// renumber. The mark bits hold few ids, so an id whose name has had no address for `hold` is released
// and may be given to another name; nothing in the kernel still carries it by then (see collect()).
class IdTable {
 public:
  std::uint32_t id(const std::string& name);  // allocates on first use, lowest free id first
  std::uint32_t find(const std::string& name) const;  // 0 when unknown
  const std::map<std::string, std::uint32_t>& all() const { return ids_; }
  std::uint32_t next() const { return next_; }
  // Ids from a saved state; a reserved or duplicated id is dropped (its name gets a fresh one).
  void restore(std::map<std::string, std::uint32_t> ids, std::uint32_t next);
  // Release the ids of names not in `live` since at least `hold` before `now`, then move names whose id
  // is beyond `capacity` (the mark bits) into freed ids that fit. Returns the names released or moved.
  // Safe only when the caller then compiles in full: old elements vanish with the new model in one
  // transaction, and marks are transient (no conntrack entry keeps an id).
  std::vector<std::string> collect(const std::set<std::string>& live, TimePoint now, Clock::duration hold,
                                   std::uint32_t capacity);
  bool operator==(const IdTable&) const = default;

 private:
  std::map<std::string, std::uint32_t> ids_;
  std::set<std::uint32_t> free_;                 // released ids below next_
  std::map<std::string, TimePoint> idle_since_;  // names with an id but no address
  std::uint32_t next_ = kFirstWorkloadId;
};

struct AllowKey {
  std::uint32_t src = 0;
  std::uint32_t dst = 0;
  std::uint8_t proto = 0;
  std::uint16_t port = 0;  // icmp type for icmp/icmpv6
  auto operator<=>(const AllowKey&) const = default;
};

struct PortKey {
  std::uint8_t proto = 0;
  std::uint16_t port = 0;
  auto operator<=>(const PortKey&) const = default;
};

// A disjoint address range [first, last] mapped to an id.
struct Interval {
  IpAddr first;
  IpAddr last;
  std::uint32_t id = 0;
  auto operator<=>(const Interval&) const = default;
};

struct RulesetConfig {
  std::string table = "topowall";
  int priority = -95;            // prerouting, just after DNAT (-100): judges the real destination
  std::uint16_t nflog_group = 5113;
  std::uint32_t alert_rate = 200;   // log messages per second, per verdict
  std::uint32_t alert_burst = 100;
  std::set<PortKey> failsafe{{6, 22}};  // never blocked (ssh)
  // Packet-mark bits topowall may use, transiently, while judging a new
  // connection; the other bits are never changed (kube-proxy, CNIs, podman).
  std::uint32_t mark_mask = 0x0fff0000;
  // The anti-spoofing guard: before conntrack (-200), so a refused packet never creates an entry.
  int guard_priority = -300;
  // Off only where the node's container ports are not ours to judge (several agents sharing one kernel
  // in tests; a CNI whose ports are veths of another meaning): sources are then not validated.
  bool guard = true;
  bool operator==(const RulesetConfig&) const = default;
};

struct RulesetModel {
  RulesetConfig cfg;
  std::map<IpAddr, std::uint32_t> ep4, ep6;       // endpoint address -> workload id
  std::vector<Interval> net4, net6;               // every other address -> host / network / world id
  // A B-tree: about 16 bytes an edge where a std::set node took 48 (a million edges, see BENCHMARKS.md).
  absl::btree_set<AllowKey> allow;
  std::set<std::uint32_t> enforced, monitored;    // workload ids by mode (absent = learn)
  std::map<std::uint32_t, std::string> names;     // id -> name, for alerts and `rules show`
  std::set<std::uint32_t> ids;                    // every id that needs its chains
  std::set<std::string> over_capacity;            // names whose id does not fit the mark bits
  // Anti-spoofing: local endpoint address -> the host-side port (ifindex) that may send from it. A
  // container port sending any other source is dropped; so is an unclassified container port
  // unless the node learns (see DESIGN.md, "The guard").
  std::map<IpAddr, std::uint32_t> port4, port6;
  bool unclassified_drop = false;
  bool operator==(const RulesetModel&) const = default;
};

struct CompileInput {
  const Graph& graph;
  const EndpointTable& endpoints;
  const ModeTable& modes;
  TimePoint now;
};

int mark_shift(std::uint32_t mask);
std::uint32_t mark_capacity(std::uint32_t mask);  // largest id that fits
std::uint32_t mark_value(std::uint32_t mask, std::uint32_t id);
// The conntrack-mark bit that says "the agent needs this connection's events": the mask's highest bit. The
// ruleset sets it on the entries of connections that learn or that a monitored workload makes outside the
// graph; the event socket's filter drops every other event in the kernel (DESIGN.md, "Conntrack events").
std::uint32_t event_mark(std::uint32_t mask);
// Whether any connection of `m` can need conntrack events: the node learns (global learn: unclassified and new
// workloads learn), or an endpoint learns or is monitored (`alert_pass` marks its flows outside the graph for
// the pending edges). False only when every endpoint enforces: the agent may then leave the event groups.
bool needs_conntrack_events(const RulesetModel& m);
// The same, judged by these addresses' owners only (after a patch that touched them): O(touched).
bool needs_conntrack_events(const RulesetModel& m, const std::vector<IpAddr>& touched);

RulesetModel compile(const CompileInput& in, IdTable& ids, const RulesetConfig& cfg);

// Bring `m` (compiled from an earlier state) up to date for the given
// addresses and edges only: O(changes), not O(graph). The result equals a
// full compile whenever only those addresses and edges changed and patchable() holds.
void patch(RulesetModel& m, const CompileInput& in, IdTable& ids, const std::vector<IpAddr>& addrs,
           const std::vector<EdgeKey>& edges);

// False when an address belongs to a workload without an id: its edges were left out of the model
// (see compile), so only a full compile adds them.
[[nodiscard]] bool patchable(const CompileInput& in, const IdTable& ids, const std::vector<IpAddr>& addrs);

// Non-overlapping ranges for (cidr, id) pairs where the most specific prefix
// wins; together they cover the whole family's address space (the rest -> world).
std::vector<Interval> disjoint_intervals(int family, std::vector<std::pair<Cidr, std::uint32_t>> nets,
                                         std::uint32_t fallback_id);

enum class Verdict { accept, alert_accept, alert_drop };
std::string_view to_string(Verdict v);

// What the compiled ruleset does with the first packet of a new connection:
// the reference semantics the nftables rules implement.
Verdict evaluate(const RulesetModel& m, const IpAddr& src, const IpAddr& dst, Proto proto, std::uint16_t port);

// The verdict with the rule that gave it, for `explain`: what evaluate() says is what the kernel does.
struct Judgement {
  enum class Why { not_ours, failsafe, edge, enforced, monitored, learning };
  Verdict verdict = Verdict::accept;
  Why why = Why::not_ours;
  std::uint32_t src = 0, dst = 0;  // ids (host, world, a network or a workload)
};
Judgement judge(const RulesetModel& m, const IpAddr& src, const IpAddr& dst, Proto proto, std::uint16_t port);
// The id an address is judged under, and whether it is a workload's endpoint (not host, world, a network).
struct Side {
  std::uint32_t id = 0;
  bool endpoint = false;
};
Side classify(const RulesetModel& m, const IpAddr& a);
// The same by ids: `*_endpoint` when the id is a workload's endpoint (not host, world or a network).
Judgement judge_ids(const RulesetModel& m, std::uint32_t src, bool src_endpoint, std::uint32_t dst, bool dst_endpoint,
                    Proto proto, std::uint16_t port);

// What the guard does with a packet from host-side interface `port` (0: not a container port) claiming
// source `src`: accept (it owns src), or drop as spoofed or as sent from an unclassified port.
enum class GuardVerdict { accept, spoofed, unclassified };
GuardVerdict guard(const RulesetModel& m, std::uint32_t port, const IpAddr& src);

// The model as `nft -f` text (for `topowall rules show` and the baseline benchmark).
std::string render_nft(const RulesetModel& m);

}  // namespace topowall::topology
