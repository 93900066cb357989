#!/usr/bin/env bash
# A throwaway containerd with its CRI plugin, for the CRI end-to-end test and benchmark: its own root,
# state and socket under DIR, its own CNI bridge network, and a local pause image (busybox-static running
# `sleep inf`: no registry). containerd runs inside network namespace NETNS so its bridge and conntrack
# stay apart from the host's. Root only; run under the kernel lock.
#   cri-lab.sh up DIR NETNS SUBNET   e.g. up /tmp/twcri-1 twcri-1 10.89.79   (prints nothing; socket DIR/cri.sock)
#   cri-lab.sh down DIR NETNS        stops containerd (pods must already be removed) and removes everything
set -euo pipefail
cmd=$1 dir=$2 netns=$3
image=localhost/topowall-pause:1

pause_image() {  # a one-layer OCI archive, imported into containerd's k8s.io namespace
  local b=$dir/image
  mkdir -p "$b/rootfs/bin" "$b/blobs/sha256"
  cp /bin/busybox "$b/rootfs/bin/busybox"
  for t in sh sleep nc cat; do ln -sf busybox "$b/rootfs/bin/$t"; done
  tar -C "$b/rootfs" --owner=0 --group=0 --mtime=@0 -cf "$b/layer.tar" bin
  local layer; layer=$(sha256sum <"$b/layer.tar" | cut -d' ' -f1)
  mv "$b/layer.tar" "$b/blobs/sha256/$layer"
  printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/bin/sleep","inf"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$layer" >"$b/config.json"
  local cfg; cfg=$(sha256sum <"$b/config.json" | cut -d' ' -f1)
  mv "$b/config.json" "$b/blobs/sha256/$cfg"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%d}]}' \
    "$cfg" "$(stat -c%s "$b/blobs/sha256/$cfg")" "$layer" "$(stat -c%s "$b/blobs/sha256/$layer")" >"$b/manifest.json"
  local man; man=$(sha256sum <"$b/manifest.json" | cut -d' ' -f1)
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"1"}}]}' \
    "$man" "$(stat -c%s "$b/manifest.json")" "$image" >"$b/index.json"
  mv "$b/manifest.json" "$b/blobs/sha256/$man"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$b/oci-layout"
  tar -C "$b" -cf "$dir/pause.tar" oci-layout index.json blobs
  ctr --address "$dir/cri.sock" -n k8s.io images import "$dir/pause.tar" >/dev/null
}

up() {
  local subnet=$4
  mkdir -p "$dir/cni" "$dir/ipam"
  cat >"$dir/cni/10-twcri.conflist" <<JSON
{"cniVersion":"1.0.0","name":"twcri","plugins":[{"type":"bridge","bridge":"twcri0","isGateway":true,"ipMasq":false,
 "ipam":{"type":"host-local","dataDir":"$dir/ipam","ranges":[[{"subnet":"$subnet.0/24","rangeStart":"$subnet.10","rangeEnd":"$subnet.250"}]]}}]}
JSON
  cat >"$dir/config.toml" <<TOML
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]
[grpc]
  address = "$dir/cri.sock"
[ttrpc]
  address = "$dir/cri.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$image"
  restrict_oom_score_adj = true
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
TOML
  ip netns add "$netns"
  ip -n "$netns" link set lo up
  # Bridged pod-to-pod traffic must reach the inet hooks (the agent's table) in this namespace too.
  modprobe br_netfilter 2>/dev/null || true
  ip netns exec "$netns" sysctl -qw net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1 || true
  # nsenter, not `ip netns exec`: that remounts /sys, and runc then finds no cgroup mount.
  nsenter --net="/run/netns/$netns" setsid containerd --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 </dev/null &
  echo $! >"$dir/containerd.pid"
  for _ in $(seq 100); do
    ctr --address "$dir/cri.sock" version >/dev/null 2>&1 && break
    sleep 0.1
  done
  pause_image
}

down() {
  if [ -f "$dir/containerd.pid" ]; then
    local pid; pid=$(cat "$dir/containerd.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  # Whatever a failed test left: shims of this containerd (their sockets are under /run/containerd/s).
  local f
  for f in $(grep -l -s -F -- "$dir/cri.sock" /proc/[0-9]*/cmdline); do
    f=${f#/proc/}; kill -9 "${f%/cmdline}" 2>/dev/null || true
  done
  grep -s " $dir/" /proc/mounts | cut -d' ' -f2 | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  ip netns del "$netns" 2>/dev/null || true
  rm -rf "$dir"
}

case $cmd in
  up) up "$@" ;;
  down) down ;;
  *) echo "usage: $0 up DIR NETNS SUBNET | down DIR NETNS" >&2; exit 2 ;;
esac
