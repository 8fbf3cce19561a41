#!/usr/bin/env bash
# The cost of `gctrace-bpf --all` while short-lived Go programs start and exit:
#   sudo workloads/churn-bench.sh RATE_PER_MIN SECONDS [LIFE]
# starts gcload (light: one goroutine) every 60/RATE s, each living LIFE (default 1.5s),
# for SECONDS, inside a cgroup of its own that `--all --cgroup` is narrowed to; prints
# the tracer's CPU (share of one core over the window, from /proc/PID/stat), its peak
# and final RSS, and how many of the started processes got a `process` and a `summary`
# record, and the events lost. Needs the tracer built (cargo xtask build) and gcload
# (any test run builds it under target/gcload-cache).
set -euo pipefail
rate=${1:?rate per minute}; secs=${2:?seconds}; life=${3:-1.5s}
root=$(cd "$(dirname "$0")/.." && pwd)
tracer=$root/target/release/gctrace-bpf
gcload=$(ls -t "$root"/target/gcload-cache/*/gcload | head -1)
cg2=$(awk '$9 == "cgroup2" {print $5; exit}' /proc/self/mountinfo)
name=gctrace-churn-$$.slice
mkdir -p "$cg2/$name/run.scope"
work=$(mktemp -d)
trap 'kill $tpid 2>/dev/null || true; sleep 1; rmdir "$cg2/$name/run.scope" "$cg2/$name" 2>/dev/null || true' EXIT
"$tracer" --all --cgroup "/$name" --max-processes 256 --format json --output "$work/out.ndjson" 2>"$work/tracer.err" &
tpid=$!
sleep 2
ticks() { awk '{print $14 + $15}' "/proc/$tpid/stat"; }
hz=$(getconf CLK_TCK)
t0=$(ticks); s0=$(date +%s.%N)
interval=$(awk -v r="$rate" 'BEGIN {printf "%.4f", 60 / r}')
n=$(awk -v r="$rate" -v s="$secs" 'BEGIN {printf "%d", r * s / 60}')
for ((i = 0; i < n; i++)); do
  sh -c "echo \$\$ > '$cg2/$name/run.scope/cgroup.procs' && exec '$gcload' -duration $life -goroutines 1 -batch-bytes 16384" >/dev/null 2>&1 &
  sleep "$interval"
done
wait_children() { for p in $(jobs -p); do [ "$p" = "$tpid" ] || wait "$p" 2>/dev/null || true; done; }
wait_children
sleep 2
t1=$(ticks); s1=$(date +%s.%N)
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$tpid/status"); rss=$(awk '/VmRSS/ {print $2}' "/proc/$tpid/status")
kill -TERM $tpid; wait $tpid || true
procs=$(grep -c '"type":"process"' "$work/out.ndjson" || true)
sums=$(grep -c '"type":"summary"' "$work/out.ndjson" || true)
lost=$(grep '"type":"summary"' "$work/out.ndjson" | sed 's/.*"lost_events":\([0-9]*\).*/\1/' | awk '{s += $1} END {print s + 0}')
cpu=$(awk -v a="$t0" -v b="$t1" -v x="$s0" -v y="$s1" -v hz="$hz" 'BEGIN {printf "%.2f", 100 * (b - a) / hz / (y - x)}')
echo "rate=$rate/min started=$n life=$life traced=$procs summaries=$sums lost_events=$lost tracer_cpu=${cpu}% peak_rss=$((hwm / 1024))MiB rss_end=$((rss / 1024))MiB"
if [ -n "${KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
