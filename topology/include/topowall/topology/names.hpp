// Interned names: each distinct workload (or host, world, network) name is held once and referred to by
// a 4-byte id, so a million edges between a thousand workloads hold a thousand strings, not two million.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace topowall::topology {

// Reference-counted: an id lives while something holds it and is released (its string freed, the id
// free for another name) when the last holder lets go. Names come from container labels, which an
// attacker in a container can choose and churn: the table never holds more names than are referenced.
class NameTable {
 public:
  using Id = std::uint32_t;

  NameTable() = default;
  NameTable(const NameTable& o) { *this = o; }
  NameTable& operator=(const NameTable& o);
  NameTable(NameTable&&) = delete;  // holders keep a pointer to their table
  NameTable& operator=(NameTable&&) = delete;

  // The id of `name`, one more reference to it.
  [[nodiscard]] Id acquire(std::string_view name);
  // One more reference to an id already held.
  void retain(Id id) { ++slots_[id].refs; }
  // One reference fewer; the last one frees the name and its id.
  void release(Id id);
  // The id of a name held now, or kNone (no reference taken).
  [[nodiscard]] Id lookup(std::string_view name) const;
  const std::string& name(Id id) const { return slots_[id].name; }

  std::size_t size() const { return index_.size(); }      // names held now
  std::size_t capacity() const { return slots_.size(); }  // ids ever handed out: the most held at once
  std::uint32_t refs(Id id) const { return id < slots_.size() ? slots_[id].refs : 0; }

  static constexpr Id kNone = UINT32_MAX;

 private:
  struct Slot {
    std::string name;
    std::uint32_t refs = 0;
  };
  std::deque<Slot> slots_;  // a deque: names keep their address, so the index can view them
  std::unordered_map<std::string_view, Id> index_;
  std::vector<Id> free_;
};

}  // namespace topowall::topology
