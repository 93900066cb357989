// A CRI verbose PodSandboxStatus answer as a Sandbox. Apart from cri_sandbox.hpp because it names the
// generated protobuf types, whose C++ namespace (::runtime, from the CRI package runtime.v1) would be
// ambiguous with topowall::runtime wherever `using namespace topowall` is in force.
#pragma once

#include "runtime/cri_sandbox.hpp"

namespace runtime::v1 {
class PodSandboxStatusResponse;
}

namespace topowall::runtime {

// A ready sandbox from a verbose status answer; an error says what was wrong (the pod is then skipped).
[[nodiscard]] Result<Sandbox> sandbox_from_status(const ::runtime::v1::PodSandboxStatusResponse& r);

}  // namespace topowall::runtime
