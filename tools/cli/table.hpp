// Aligned text tables for humans.
#pragma once

#include <string>
#include <vector>

namespace topowall::cli {

class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void row(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
  std::string render() const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

// "2026-..Z" -> "3m ago" relative to now; "" stays "".
std::string relative_time(const std::string& rfc3339);

}  // namespace topowall::cli
