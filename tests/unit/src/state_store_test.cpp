#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "store/state_store.hpp"

using namespace topowall;
namespace fs = std::filesystem;

namespace {
struct TmpDir {
  TmpDir() {
    char tmpl[] = "/tmp/topowall-test-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TmpDir() { fs::remove_all(path); }
  std::string path;
};
}  // namespace

TEST(FileStateStore, FreshDirectoryHasNoStateThenRoundTrips) {
  TmpDir t;
  store::FileStateStore s(t.path + "/state");
  ASSERT_TRUE(s.prepare());
  EXPECT_EQ(fs::status(t.path + "/state").permissions() & fs::perms::all, fs::perms::owner_all);
  auto empty = s.load();
  ASSERT_TRUE(empty);
  EXPECT_FALSE(*empty);
  ASSERT_TRUE(s.save({{"a", 1}}));
  ASSERT_TRUE(s.save({{"a", 2}}));
  auto back = s.load();
  ASSERT_TRUE(back && *back);
  EXPECT_EQ((**back)["a"], 2);
  EXPECT_FALSE(fs::exists(s.path() + ".tmp"));
}

TEST(FileStateStore, CorruptFileIsAClearError) {
  TmpDir t;
  store::FileStateStore s(t.path);
  std::ofstream(s.path()) << "{ truncated";
  auto r = s.load();
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("not valid JSON"), std::string::npos);
}

// A state file nested 200,000 deep is refused with what to do, before it is built (copying or dumping a
// value that deep overflows the stack).
TEST(FileStateStore, DeeplyNestedFileIsAClearError) {
  TmpDir t;
  store::FileStateStore s(t.path);
  std::ofstream(s.path()) << R"({"schema":"topowall.state","graph":)" << std::string(200000, '[')
                          << std::string(200000, ']') << "}";
  auto r = s.load();
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("nested deeper than 64"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("move it aside"), std::string::npos) << r.error().message;
}

TEST(FileStateStore, LeftoverTempFileFromACrashIsIgnored) {
  TmpDir t;
  store::FileStateStore s(t.path);
  ASSERT_TRUE(s.save({{"a", 1}}));
  std::ofstream(s.path() + ".tmp") << "{ half written";
  auto r = s.load();
  ASSERT_TRUE(r && *r);
  EXPECT_EQ((**r)["a"], 1);
}
