#!/usr/bin/env bash
# The reliability matrix's long versions (docs/RELIABILITY.md), one command: the agent down 30 s after
# its SIGKILL, 1,000 rule updates under a probe of every pair, 500 container cycles on a reused address,
# 200 kills during state saves, the runtime API down 30 s and stalled 40 s, etcd down 30 s.
# The suite runs the short versions. Root for the kernel, podman and etcd tests (they skip otherwise).
# Tests are picked by name through ctest, whichever test binary holds them.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${BUILD_DIR:-build}"
cmake --build "$build" -j2 >/dev/null
if [ "$(id -u)" = 0 ] && command -v podman >/dev/null; then  # item 5 runs against the podman API service
  source tools/lab/podman-env.sh
  topowall_podman_image
  topowall_podman_service
fi
export TOPOWALL_RELIABILITY_LONG=1
cd "$build"
flock /tmp/topowall-kernel.lock ctest --output-on-failure --timeout 3000 -R Reliability
