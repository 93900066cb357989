// Blocking CRI (runtime.v1) calls over the runtime's unix socket, each with a deadline. Never called on the
// agent's event loop: CriClient runs them on its own thread. Tests and the benchmark use the same client to
// drive the runtime as the kubelet would (RunPodSandbox and friends).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "topowall/result.hpp"

namespace grpc {
class Channel;
class ClientContext;
}  // namespace grpc

namespace runtime::v1 {
class PodSandbox;
class PodSandboxConfig;
class PodSandboxStatusResponse;
class VersionResponse;
class ContainerEventResponse;
}  // namespace runtime::v1

namespace topowall::runtime {

class CriRpc {
 public:
  // Connects lazily: a runtime that is not there yet is an error of the first call, not of this one.
  explicit CriRpc(std::string socket_path, std::chrono::milliseconds timeout = std::chrono::seconds(5));
  ~CriRpc();

  [[nodiscard]] Result<::runtime::v1::VersionResponse> version();
  // The ready sandboxes.
  [[nodiscard]] Result<std::vector<::runtime::v1::PodSandbox>> list_ready();
  [[nodiscard]] Result<::runtime::v1::PodSandboxStatusResponse> status(const std::string& id, bool verbose);
  // Kubelet's side, for tests and the benchmark.
  [[nodiscard]] Result<std::string> run(const ::runtime::v1::PodSandboxConfig& config);
  [[nodiscard]] Status stop(const std::string& id);
  [[nodiscard]] Status remove(const std::string& id);

  // Follows GetContainerEvents until it ends, calling `on_event` for each (on the calling thread). The
  // error's `code` is the gRPC status code (12: UNIMPLEMENTED, containerd 1.6). `ctx` may be cancelled
  // from another thread (TryCancel) to end the call.
  [[nodiscard]] Status follow_events(grpc::ClientContext& ctx,
                                     const std::function<void(const ::runtime::v1::ContainerEventResponse&)>& on_event);

  const std::string& socket_path() const { return socket_path_; }

 private:
  struct Stub;
  std::string socket_path_;
  std::chrono::milliseconds timeout_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Stub> stub_;
};

}  // namespace topowall::runtime
