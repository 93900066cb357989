#!/usr/bin/env bash
# Sourced by the lab and the tests: podman configured for this machine class,
# a local busybox image (nothing can be pulled), and the Docker-API service.
# Exports CONTAINERS_CONF and TOPOWALL_RUNTIME_SOCKET.
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export CONTAINERS_CONF="$repo/deploy/podman/containers.conf"
export TOPOWALL_IMAGE="localhost/topowall-busybox:1"
export TOPOWALL_RUNTIME_SOCKET="/run/topowall-lab/podman.sock"

topowall_podman_image() {
  podman image exists "$TOPOWALL_IMAGE" && return 0
  local root
  root="$(mktemp -d)"
  mkdir -p "$root/bin" "$root/tmp" "$root/www"
  cp /bin/busybox "$root/bin/busybox"
  for a in sh nc ping sleep ip cat echo ls httpd nslookup kill timeout; do ln -sf busybox "$root/bin/$a"; done
  echo ok > "$root/www/index.html"
  tar -C "$root" -cf "$root.tar" .
  podman import --change 'CMD ["/bin/sh"]' "$root.tar" "$TOPOWALL_IMAGE" >/dev/null
  rm -rf "$root" "$root.tar"
}

topowall_podman_service() {
  mkdir -p "$(dirname "$TOPOWALL_RUNTIME_SOCKET")"
  if [ -S "$TOPOWALL_RUNTIME_SOCKET" ] && curl -s --max-time 2 --unix-socket "$TOPOWALL_RUNTIME_SOCKET" http://d/_ping >/dev/null 2>&1; then
    return 0
  fi
  rm -f "$TOPOWALL_RUNTIME_SOCKET"
  nohup podman system service --time=0 "unix://$TOPOWALL_RUNTIME_SOCKET" >/tmp/topowall-podman-service.log 2>&1 &
  for _ in $(seq 1 100); do
    [ -S "$TOPOWALL_RUNTIME_SOCKET" ] && return 0
    sleep 0.1
  done
  echo "podman system service did not start; see /tmp/topowall-podman-service.log" >&2
  return 1
}
