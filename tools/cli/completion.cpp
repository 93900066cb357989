#include "completion.hpp"

#include <iostream>
#include <memory>
#include <sstream>

#include "commands.hpp"

namespace topowall::cli {
namespace {

constexpr const char* kProgram = "topowall";
const std::string kWordsTag = "complete:";

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string w; std::getline(in, w, sep);)
    if (!w.empty()) out.push_back(w);
  return out;
}

std::string join(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

// The values `opt` names: an IsMember check describes itself as "{a,b}"; complete_with tags its
// validator's name. CLI11 lists an option's validators only by index, throwing past the last.
std::vector<std::string> choices(CLI::Option& opt) {
  std::vector<std::string> out;
  for (int i = 0;; ++i) {
    const CLI::Validator* v = nullptr;
    try {
      v = opt.get_validator(i);
    } catch (const CLI::OptionNotFound&) {
      return out;
    }
    auto desc = v->get_description();
    std::vector<std::string> words;
    if (v->get_name().rfind(kWordsTag, 0) == 0) words = split(v->get_name().substr(kWordsTag.size()), ' ');
    else if (desc.size() > 2 && desc.front() == '{' && desc.back() == '}') words = split(desc.substr(1, desc.size() - 2), ',');
    out.insert(out.end(), words.begin(), words.end());
  }
}

bool is_positional(const CLI::Option& opt) { return opt.get_lnames().empty() && opt.get_snames().empty(); }

std::vector<std::string> flag_names(const CLI::Option& opt) {
  std::vector<std::string> out;
  for (const auto& s : opt.get_snames()) out.push_back("-" + s);
  for (const auto& l : opt.get_lnames()) out.push_back("--" + l);
  return out;
}

std::vector<CLI::App*> subcommands(CLI::App& app) {
  // get_subcommands() without a filter lists only the parsed ones; an option group has no name.
  return app.get_subcommands([](CLI::App* sub) { return !sub->get_name().empty(); });
}

std::vector<CLI::Option*> options(CLI::App& app) {
  return app.get_options([](CLI::Option*) { return true; });
}

// A command of the tree: "topowall/topology/export".
struct Node {
  std::string path;
  CLI::App* app;
};

void collect(CLI::App& app, const std::string& path, std::vector<Node>& out) {
  out.push_back({path, &app});
  for (auto* sub : subcommands(app)) collect(*sub, path + "/" + sub->get_name(), out);
}

// What may follow the command: its subcommands, its positionals' choices, its options.
std::string words_after(CLI::App& app) {
  std::vector<std::string> w;
  for (auto* sub : subcommands(app)) w.push_back(sub->get_name());
  for (auto* opt : options(app))
    if (is_positional(*opt)) {
      auto c = choices(*opt);
      w.insert(w.end(), c.begin(), c.end());
    }
  for (auto* opt : options(app)) {
    auto names = flag_names(*opt);
    w.insert(w.end(), names.begin(), names.end());
  }
  return join(w);
}

// `case "$path:$prev"` arms: after an option that takes a value, its choices (or nothing). Options
// reach the subcommands below too (fallthrough), hence "path/"*.
void option_value_arms(const Node& n, std::ostream& out) {
  for (auto* opt : options(*n.app)) {
    if (is_positional(*opt) || opt->get_expected_max() == 0) continue;  // a flag takes no value
    std::string patterns;
    for (const auto& name : flag_names(*opt))
      patterns += (patterns.empty() ? "" : " | ") + ("\"" + n.path + ":" + name + "\" | \"" + n.path + "/\"*\":" + name + "\"");
    auto c = choices(*opt);
    out << "    " << patterns << ")";
    if (!c.empty()) out << " COMPREPLY=($(compgen -W \"" << join(c) << "\" -- \"$cur\"));";
    out << " return ;;\n";
  }
}

}  // namespace

CLI::Option* complete_with(CLI::Option* opt, const std::vector<std::string>& words) {
  return opt->check([](const std::string&) { return std::string(); }, "", kWordsTag + join(words));
}

std::string bash_completion(CLI::App& app) {
  std::vector<Node> nodes;
  collect(app, kProgram, nodes);
  std::ostringstream out;
  out << "# bash completion for topowall: source <(topowall completion bash)\n"
      << "# Generated from the CLI's command tree by `topowall completion bash`.\n"
      << "_topowall() {\n"
      << "  local cur prev words cword\n"
      << "  _init_completion || return\n"
      << "  local path=" << kProgram << " i\n"
      << "  for ((i = 1; i < cword; i++)); do\n"
      << "    case \"$path/${words[i]}\" in\n";
  for (std::size_t i = 1; i < nodes.size(); ++i)
    out << "      \"" << nodes[i].path << "\"" << (i + 1 < nodes.size() ? " | \\\n" : ") path+=\"/${words[i]}\" ;;\n");
  out << "    esac\n  done\n  case \"$path:$prev\" in\n";
  for (const auto& n : nodes) option_value_arms(n, out);
  out << "  esac\n  case \"$path\" in\n";
  for (const auto& n : nodes)
    if (auto w = words_after(*n.app); !w.empty())
      out << "    \"" << n.path << "\") COMPREPLY=($(compgen -W \"" << w << "\" -- \"$cur\")) ;;\n";
  out << "  esac\n}\ncomplete -F _topowall " << kProgram << "\n";
  return out.str();
}

void add_completion(CLI::App& app) {
  auto* completion = app.add_subcommand("completion", "print a shell completion script");
  auto shell = std::make_shared<std::string>("bash");
  completion->add_option("shell", *shell, "bash")->check(CLI::IsMember({"bash"}));
  completion->callback([&app, shell] { std::cout << bash_completion(app); });
}

}  // namespace topowall::cli
