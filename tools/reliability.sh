#!/usr/bin/env bash
# The reliability matrix's long versions (docs/RELIABILITY.md), one command: the agent down 30 s after
# its SIGKILL, 1,000 rule updates under a probe of every pair, 500 container cycles on a reused address
# (podman: tools/test.sh starts its API service and builds the image), 200 kills during state saves.
# The suite runs the short versions. Root for the kernel and podman tests.
# Tests are picked by name through ctest, whichever test binary holds them.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${BUILD_DIR:-build}"
cmake --build "$build" -j2 >/dev/null
export TOPOWALL_RELIABILITY_LONG=1
cd "$build"
flock /tmp/topowall-kernel.lock ctest --output-on-failure --timeout 3000 -R Reliability
