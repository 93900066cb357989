#!/usr/bin/env bash
# The benchmark suite, one command: builds, starts the podman API service for
# the container-start figure, runs every section and writes docs/BENCHMARKS.md.
# Pass --smoke for the quick check CI runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
tools/install-deps.sh
tools/build.sh
source tools/lab/podman-env.sh
topowall_podman_image
topowall_podman_service
report=docs/BENCHMARKS.md
# A smoke run or a single section must not overwrite the full report.
for a in "$@"; do case "$a" in --smoke) report=/tmp/topowall-bench-smoke.md ;; --only*) report=/tmp/topowall-bench-section.md ;; esac; done
build/tools/bench/topowall-bench --agent build/src/topowalld --cli build/tools/cli/topowall --report "$report" "$@"
echo "report: $report"
