// Kubernetes objects checked offline against the API's schemas (tools/k8s/validate.py, on Debian's
// python3-kubernetes models) and read back as JSON for assertions. Header-only: pure unit tests use it.
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace topowall::testing {

inline const char* kPython = "/usr/bin/python3";

struct Run {
  int status = -1;
  std::string out;
};

inline Run run(const std::string& cmd) {
  Run r;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf{};
  for (std::size_t n; (n = std::fread(buf.data(), 1, buf.size(), p)) > 0;) r.out.append(buf.data(), n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

// "" if the validator can run here, else why not (the test skips with it).
inline std::string k8s_schema_missing() {
  if (run(std::string(kPython) + " -c 'import kubernetes.client, yaml'").status != 0)
    return "needs python3-kubernetes and python3-yaml (tools/install-deps.sh installs them)";
  return "";
}

// Writes text to a temporary file that is removed when this goes.
struct TempFile {
  std::string path;
  explicit TempFile(const std::string& text, const std::string& tag = "k8s")
      : path((std::filesystem::temp_directory_path() / ("topowall-" + tag + "-" + std::to_string(::getpid()) + ".yaml")).string()) {
    std::ofstream(path) << text;
  }
  ~TempFile() { std::filesystem::remove(path); }
};

// The validator's verdict on the YAML files: status 0 and "N objects, 0 problems", or the problems.
inline Run k8s_validate(const std::string& paths) {
  return run(std::string(kPython) + " " + TOPOWALL_SOURCE_DIR + "/tools/k8s/validate.py " + paths);
}

// Every document of a YAML file as a JSON array.
inline nlohmann::json yaml_documents(const std::string& path) {
  auto r = run(std::string(kPython) +
               " -c 'import sys, json, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None]))' " +
               path);
  if (r.status != 0) return nlohmann::json{{"error", r.out}};
  return nlohmann::json::parse(r.out, nullptr, false);
}

}  // namespace topowall::testing
