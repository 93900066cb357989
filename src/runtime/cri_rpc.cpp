#include "runtime/cri_rpc.hpp"

#include <grpcpp/grpcpp.h>

#include "cri/cri.grpc.pb.h"

namespace topowall::runtime {

namespace v1 = ::runtime::v1;

struct CriRpc::Stub {
  std::unique_ptr<v1::RuntimeService::Stub> stub;
};

namespace {
// A node with thousands of pods lists more than gRPC's default 4 MiB.
constexpr int kMaxMessage = 64 << 20;

Error rpc_error(const std::string& socket, const char* call, const grpc::Status& st) {
  std::string hint = st.error_code() == grpc::StatusCode::UNAVAILABLE
                         ? " (is containerd or CRI-O running, and is this its socket? check --cri-socket)"
                         : "";
  return Error{"CRI " + std::string(call) + " at " + socket + ": " + st.error_message() + hint,
               static_cast<int>(st.error_code())};
}
}  // namespace

CriRpc::CriRpc(std::string socket_path, std::chrono::milliseconds timeout)
    : socket_path_(std::move(socket_path)), timeout_(timeout), stub_(std::make_unique<Stub>()) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessage);
  // Reconnect quickly once the runtime is back (gRPC's default backoff grows to two minutes).
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  channel_ = grpc::CreateCustomChannel("unix://" + socket_path_, grpc::InsecureChannelCredentials(), args);
  stub_->stub = v1::RuntimeService::NewStub(channel_);
}

CriRpc::~CriRpc() = default;

Result<v1::VersionResponse> CriRpc::version() {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout_);
  v1::VersionRequest req;
  req.set_version("v1");
  v1::VersionResponse res;
  if (auto st = stub_->stub->Version(&ctx, req, &res); !st.ok()) return rpc_error(socket_path_, "Version", st);
  return res;
}

Result<std::vector<v1::PodSandbox>> CriRpc::list_ready() {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout_);
  v1::ListPodSandboxRequest req;
  req.mutable_filter()->mutable_state()->set_state(v1::SANDBOX_READY);
  v1::ListPodSandboxResponse res;
  if (auto st = stub_->stub->ListPodSandbox(&ctx, req, &res); !st.ok())
    return rpc_error(socket_path_, "ListPodSandbox", st);
  return std::vector<v1::PodSandbox>(res.items().begin(), res.items().end());
}

Result<v1::PodSandboxStatusResponse> CriRpc::status(const std::string& id, bool verbose) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout_);
  v1::PodSandboxStatusRequest req;
  req.set_pod_sandbox_id(id);
  req.set_verbose(verbose);
  v1::PodSandboxStatusResponse res;
  if (auto st = stub_->stub->PodSandboxStatus(&ctx, req, &res); !st.ok())
    return rpc_error(socket_path_, "PodSandboxStatus", st);
  return res;
}

Result<std::string> CriRpc::run(const v1::PodSandboxConfig& config) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 12 * timeout_);  // a pod start includes its network
  v1::RunPodSandboxRequest req;
  *req.mutable_config() = config;
  v1::RunPodSandboxResponse res;
  if (auto st = stub_->stub->RunPodSandbox(&ctx, req, &res); !st.ok())
    return rpc_error(socket_path_, "RunPodSandbox", st);
  return res.pod_sandbox_id();
}

Status CriRpc::stop(const std::string& id) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 12 * timeout_);
  v1::StopPodSandboxRequest req;
  req.set_pod_sandbox_id(id);
  v1::StopPodSandboxResponse res;
  if (auto st = stub_->stub->StopPodSandbox(&ctx, req, &res); !st.ok())
    return rpc_error(socket_path_, "StopPodSandbox", st);
  return ok_status();
}

Status CriRpc::remove(const std::string& id) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 12 * timeout_);
  v1::RemovePodSandboxRequest req;
  req.set_pod_sandbox_id(id);
  v1::RemovePodSandboxResponse res;
  if (auto st = stub_->stub->RemovePodSandbox(&ctx, req, &res); !st.ok())
    return rpc_error(socket_path_, "RemovePodSandbox", st);
  return ok_status();
}

Status CriRpc::follow_events(grpc::ClientContext& ctx,
                             const std::function<void(const v1::ContainerEventResponse&)>& on_event) {
  v1::GetEventsRequest req;
  auto reader = stub_->stub->GetContainerEvents(&ctx, req);
  v1::ContainerEventResponse ev;
  while (reader->Read(&ev)) on_event(ev);
  if (auto st = reader->Finish(); !st.ok()) return rpc_error(socket_path_, "GetContainerEvents", st);
  return Error{"CRI GetContainerEvents at " + socket_path_ + ": the runtime ended the stream", 0};
}

}  // namespace topowall::runtime
