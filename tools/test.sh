#!/usr/bin/env bash
# The whole test suite on a fresh machine: install, build, start the podman
# API service the end-to-end tests use, then run every test through ctest;
# then the unit and integration tests again under ASan + UBSan.
# Root-only tests skip (with the reason) when not run as root.
# TOPOWALL_SANITIZERS=0 skips the sanitizer pass.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then tools/install-deps.sh; fi
tools/build.sh
if [ "$(id -u)" = 0 ] && command -v podman >/dev/null; then
  source tools/lab/podman-env.sh
  topowall_podman_image
  topowall_podman_service
fi
(cd build && ctest --output-on-failure --timeout 600 "$@")
if [ "${TOPOWALL_SANITIZERS:-1}" != 0 ]; then
  echo "== unit and integration tests under AddressSanitizer + UndefinedBehaviorSanitizer"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTOPOWALL_ASAN=ON -DTOPOWALL_UBSAN=ON \
    -DTOPOWALL_BUILD_BENCH=OFF >/dev/null
  cmake --build build-asan -j"$(nproc)" >/dev/null
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 ctest --output-on-failure --timeout 600 -L "unit|integration")
fi
