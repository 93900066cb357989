#include "topowall/topology/counters.hpp"

#include <array>

namespace topowall::topology {
namespace {

constexpr bool G = true, D = true, _ = false;

// Grouped as `status` shows them; `name, help, gauge, degraded`.
constexpr std::array kCounters{
    CounterInfo{"flows", "flows seen (conntrack new, answered and ended connections, and dump entries)"},
    CounterInfo{"flows_not_ours", "flows with no known endpoint at either end"},
    CounterInfo{"new_edges", "edges learned"},
    CounterInfo{"pending_flows", "flows outside the graph recorded as pending"},
    CounterInfo{"pending_evicted", "pending flows evicted, least recently seen first, to stay within --max-pending-per-source and --max-pending", _, D},
    CounterInfo{"flows_unanswered", "connections that ended without an answer (never learned)"},
    CounterInfo{"flows_refused", "connections refused by their destination, a TCP reset (never learned)"},
    CounterInfo{"learn_held", "new edges held for review while learning: from a quarantined workload (scan, fan-out) or from world"},
    CounterInfo{"learn_quarantines", "workloads quarantined for reaching more new edges than --learn-fanout-limit within --learn-fanout-window"},
    CounterInfo{"learn_one_way", "unanswered UDP flows learned because they repeated (--learn-one-way-after)"},
    CounterInfo{"deferred_flows", "flows held until discovery could name their ends"},
    CounterInfo{"deferred_overflow", "held flows dropped because the hold queue was full", _, D},
    CounterInfo{"endpoint_upserts", "endpoints added or changed"},
    CounterInfo{"endpoint_removes", "endpoints removed"},
    CounterInfo{"address_claims_refused", "addresses a container showed that the runtime assigned to another endpoint (ignored: the runtime's word wins)", _, D},
    CounterInfo{"persist_errors", "failed writes of the state file (retried at the next save)", _, D},
    CounterInfo{"state_save_ms", "the last write of the state file, milliseconds; the next periodic one waits at least 100 times that (1 s to 30 s)", G},
    CounterInfo{"heap_trims", "times freed heap went back to the system: checked every 10 s, done when the memory resident beyond the heap in use grew by 32 MiB since the last (after a cluster's full read, an import)"},
    CounterInfo{"heap_trim_ms", "the last of those, milliseconds (it holds the event loop)", G},
    CounterInfo{"handler_errors", "exceptions caught in event handlers and control requests", _, D},
    CounterInfo{"conntrack_messages", "ctnetlink messages received"},
    CounterInfo{"conntrack_flows", "conntrack flows decoded"},
    CounterInfo{"conntrack_undecodable", "conntrack messages that are not a flow the graph models (other types, protocols, malformed)"},
    CounterInfo{"conntrack_enobufs", "conntrack event overruns; each grows the buffer and is followed by a resync", _, D},
    CounterInfo{"conntrack_resyncs", "conntrack table dumps (start-up and after overruns)"},
    CounterInfo{"conntrack_resyncs_coalesced", "overruns during a running background dump, folded into one more dump after it"},
    CounterInfo{"conntrack_resync_entries", "entries read from conntrack dumps"},
    CounterInfo{"conntrack_errors", "conntrack socket errors", _, D},
    CounterInfo{"conntrack_filter_failed", "times the conntrack event filter could not be attached: the agent receives every connection's events (CPU per connection; enforcement unaffected)", _, D},
    CounterInfo{"conntrack_subscribe_failed", "times joining or leaving the conntrack event groups failed: the agent stays subscribed (every connection builds an event; learning and enforcement unaffected)", _, D},
    CounterInfo{"conntrack_rcvbuf_bytes", "receive buffer of the conntrack event socket, bytes (it grows after each overrun)", G},
    CounterInfo{"edge_use_errors", "failed reads of the allowed edges' kernel counters: the use (last_used, journal) of edges that do not learn lags until a read succeeds", _, D},
    CounterInfo{"conntrack_deleted", "connections removed from conntrack because they lost their permission or their address changed owner"},
    CounterInfo{"runtime_events", "container runtime events received"},
    CounterInfo{"runtime_inspects", "containers inspected through the runtime's API"},
    CounterInfo{"runtime_errors", "container runtime API errors, malformed inspect records included", _, D},
    CounterInfo{"runtime_reconnects", "reconnections to the container runtime API", _, D},
    CounterInfo{"runtime_host_network", "containers sharing the node's network namespace, never made endpoints (their addresses are host)"},
    CounterInfo{"netns_events", "named network namespaces seen appearing or going"},
    CounterInfo{"netns_errors", "named network namespace directory errors (the known ones are kept)", _, D},
    CounterInfo{"cluster_publishes", "writes of this node's endpoints to the cluster store"},
    CounterInfo{"cluster_events", "other nodes' endpoint changes received"},
    CounterInfo{"cluster_errors", "failed cluster store requests, retried with backoff", _, D},
    CounterInfo{"cluster_resyncs", "full reads of the cluster's endpoints (start and after a lost watch or lease)"},
    CounterInfo{"cluster_values_refused", "etcd values under one node's key that speak for another node or endpoint (ignored: a node may only write its own)", _, D},
    CounterInfo{"cluster_claims_refused", "addresses another node claimed outside the ranges it announced (ignored)", _, D},
    CounterInfo{"cluster_ranges_refused", "ranges a node announced that overlap another node's earlier ones (refused; the log names both nodes)", _, D},
    CounterInfo{"cluster_decisions_local", "decisions made on this node that it may not write to etcd (no --cluster-decisions-user): they apply here only unless the operator writes them"},
    CounterInfo{"control_requests", "control socket requests"},
    CounterInfo{"control_rejected", "control socket requests refused (malformed, too large, busy, rate-limited)"},
    CounterInfo{"control_paused", "times a control client's requests stopped being read because 4 MiB of its answers were unread"},
    CounterInfo{"control_slow_closed", "flows watch streams closed because their client fell 4 MiB behind"},
    CounterInfo{"control_output_bytes", "bytes of answers queued on control connections, not yet read", G},
    CounterInfo{"ruleset_applies", "ruleset programming runs"},
    CounterInfo{"ruleset_apply_errors", "failed ruleset programming runs, retried with backoff", _, D},
    CounterInfo{"ruleset_repairs", "times another process changed our tables (inet or bridge) and they were restored", _, D},
    CounterInfo{"ruleset_checks", "periodic checks that found our tables changed (notices were lost) and restored them", _, D},
    CounterInfo{"ruleset_notices_lost", "nftables change notices lost (ENOBUFS: our own large transactions, or a flood); each loss makes the next periodic check read our tables back", _, D},
    CounterInfo{"ruleset_read_backs", "times our tables were read back and compared with what was applied (after lost notices, or a moved generation with no monitor)"},
    CounterInfo{"nft_full_applies", "whole-table nftables transactions"},
    CounterInfo{"nft_element_changes", "incremental nftables element changes"},
    CounterInfo{"nft_noop_applies", "programming runs that found the kernel already as wanted"},
    CounterInfo{"nft_errors", "nftables transactions the kernel refused", _, D},
    CounterInfo{"ctmark_taken", "new connections whose conntrack mark another component had set, judged as no edge (the kernel's counter: survives restarts)", _, D},
    CounterInfo{"ids_over_capacity", "workloads that found no free id in --mark-mask; they share the overflow id, judged as no edge", G, D},
    CounterInfo{"ids_released", "workload ids released after --id-reuse-after without an address, or moved into the mark bits"},
    CounterInfo{"guard_spoofed", "logged packets the guard dropped: a container sent from an address not its own"},
    CounterInfo{"guard_unclassified", "logged packets the guard dropped: from a container port not classified yet"},
    CounterInfo{"nflog_packets", "logged packets received"},
    CounterInfo{"nflog_undecodable", "logged packets that could not be decoded"},
    CounterInfo{"nflog_enobufs", "NFLOG overruns: logged packets lost", _, D},
    CounterInfo{"nflog_errors", "NFLOG socket errors", _, D},
    CounterInfo{"alerts", "alerts raised (before folding and rate limiting)"},
    CounterInfo{"alerts_suppressed", "alerts folded into an earlier alert of the same flow"},
    CounterInfo{"alerts_rate_limited", "alerts not sent to the sinks because their source workload exceeded its rate (--workload-alert-rate, --workload-alert-burst)"},
    CounterInfo{"alert_sink_drops", "alerts a sink failed to deliver", _, D},
    CounterInfo{"journal_records", "per-minute flow records written to the flow journal (`topowall replay`)"},
    CounterInfo{"journal_bytes", "size of the flow journal on disk, bytes (at most --journal-max-bytes)", G},
    CounterInfo{"journal_rotations", "times the flow journal dropped its older half to stay within --journal-max-bytes"},
    CounterInfo{"journal_write_errors", "flow journal writes that failed, or a journal that could not open (those flows are missing from replay)", _, D},
    CounterInfo{"journal_truncated_bytes", "torn or corrupt flow journal bytes cut at start-up (a crash mid-write, a bad block)", _, D},
};

}  // namespace

std::span<const CounterInfo> counter_table() { return kCounters; }

const CounterInfo* find_counter(std::string_view name) {
  for (const auto& c : kCounters)
    if (c.name == name) return &c;
  return nullptr;
}

std::string counters_markdown() {
  std::string out = "| counter | kind | counts |\n| --- | --- | --- |\n";
  for (const auto& c : kCounters) {
    out += "| `" + std::string(c.name) + "` | " + (c.gauge ? "gauge" : "counter") + (c.degraded ? ", degraded" : "") +
           " | " + std::string(c.help) + " |\n";
  }
  return out;
}

}  // namespace topowall::topology
