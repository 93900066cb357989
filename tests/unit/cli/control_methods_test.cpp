// The control method table: one name per method, and the same list as docs/PROTOCOL.md.
#include "topowall/control_methods.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

using namespace topowall;

TEST(ControlMethods, NoNameIsListedTwice) {
  std::set<std::string_view> seen;
  for (const auto& m : control::kMethods) EXPECT_TRUE(seen.insert(m.name).second) << m.name << " is listed twice";
  EXPECT_FALSE(control::has_duplicate_methods());
}

TEST(ControlMethods, FindNamesTheEntryOrNothing) {
  ASSERT_NE(control::find_method(control::kModeSet), nullptr);
  EXPECT_TRUE(control::find_method(control::kModeSet)->needs_write);
  ASSERT_NE(control::find_method("status"), nullptr);
  EXPECT_FALSE(control::find_method("status")->needs_write);
  EXPECT_TRUE(control::find_method(control::kFlowsWatch)->streams);
  EXPECT_EQ(control::find_method("whoami"), nullptr);
  EXPECT_EQ(control::find_method(""), nullptr);
}

// docs/PROTOCOL.md lists every method in a table, `*` marking those that change state: the table
// here and the docs name the same methods, with the same marks.
TEST(ControlMethods, MatchTheProtocolDocument) {
  std::ifstream in(std::string(TOPOWALL_SOURCE_DIR) + "/docs/PROTOCOL.md");
  ASSERT_TRUE(in);
  std::map<std::string, bool> documented;  // name -> needs write
  bool in_methods = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("#", 0) == 0) in_methods = line == "## Methods";  // up to the next heading
    if (!in_methods || line.rfind("| `", 0) != 0) continue;
    auto end = line.find('`', 3);
    ASSERT_NE(end, std::string::npos) << line;
    auto cell_end = line.find('|', end);
    documented[line.substr(3, end - 3)] = line.substr(end, cell_end - end).find('*') != std::string::npos;
  }
  ASSERT_FALSE(documented.empty()) << "no methods table in docs/PROTOCOL.md";
  for (const auto& m : control::kMethods) {
    auto it = documented.find(std::string(m.name));
    ASSERT_NE(it, documented.end()) << m.name << " is not in docs/PROTOCOL.md";
    EXPECT_EQ(it->second, m.needs_write) << m.name << ": the docs' `*` and needs_write differ";
  }
  EXPECT_EQ(documented.size(), control::kMethods.size()) << "docs/PROTOCOL.md lists a method the table does not";
}
