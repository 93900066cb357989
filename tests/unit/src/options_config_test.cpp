// topowalld's configuration file (--config): every flag is a key, the command line wins, a misspelt key
// is refused, and the files the project ships parse.
#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <utility>
#include <unistd.h>

#include "app/options.hpp"

using namespace topowall;

namespace {

struct ConfigFile {
  std::string path;
  explicit ConfigFile(const std::string& text)
      : path((std::filesystem::temp_directory_path() / ("topowall-conf-" + std::to_string(::getpid()) + ".conf")).string()) {
    std::ofstream(path) << text;
  }
  ~ConfigFile() { std::filesystem::remove(path); }
};

Result<app::Options> parse(const std::string& line) {
  CLI::App cli;
  app::Flags flags;
  app::add_flags(cli, flags);
  cli.parse(line, false);
  return app::to_options(flags);
}

}  // namespace

TEST(OptionsConfig, TheFileSetsOptions) {
  ConfigFile f(R"(# topowalld.conf
state-dir = "/srv/topowall"
mode = "enforce"
identity-labels = "team,app"
alert-sink = ["log", "jsonl:/var/log/topowall.jsonl"]
failsafe = ["tcp/22", "udp/53"]
no-discover-netns = true
nflog-group = 7
max-pending = 5000
)");
  auto o = parse("--config " + f.path);
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->state_dir, "/srv/topowall");
  EXPECT_EQ(o->agent.initial_mode, Mode::enforce);
  EXPECT_EQ(o->agent.identity.labels, (std::vector<std::string>{"team", "app"}));
  EXPECT_EQ(o->alert_sinks, (std::vector<std::string>{"log", "jsonl:/var/log/topowall.jsonl"}));
  EXPECT_EQ(o->agent.ruleset.failsafe.size(), 2u);
  EXPECT_FALSE(o->discover_netns);
  EXPECT_EQ(o->agent.ruleset.nflog_group, 7);
  EXPECT_EQ(o->agent.pending_limits.total, 5000u);
}

TEST(OptionsConfig, TheCommandLineOverridesTheFile) {
  ConfigFile f("state-dir = \"/srv/topowall\"\nmode = \"enforce\"\nnflog-group = 7\n");
  auto o = parse("--config " + f.path + " --mode monitor --nflog-group 9");
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->agent.initial_mode, Mode::monitor);
  EXPECT_EQ(o->agent.ruleset.nflog_group, 9);
  EXPECT_EQ(o->state_dir, "/srv/topowall") << "what the command line does not say comes from the file";
}

// A misspelt key on a firewall would silently leave a protection at its default: refused, by name.
TEST(OptionsConfig, AnUnknownKeyIsAClearError) {
  ConfigFile f("state-dir = \"/srv/topowall\"\nanti-spoofing-off = true\n");
  try {
    (void)parse("--config " + f.path);  // the throw is the result under test
    ADD_FAILURE() << "an unknown key was accepted";
  } catch (const CLI::ParseError& e) {
    EXPECT_NE(std::string(e.what()).find("anti-spoofing-off"), std::string::npos) << e.what();
    EXPECT_EQ(app::describe_config_error(e.what()),
              "--config: unknown key 'anti-spoofing-off': not a topowalld option (keys are the flag names without --, see "
              "topowalld --help)");
  }
  // As topowalld starts: a bad file is a bad option, exit 2.
  CLI::App cli;
  app::Flags flags;
  app::add_flags(cli, flags);
  const char* argv[] = {"topowalld", "--config", f.path.c_str()};
  EXPECT_EQ(app::parse_command_line(cli, 3, argv), 2);
  // Values are checked as on the command line.
  ConfigFile bad("nflog-group = 0\n");
  EXPECT_THROW((void)parse("--config " + bad.path), CLI::ParseError);
  EXPECT_THROW((void)parse("--config /nonexistent/topowalld.conf"), CLI::ParseError) << "a named file that is missing";
}

// Every flag is settable in the file: each option's name, as a key, is accepted.
TEST(OptionsConfig, EveryFlagIsAKey) {
  CLI::App cli;
  app::Flags flags;
  app::add_flags(cli, flags);
  int checked = 0;
  for (const auto* opt : cli.get_options()) {
    const auto name = opt->get_single_name();
    if (name == "help" || name == "config" || opt->get_lnames().empty()) continue;
    CLI::App one;
    app::Flags f2;
    app::add_flags(one, f2);
    const bool flag = opt->get_type_size() == 0;
    ConfigFile f(name + " = " + (flag ? std::string("false") : std::string("\"x\"")) + "\n");
    try {
      one.parse("--config " + f.path, false);
    } catch (const CLI::ParseError& e) {
      // A value the option's own check refuses is fine here; an unknown key is not.
      EXPECT_EQ(std::string(e.what()).find("not able to parse"), std::string::npos) << name << ": " << e.what();
      EXPECT_EQ(std::string(e.what()).find("extra"), std::string::npos) << name << ": " << e.what();
    }
    ++checked;
  }
  EXPECT_GE(checked, 40);
}

// The configuration files the project ships (systemd, the Kubernetes ConfigMaps) parse and say what they mean.
TEST(OptionsConfig, ShippedFilesParse) {
  const std::string dir = std::string(TOPOWALL_SOURCE_DIR) + "/deploy";
  auto read = [](const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  ConfigFile f(read(dir + "/systemd/topowalld.conf"));
  ASSERT_GT(std::filesystem::file_size(f.path), 0u) << "deploy/systemd/topowalld.conf";
  auto o = parse("--config " + f.path);
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->state_dir, "/var/lib/topowall");
  EXPECT_NE(read(dir + "/systemd/topowalld.service").find("--config /etc/topowall/topowalld.conf"), std::string::npos);

  for (const auto& [file, cri] : {std::pair{"topowalld.yaml", "/run/containerd/containerd.sock"},
                                  std::pair{"topowalld-crio.yaml", "/run/crio/crio.sock"},
                                  std::pair{"topowalld-docker.yaml", ""}}) {
    // The ConfigMap's topowalld.conf is the text under `topowalld.conf: |`, indented by four.
    std::istringstream in(read(dir + "/kubernetes/" + file));
    std::string text, line;
    bool inside = false;
    while (std::getline(in, line)) {
      if (inside && !line.empty() && line.rfind("    ", 0) != 0) break;
      if (inside) text += (line.size() >= 4 ? line.substr(4) : "") + "\n";
      if (line.find("topowalld.conf: |") != std::string::npos) inside = true;
    }
    ASSERT_FALSE(text.empty()) << "no topowalld.conf in the ConfigMap of " << file;
    ConfigFile k(text);
    auto ko = parse("--config " + k.path + " --node-name n1");
    ASSERT_TRUE(ko) << file << ": " << ko.error().message << "\n" << text;
    EXPECT_EQ(ko->metrics_listen, "127.0.0.1:9617") << file << ": the probes need it";
    EXPECT_EQ(ko->cri_socket, cri) << file;
    if (*cri) {
      EXPECT_FALSE(ko->discover_netns) << file << ": pod namespaces are pods, not workloads of their own";
    }
  }
}
