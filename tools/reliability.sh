#!/usr/bin/env bash
# The reliability matrix's long versions (docs/RELIABILITY.md), one command: the agent down 30 s after
# its SIGKILL, 200 kills during state saves. The suite runs the short versions. Root for the kill test.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${BUILD_DIR:-build}"
cmake --build "$build" -j"$(nproc)" --target topowalld topowall agent_unit_tests integration_tests >/dev/null
export TOPOWALL_RELIABILITY_LONG=1
"$build"/tests/agent_unit_tests --gtest_filter='Reliability*'
flock /tmp/topowall-kernel.lock "$build"/tests/integration_tests --gtest_filter='*Reliability*'
