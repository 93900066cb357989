// The bash completion script is generated from the command tree: every command is in it, and
// bash completes with it as the tree says.
#include "completion.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "app.hpp"

using namespace topowall;

namespace {

// "topowall/topology/export" for every command below the root.
void paths(CLI::App& app, const std::string& path, std::vector<std::string>& out) {
  for (auto* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    auto here = path + "/" + sub->get_name();  // a copy: the recursion grows `out`, moving its strings
    out.push_back(here);
    paths(*sub, here, out);
  }
}

class Completion : public ::testing::Test {
 protected:
  void SetUp() override {
    app = cli::build_app(ctx);
    script = cli::bash_completion(*app);
  }

  // What bash offers after `line` (the last word is the one being completed), with the script
  // loaded and bash-completion's _init_completion stood in for.
  std::string complete(const std::string& line) {
    auto dir = std::filesystem::temp_directory_path() / ("topowall-completion-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "topowall.bash") << script;
    std::ofstream(dir / "driver.bash")
        << "source " << (dir / "topowall.bash") << "\n"
        << "_init_completion() { words=(\"${COMP_WORDS[@]}\"); cword=$COMP_CWORD;"
        << " cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}; }\n"
        << "read -r -a COMP_WORDS <<< \"$1\"; [[ $1 == *' ' ]] && COMP_WORDS+=('')\n"
        << "COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _topowall; echo \"${COMPREPLY[*]}\"\n";
    std::string out;
    if (FILE* p = popen(("bash " + (dir / "driver.bash").string() + " '" + line + "' 2>&1").c_str(), "r")) {
      char buf[4096];
      while (fgets(buf, sizeof buf, p)) out += buf;
      pclose(p);
    }
    std::filesystem::remove_all(dir);
    if (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }

  cli::Ctx ctx;
  std::unique_ptr<CLI::App> app;
  std::string script;
};

}  // namespace

TEST_F(Completion, EveryCommandOfTheTreeIsInTheScript) {
  std::vector<std::string> all;
  paths(*app, "topowall", all);
  ASSERT_GE(all.size(), 19u) << "the walk found too few commands";
  for (const auto& p : all) EXPECT_NE(script.find("\"" + p + "\""), std::string::npos) << p << " is missing:\n" << script;
}

TEST_F(Completion, NamesOptionsAndChoices) {
  for (const char* w : {"--socket", "--output", "--format", "--workload", "--clear", "--comment", "--all",
                        "json dot mermaid networkpolicy html", "learn monitor enforce", "table json"})
    EXPECT_NE(script.find(w), std::string::npos) << w << " is missing";
}

TEST_F(Completion, TopLevelOffersEveryCommandAndTheGlobalOptions) {
  if (::access("/bin/bash", X_OK) != 0) GTEST_SKIP() << "no bash";
  EXPECT_EQ(complete("topowall "), "status workloads topology edges flows explain completion rules mode replay -h --help "
                                   "--socket -o --output");
}

TEST_F(Completion, CompletesAsTheTreeSays) {
  if (::access("/bin/bash", X_OK) != 0) GTEST_SKIP() << "no bash";
  EXPECT_EQ(complete("topowall st"), "status");
  EXPECT_EQ(complete("topowall topology "), "export import diff -h --help");
  EXPECT_EQ(complete("topowall topology export --format "), "json dot mermaid networkpolicy html");
  EXPECT_EQ(complete("topowall topology export --format d"), "dot");
  EXPECT_EQ(complete("topowall flows a"), "approve");
  EXPECT_EQ(complete("topowall flows approve --c"), "--comment");
  EXPECT_EQ(complete("topowall flows deny --f"), "") << "only approve has --for";
  EXPECT_EQ(complete("topowall mode "), "learn monitor enforce -h --help --workload --for --clear");
  EXPECT_EQ(complete("topowall mode learn --workload "), "") << "a value without choices";
  EXPECT_EQ(complete("topowall mode --clear l"), "learn") << "a flag takes no value";
  EXPECT_EQ(complete("topowall -o "), "table json");
  EXPECT_EQ(complete("topowall flows pending -o j"), "json") << "root options fall through";
  EXPECT_EQ(complete("topowall completion "), "bash -h --help");
}
