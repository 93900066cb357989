#!/usr/bin/env bash
# The whole test suite on a fresh machine: install, build, start the podman
# API service the end-to-end tests use, then run every test through ctest.
# Root-only tests skip (with the reason) when not run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then tools/install-deps.sh; fi
tools/build.sh
if [ "$(id -u)" = 0 ] && command -v podman >/dev/null; then
  source tools/lab/podman-env.sh
  topowall_podman_image
  topowall_podman_service
fi
cd build
ctest --output-on-failure --timeout 600 "$@"
