#include "topowall/topology/names.hpp"

#include <stdexcept>

namespace topowall::topology {

NameTable& NameTable::operator=(const NameTable& o) {
  if (this == &o) return *this;
  slots_ = o.slots_;
  free_ = o.free_;
  index_.clear();  // rebuilt: the views must point into this table's strings
  for (Id id = 0; id < slots_.size(); ++id)
    if (slots_[id].refs > 0) index_.emplace(slots_[id].name, id);
  return *this;
}

NameTable::Id NameTable::acquire(std::string_view name) {
  if (auto it = index_.find(name); it != index_.end()) {
    ++slots_[it->second].refs;
    return it->second;
  }
  Id id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
  } else {
    if (slots_.size() >= kNone) throw std::length_error("name table: 2^32 names held at once");
    id = static_cast<Id>(slots_.size());
    slots_.emplace_back();
  }
  auto& s = slots_[id];
  s.name.assign(name);
  s.refs = 1;
  index_.emplace(s.name, id);
  return id;
}

void NameTable::release(Id id) {
  auto& s = slots_.at(id);
  if (s.refs == 0) throw std::logic_error("name table: released an id nobody holds");
  if (--s.refs > 0) return;
  index_.erase(s.name);
  std::string().swap(s.name);  // the bytes go back now, not when the id is reused
  free_.push_back(id);
}

NameTable::Id NameTable::lookup(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? kNone : it->second;
}

}  // namespace topowall::topology
