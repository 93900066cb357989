// The strict readers the graph and state schemas share (internal to topology/src): each names the
// JSON path of what was wrong. A reader throws Fail; the public entry points turn it into an Error.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>

#include "topowall/topology/graph.hpp"
#include "topowall/types.hpp"

namespace topowall::topology::schema_fields {

struct Fail {
  std::string msg;
};

[[noreturn]] void fail(const std::string& path, const std::string& why);
// `o` is an object holding only the `allowed` keys.
void only_fields(const nlohmann::json& o, const std::string& path, std::initializer_list<const char*> allowed);
[[nodiscard]] const nlohmann::json& need(const nlohmann::json& o, const std::string& path, const char* key);
[[nodiscard]] std::string get_name(const nlohmann::json& o, const std::string& path, const char* key);
[[nodiscard]] TimePoint get_time(const nlohmann::json& o, const std::string& path, const char* key);
[[nodiscard]] std::uint64_t get_uint(const nlohmann::json& o, const std::string& path, const char* key, std::uint64_t max);
// src, dst, proto and port of an edge or a pending flow.
[[nodiscard]] EdgeKey get_key(const nlohmann::json& e, const std::string& p);
[[nodiscard]] nlohmann::json key_fields(const EdgeKey& k);

}  // namespace topowall::topology::schema_fields
