#!/usr/bin/env bash
# Installs what topowall needs to build, test and run its lab on Debian 12.
# --fuzz also installs clang and libFuzzer, which only tools/fuzz/run.sh needs (not CI).
set -euo pipefail
packages=(
  build-essential cmake pkg-config git
  libnl-3-dev libnl-route-3-dev libmnl-dev libnftnl-dev
  libboost-dev libboost-system-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libcli11-dev libssl-dev libabsl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  nftables conntrack iproute2 kmod busybox-static iperf3 curl
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  podman runc containerd containernetworking-plugins etcd-server etcd-client openssl util-linux
  chromium fonts-dejavu-core
  python3-kubernetes python3-yaml
)
if [ "${1:-}" = --fuzz ]; then packages+=(clang libclang-rt-dev); fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
