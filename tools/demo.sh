#!/usr/bin/env bash
# The main job on a fresh machine: install, build, then run topowalld on a demo
# lab of real podman containers. It learns their topology from live traffic,
# prints the radar, switches to enforce, and shows a blocked flow by name.
# Everything it creates is named topowall-demo* and removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root: the agent programs nftables and reads conntrack" >&2; exit 1; }
tools/install-deps.sh
[ -n "${TOPOWALL_DEMO_SKIP_BUILD:-}" ] || tools/build.sh  # set it when build/ is already up to date
source tools/lab/podman-env.sh
topowall_podman_image
topowall_podman_service

work="$(mktemp -d /tmp/topowall-demo.XXXXXX)"
sock="$work/topowall.sock"
net=topowall-demo
agent_pid=""
cleanup() {
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
  podman rm -f -t 0 $(podman ps -aq --filter label=topowall-demo=1) >/dev/null 2>&1 || true
  podman network rm -f "$net" >/dev/null 2>&1 || true
  build/src/topowalld --uninstall --table topowall_demo >/dev/null 2>&1 || true
  cp "$work/agent.log" /tmp/topowall-demo-agent.log 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

podman network rm -f "$net" >/dev/null 2>&1 || true
podman network create --disable-dns --subnet 10.89.77.0/24 "$net" >/dev/null
run() { # name, app label, command, namespace (the radar's island)
  podman run -d --name "$1" --network "$net" --label topowall-demo=1 --label "app=$2" --label "namespace=${4:-shop}" \
    "$TOPOWALL_IMAGE" sh -c "$3" >/dev/null
}
run topowall-demo-web-1 web "sleep 3600"
run topowall-demo-web-2 web "sleep 3600"
run topowall-demo-api api "httpd -f -p 8080 -h /www"
run topowall-demo-db db "nc -ll -p 5432 -e cat" data
ip_of() { podman inspect -f '{{(index .NetworkSettings.Networks "'"$net"'").IPAddress}}' "$1"; }

echo "== starting topowalld (learn mode)"
build/src/topowalld --state-dir "$work/state" --socket "$sock" --runtime-socket "$TOPOWALL_RUNTIME_SOCKET" \
  --table topowall_demo --learn-for 10m --no-discover-netns --alert-sink log \
  --metrics-listen 127.0.0.1:19617 2>"$work/agent.log" &
agent_pid=$!
tw() { build/tools/cli/topowall --socket "$sock" "$@"; }
for _ in $(seq 1 50); do tw status -o json 2>/dev/null | grep -q '"discovery_synced": true' && break; sleep 0.1; done

echo "== generating traffic"
api=$(ip_of topowall-demo-api); db=$(ip_of topowall-demo-db)
for c in topowall-demo-web-1 topowall-demo-web-2; do
  podman exec "$c" sh -c "echo GET / | nc -w 2 $api 8080 >/dev/null; ping -c1 -W1 $api >/dev/null" || true
done
podman exec topowall-demo-api sh -c "echo hi | nc -w 1 $db 5432 >/dev/null" || true
sleep 1

echo; echo "== workloads"; tw workloads
echo; echo "== learned topology"; tw edges list
echo; echo "== graphviz"; tw topology export --format dot

echo; echo "== enforce: a flow outside the graph (db -> api) is blocked and named"
tw mode enforce >/dev/null
podman exec topowall-demo-db sh -c "echo GET / | nc -w 1 $api 8080 >/dev/null" && echo "unexpected: allowed" || echo "db -> api blocked"
podman exec topowall-demo-web-1 sh -c "echo GET / | nc -w 2 $api 8080 >/dev/null" && echo "web -> api still allowed"
sleep 0.5
echo; echo "== pending flows"; tw flows pending
echo; echo "== alerts in the agent log"; grep "alert:" "$work/agent.log" || true
echo; echo "== Prometheus metrics (a few of them; http://127.0.0.1:19617/metrics)"
curl -s http://127.0.0.1:19617/metrics | grep -E '^topowall_(mode\{mode="enforce"\}|workloads|edges|pending|alerts_total|conntrack_flows_total|ctmark_taken_total) ' || true
echo; tw status
echo; echo "== the radar: http://127.0.0.1:19617/radar (live while the agent runs)"
tw topology export --format html >/tmp/topowall-demo-radar.html
echo "   the same page as one file, for after the demo: /tmp/topowall-demo-radar.html"
if [ -n "${TOPOWALL_DEMO_SCREENSHOT:-}" ] && command -v chromium >/dev/null; then
  # The live page, as a browser draws it (the model arrives over its event stream; the stream never
  # ends, so the shot is taken after 5 s rather than at an idle network).
  timeout 60 chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,820 \
    --timeout=5000 --screenshot="$TOPOWALL_DEMO_SCREENSHOT" http://127.0.0.1:19617/radar 2>/dev/null || true
  echo "   screenshot: $TOPOWALL_DEMO_SCREENSHOT"
fi
if [ -n "${TOPOWALL_DEMO_HOLD:-}" ]; then
  echo "   keeping the agent up for ${TOPOWALL_DEMO_HOLD}s (TOPOWALL_DEMO_HOLD)"; sleep "$TOPOWALL_DEMO_HOLD"
fi
