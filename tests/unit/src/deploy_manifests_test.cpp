// The Kubernetes manifests pass the API's schemas (offline) and keep their promises: the CRI socket
// read-only and no Docker socket on containerd and CRI-O nodes, least privilege, probes on the agent's
// health endpoints.
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "k8s_schema.hpp"

using topowall::testing::k8s_schema_missing;
using topowall::testing::k8s_validate;
using topowall::testing::yaml_documents;

namespace {
const std::string kDir = std::string(TOPOWALL_SOURCE_DIR) + "/deploy/kubernetes/";

const nlohmann::json* find_kind(const nlohmann::json& docs, const std::string& kind) {
  for (const auto& d : docs)
    if (d.value("kind", "") == kind) return &d;
  return nullptr;
}

std::string text_of(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
}  // namespace

TEST(DeployManifests, PassTheKubernetesSchemas) {
  if (auto why = k8s_schema_missing(); !why.empty()) GTEST_SKIP() << why;
  auto r = k8s_validate(kDir + "topowalld.yaml " + kDir + "topowalld-crio.yaml " + kDir + "topowalld-docker.yaml");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("9 objects, 0 problems"), std::string::npos) << r.out;
}

TEST(DeployManifests, CriNodesGetTheCriSocketReadOnlyAndLeastPrivilege) {
  if (auto why = k8s_schema_missing(); !why.empty()) GTEST_SKIP() << why;
  for (const auto& [file, socket_dir] : {std::pair{"topowalld.yaml", "/run/containerd"}, std::pair{"topowalld-crio.yaml", "/run/crio"}}) {
    SCOPED_TRACE(file);
    const auto text = text_of(kDir + file);
    EXPECT_EQ(text.find("docker.sock"), std::string::npos) << "a containerd or CRI-O node has no dockerd";
    auto docs = yaml_documents(kDir + file);
    ASSERT_TRUE(docs.is_array()) << docs.dump();
    const auto* sa = find_kind(docs, "ServiceAccount");
    ASSERT_TRUE(sa);
    EXPECT_EQ((*sa)["automountServiceAccountToken"], false) << "the agent never talks to the API server";
    const auto* ds = find_kind(docs, "DaemonSet");
    ASSERT_TRUE(ds);
    const auto& pod = (*ds)["spec"]["template"]["spec"];
    EXPECT_EQ(pod["hostNetwork"], true);
    EXPECT_EQ(pod.value("hostPID", false), false) << "CRI gives namespace paths: no host PID namespace";
    EXPECT_EQ(pod["serviceAccountName"], "topowalld");
    ASSERT_EQ(pod["containers"].size(), 1u);
    const auto& c = pod["containers"][0];
    const auto& sc = c["securityContext"];
    EXPECT_EQ(sc.value("privileged", true), false);
    EXPECT_EQ(sc.value("allowPrivilegeEscalation", true), false);
    EXPECT_EQ(sc.value("readOnlyRootFilesystem", false), true);
    EXPECT_EQ(sc["capabilities"]["drop"], nlohmann::json::array({"ALL"}));
    EXPECT_EQ(sc["capabilities"]["add"].get<std::set<std::string>>(), (std::set<std::string>{"NET_ADMIN", "SYS_ADMIN"}));
    // Each capability says why, on the line above it.
    for (const auto* cap : {"- NET_ADMIN", "- SYS_ADMIN"}) {
      const auto at = text.find(cap);
      ASSERT_NE(at, std::string::npos) << cap;
      const auto prev_end = text.rfind('\n', at);
      const auto prev = text.substr(text.rfind('\n', prev_end - 1) + 1, prev_end - text.rfind('\n', prev_end - 1) - 1);
      EXPECT_NE(prev.find('#'), std::string::npos) << cap << " has no comment saying why: " << prev;
    }
    // The socket's directory, read-only; the netns directory with propagation from the host; the config.
    std::map<std::string, nlohmann::json> mounts;
    for (const auto& m : c["volumeMounts"]) mounts[m["mountPath"]] = m;
    ASSERT_TRUE(mounts.count(socket_dir));
    EXPECT_EQ(mounts[socket_dir].value("readOnly", false), true);
    ASSERT_TRUE(mounts.count("/var/run/netns"));
    EXPECT_EQ(mounts["/var/run/netns"]["mountPropagation"], "HostToContainer");
    EXPECT_EQ(mounts["/var/run/netns"].value("readOnly", false), true);
    ASSERT_TRUE(mounts.count("/etc/topowall"));
    EXPECT_NE(c["args"].dump().find("--config=/etc/topowall/topowalld.conf"), std::string::npos);
    // Readiness is /healthz (503 until the ruleset is in the kernel); liveness on the same server.
    EXPECT_EQ(c["readinessProbe"]["httpGet"]["path"], "/healthz");
    EXPECT_EQ(c["readinessProbe"]["httpGet"]["port"], 9617);
    EXPECT_EQ(c["livenessProbe"]["httpGet"]["port"], 9617);
    const auto* cm = find_kind(docs, "ConfigMap");
    ASSERT_TRUE(cm);
    EXPECT_NE((*cm)["data"]["topowalld.conf"].get<std::string>().find(std::string("cri-socket = \"") + socket_dir),
              std::string::npos);
  }
}
