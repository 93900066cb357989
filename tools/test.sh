#!/usr/bin/env bash
# The whole test suite on a fresh machine: install, build, start the podman
# API service the end-to-end tests use, then run every test through ctest;
# then the unit tests (and the fuzz corpora's replays) again under ASan + UBSan.
# Root-only tests skip (with the reason) when not run as root.
# TOPOWALL_SANITIZERS=0 skips the sanitizer pass; TOPOWALL_SANITIZERS=full also runs the integration
# tests (real kernel, etcd) under the sanitizers: about ten more minutes, too many for CI's 30.
set -euo pipefail
cd "$(dirname "$0")/.."
phase() { echo "== $* (at ${SECONDS}s)"; }
if [ "$(id -u)" = 0 ]; then phase "installing dependencies"; tools/install-deps.sh; fi
phase "building"
# Line tables only (-g1): the same code and optimisation as users build, at a fraction of the compile time.
# Unity-built libraries: about 40 % less compile CPU (TOPOWALL_UNITY in CMakeLists.txt).
tools/build.sh -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" -DTOPOWALL_UNITY=ON
sanitizers="${TOPOWALL_SANITIZERS:-1}"
if [ "$sanitizers" != 0 ]; then
  # The sanitizer build runs at the lowest priority while the first pass runs: that pass mostly waits on the
  # kernel, containers and timeouts, so the build uses idle CPU instead of a quarter of the run.
  # Line tables only (-g1): traces keep file:line, and the build and its binaries are a fraction of -g.
  # Only what the sanitized tests run is built (not the daemon, e2e or browser tests).
  asan_target=unit_tests asan_labels=unit
  if [ "$sanitizers" = full ]; then asan_target=unit_and_integration_tests asan_labels="unit|integration"; fi
  (cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O0 -g1" -DTOPOWALL_ASAN=ON \
     -DTOPOWALL_UBSAN=ON -DTOPOWALL_BUILD_BENCH=OFF -DTOPOWALL_UNITY=ON &&
   nice -n 19 cmake --build build-asan -j"$(nproc)" --target "$asan_target") >build-asan.log 2>&1 &
  asan_build=$!
fi
if [ "$(id -u)" = 0 ] && command -v podman >/dev/null; then
  source tools/lab/podman-env.sh
  topowall_podman_image
  topowall_podman_service
fi
phase "running every test (the sanitizer build goes on at low priority)"
status=0
# Two at a time: unit and browser tests share the cores; the kernel tests are RUN_SERIAL, so they run alone.
(cd build && ctest -j"$(nproc)" --output-on-failure --timeout 600 "$@") || status=$?
if [ "$sanitizers" != 0 ]; then
  phase "waiting for the AddressSanitizer + UndefinedBehaviorSanitizer build"
  if ! wait "$asan_build"; then
    tail -n 60 build-asan.log
    echo "the sanitizer build failed (whole log: build-asan.log)" >&2
    exit 1
  fi
  phase "tests labelled '$asan_labels' under the sanitizers"
  # Two at a time: the kernel tests are RUN_SERIAL, so they still run alone.
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 ctest -j"$(nproc)" --output-on-failure --timeout 600 -L "$asan_labels") || status=$?
fi
phase "done"
exit "$status"
