// Imported graphs: a topology file as `topowall topology import` sends it (and topology.diff reads it),
// parsed with bounded nesting and checked by the strict schema. What is accepted must survive the trip
// out and back unchanged (export, then import again), and render in every export format.
#include <cstdio>

#include "fuzz_support.hpp"
#include "topowall/topology/exporters.hpp"
#include "topowall/topology/json_limits.hpp"
#include "topowall/topology/schema.hpp"

using namespace topowall;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto j = topology::parse_json(fuzz::as_text(data, size));
  if (!j) return 0;
  auto g = topology::graph_from_json(*j);
  if (!g) return 0;
  const auto out = topology::graph_to_json(*g);
  auto back = topology::graph_from_json(topology::parse_json(out.dump()).value());
  if (!back || !(*back == *g)) {
    std::fprintf(stderr, "graph did not survive export and import: %s\n",
                 back ? out.dump().c_str() : back.error().message.c_str());
    __builtin_trap();
  }
  (void)topology::export_dot(*g);
  (void)topology::export_mermaid(*g);
  (void)topology::export_networkpolicy(*g, "app");
  return 0;
}
