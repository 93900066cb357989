#!/usr/bin/env bash
# The whole test suite on a fresh machine: install, build, start the podman
# API service the end-to-end tests use, then run every test through ctest;
# then the unit and integration tests again under ASan + UBSan.
# Root-only tests skip (with the reason) when not run as root.
# TOPOWALL_SANITIZERS=0 skips the sanitizer pass.
set -euo pipefail
cd "$(dirname "$0")/.."
phase() { echo "== $* (at ${SECONDS}s)"; }
if [ "$(id -u)" = 0 ]; then phase "installing dependencies"; tools/install-deps.sh; fi
phase "building"
tools/build.sh
if [ "$(id -u)" = 0 ] && command -v podman >/dev/null; then
  source tools/lab/podman-env.sh
  topowall_podman_image
  topowall_podman_service
fi
phase "running every test"
(cd build && ctest --output-on-failure --timeout 600 "$@")
if [ "${TOPOWALL_SANITIZERS:-1}" != 0 ]; then
  phase "building for AddressSanitizer + UndefinedBehaviorSanitizer"
  # Line tables only (-g1): traces keep file:line, and the build and its binaries are a fraction of -g.
  # Only what the unit and integration tests run is built (not the daemon, e2e or browser tests).
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O0 -g1" -DTOPOWALL_ASAN=ON \
    -DTOPOWALL_UBSAN=ON -DTOPOWALL_BUILD_BENCH=OFF >/dev/null
  targets=(topology_unit_tests agent_unit_tests cli_unit_tests options_unit_tests integration_tests topowall)
  for t in control graph state etcd runtime conntrack nflog rtnl nft; do targets+=("fuzz_$t"); done
  cmake --build build-asan -j"$(nproc)" --target "${targets[@]}" >/dev/null
  phase "unit and integration tests under the sanitizers"
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 ctest --output-on-failure --timeout 600 -L "unit|integration")
fi
phase "done"
