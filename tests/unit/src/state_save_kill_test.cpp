// Reliability matrix, item 4 (docs/RELIABILITY.md): a process saving the state is SIGKILLed at random
// points, again and again; every time the state file then loads, and is the old state or the new one
// whole. 20 kills here; TOPOWALL_RELIABILITY_LONG=1 (tools/reliability.sh) makes it 200.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <thread>

#include "store/state_store.hpp"
#include "topowall/topology/schema.hpp"

using namespace topowall;
using nlohmann::json;

namespace {

// A state with `edges` edges, all on `port`: large enough that a save takes milliseconds, so that kills
// land inside the write, the fsync and the rename as often as between saves.
json big_state(const std::string& mode, int port, int edges) {
  json ws = json::array(), es = json::array();
  for (int i = 0; i < 200; ++i) ws.push_back({{"name", "w" + std::to_string(i)}, {"labels", json::object()}});
  for (int i = 0; i < edges; ++i)
    es.push_back({{"src", "w" + std::to_string(i % 200)}, {"dst", "w" + std::to_string((i / 200) % 200)}, {"proto", "tcp"},
                  {"port", port + i / 40000}, {"state", "learned"}, {"count", i}});
  return {{"schema", "topowall.state"}, {"version", 1}, {"mode", mode}, {"graph", {{"version", 1}, {"workloads", ws}, {"edges", es}}}};
}

}  // namespace

TEST(ReliabilityStateSaves, AKillAtAnyPointLeavesTheOldOrTheNewStateWhole) {
  const int kills = std::getenv("TOPOWALL_RELIABILITY_LONG") ? 200 : 20;
  const auto dir = std::filesystem::temp_directory_path() / ("topowall-save-kill-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  store::FileStateStore st(dir.string());
  ASSERT_TRUE(st.prepare());
  const json old_doc = big_state("learn", 1000, 8000), new_doc = big_state("enforce", 2000, 8000);
  ASSERT_TRUE(topology::state_from_json(old_doc)) << "the test's own states must be valid";
  ASSERT_TRUE(topology::state_from_json(new_doc));
  const std::string old_text = old_doc.dump(1) + "\n", new_text = new_doc.dump(1) + "\n";
  ASSERT_TRUE(st.save_text(old_text));
  // How long one save takes here, so that the kills spread over a few saves whatever the machine.
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(st.save_text(new_text));
  const auto save_us = std::max<long>(
      1000, std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count());
  std::mt19937 rng(12345);
  std::uniform_int_distribution<long> delay(0, 3 * save_us);
  int olds = 0, news = 0, mid_write = 0;
  for (int i = 0; i < kills; ++i) {
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {  // saves old and new, in turn, until killed
      store::FileStateStore s(dir.string());
      for (int n = 0;; ++n)
        if (!s.save_text(n % 2 ? old_text : new_text)) _exit(3);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(delay(rng)));
    kill(child, SIGKILL);
    int status = 0;
    waitpid(child, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "kill " << i << ": the saver stopped on its own (a save failed)";
    if (std::filesystem::exists(dir / "state.json.tmp")) ++mid_write;
    auto loaded = st.load();
    ASSERT_TRUE(loaded) << "kill " << i << ": " << loaded.error().message;
    ASSERT_TRUE(loaded->has_value()) << "kill " << i << ": the state file is gone";
    const json& doc = **loaded;
    ASSERT_TRUE(doc == old_doc || doc == new_doc) << "kill " << i << ": neither the old nor the new state";
    ASSERT_TRUE(topology::state_from_json(doc)) << "kill " << i;
    ++(doc == old_doc ? olds : news);
  }
  std::cout << kills << " kills: old state " << olds << ", new " << news << ", " << mid_write
            << " inside a save (its temp file left); one save " << save_us << " us\n";
  RecordProperty("kills_inside_a_save", mid_write);
  std::filesystem::remove_all(dir);
}
