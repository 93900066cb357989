#!/usr/bin/env bash
# Builds the fuzz targets of tests/fuzz with clang + libFuzzer + ASan + UBSan (into build-fuzz) and runs
# each target, or one, for the given time, one after the other. Not run in CI: CI replays the committed
# corpora (ctest -L unit). Crashes, hangs and out-of-memory inputs are kept under build-fuzz/findings/.
#   tools/fuzz/run.sh [all|control|graph|state|etcd|runtime|conntrack|nflog|rtnl|nft] [seconds per target]
# JOBS (default 2) sets the build's parallelism.
set -euo pipefail
cd "$(dirname "$0")/../.."
which=${1:-all}
secs=${2:-60}
all=(control graph state etcd runtime conntrack nflog rtnl nft)
if [ "$which" = all ]; then targets=("${all[@]}"); else targets=("$which"); fi
for t in "${targets[@]}"; do
  [[ " ${all[*]} " == *" $t "* ]] || { echo "no fuzz target '$t' (one of: ${all[*]})" >&2; exit 2; }
done
if [ "$(id -u)" = 0 ]; then tools/install-deps.sh --fuzz; fi
command -v clang++ >/dev/null || { echo "clang++ missing: run tools/install-deps.sh --fuzz as root" >&2; exit 2; }

CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTOPOWALL_FUZZ=ON \
  -DTOPOWALL_WERROR=OFF -DTOPOWALL_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz -j"${JOBS:-2}" --target "${targets[@]/#/fuzz_}"

# Bytes per input: a netlink datagram fits a page or two (the listeners read 8-64 KiB); a JSON document
# gets room for every kind of field many times over (the schema's own limits are far lower).
max_len() {
  case $1 in
    conntrack|nflog|rtnl|nft) echo 8192 ;;
    control) echo 16384 ;;
    *) echo 65536 ;;
  esac
}

status=0
printf '%-10s %8s %10s %8s %8s  %s\n' target seconds execs/s cov ft findings
for t in "${targets[@]}"; do
  corpus=build-fuzz/corpus/$t        # grows here; the committed seeds are only read
  findings=build-fuzz/findings/$t
  log=build-fuzz/findings/$t.log
  mkdir -p "$corpus" "$findings"
  before=$(find "$findings" -type f | wc -l)
  # -rss_limit_mb: the whole process; -malloc_limit_mb: any one allocation (an unbounded one is a finding).
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 UBSAN_OPTIONS=print_stacktrace=1 \
    build-fuzz/tests/fuzz/fuzz_"$t" "$corpus" tests/fuzz/corpus/"$t" \
    -max_total_time="$secs" -max_len="$(max_len "$t")" -rss_limit_mb=2048 -malloc_limit_mb=256 -timeout=10 \
    -artifact_prefix="$findings/" -print_final_stats=1 >"$log" 2>&1 || true
  after=$(find "$findings" -type f | wc -l)
  execs=$(sed -n 's/^stat::average_exec_per_sec:[[:space:]]*//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  new=$((after - before))
  printf '%-10s %8s %10s %8s %8s  %s\n' "$t" "$secs" "${execs:-?}" "${cov:-?}" "${ft:-?}" \
    "$([ "$new" = 0 ] && echo none || echo "$new new in $findings (log: $log)")"
  [ "$new" = 0 ] || status=1
done
exit $status
