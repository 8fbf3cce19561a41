#!/bin/busybox sh
# /init of the arm64 test guest (`cargo xtask test-arm64`). It only runs commands and
# collects what they leave in /out; the host judges it. Every file of /out goes back
# over the serial console between "@@FILE name size" and "@@END" lines, base64-encoded.
# Each case's commands are bounded by `timeout`, so a hang fails the case, not the run.
/bin/busybox mkdir -p /proc /sys /dev /tmp /out /usr/bin /sbin
/bin/busybox --install -s /bin
export PATH=/bin:/w
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs tmp /tmp
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
echo "@@GUEST kernel $(uname -r) $(uname -m) btf=$(test -e /sys/kernel/btf/vmlinux && echo yes || echo no) cpus=$(nproc)"

# The workload of the host's launch-mode tests (tracer/tests/integration/harness WORKLOAD_ARGS, whose
# DONE_LINE the host checks), with a quarter of the live set and 4 s instead of 3:
# emulated, the default makes only 12-18 cycles, too few for the 95 % agreement rule to
# tolerate one cycle disturbed by the host's load or by the first probe hits' cost.
LAUNCH_ARGS="-duration 4s -live-slots 1024 -forced 5 -readmemstats 20"
CASE_TIMEOUT=240

# case NAME: a fresh /out/NAME to work in.
case_dir() {
    mkdir -p "/out/$1"
    cd "/out/$1" || exit 1
    echo "@@GUEST case $1 start $(date +%s)"
}

# done_case NAME STATUS: the status the host checks, and the end of the case.
done_case() {
    echo "$2" > "/out/$1/status"
    echo "@@GUEST case $1 status $2 end $(date +%s)"
    cd /
}

# launch NAME GCLOAD [ENV=VALUE...]: the tracer starts gcload (launch mode, --format json,
# a recording), with the workload's own GODEBUG=gctrace=1 lines on stderr and its
# MemStats in memstats.json.
launch() {
    name=$1 gcload=$2
    shift 2
    case_dir "$name"
    env GODEBUG=gctrace=1 "$@" timeout $CASE_TIMEOUT gctrace-bpf --format json --output trace.json \
        --record rec.gct -- "$gcload" $LAUNCH_ARGS -memstats-out memstats.json \
        > stdout 2> stderr
    status=$?
    timeout 60 gctrace-bpf replay --format json rec.gct > replay.json 2> replay.stderr
    echo $? > replay.status
    done_case "$name" $status
}

# allocs NAME [ENV=VALUE...]: --allocs exact on gcload -hotspot (Go 1.27), and the
# kernel's own account of the tracer's probes while attached: its BPF links (fdinfo
# link_type: one uprobe_multi link, or one perf link per uprobe site) and its fds.
allocs() {
    name=$1
    shift
    case_dir "$name"
    env "$@" timeout $CASE_TIMEOUT gctrace-bpf --allocs exact --format json --output trace.json \
        --pprof allocs.pb.gz -- /w/gcload-go1.27 -duration 3s -goroutines 4 -hotspot \
        -memstats-out memstats.json > stdout 2> stderr &
    tracer=$!
    # The tracer's start-up takes seconds under emulation: snapshot once a second while
    # it runs and keep the snapshot with the most BPF links (all probes attached).
    : > links
    while kill -0 $tracer 2>/dev/null; do
        for fd in /proc/$tracer/fdinfo/*; do
            grep -h '^link_type' "$fd" 2>/dev/null
        done > links.now
        for fd in /proc/$tracer/fd/*; do
            readlink "$fd"
        done > fds.now
        if [ "$(wc -l < links.now)" -gt "$(wc -l < links)" ]; then
            mv links.now links
            mv fds.now fds
        fi
        sleep 1
    done
    rm -f links.now fds.now
    wait $tracer
    done_case "$name" $?
}

# attach NAME GCLOAD: gcload -forever runs untraced for a second, the tracer attaches
# by pid for 4 s and detaches; the workload must still be alive, then exit 0 on SIGTERM.
attach() {
    name=$1 gcload=$2
    case_dir "$name"
    env GODEBUG=gctrace=1 "$gcload" -forever > workload.stdout 2> workload.stderr &
    workload=$!
    sleep 1
    timeout $CASE_TIMEOUT gctrace-bpf --pid $workload --format json --output trace.json \
        --duration 4 > stdout 2> stderr
    status=$?
    if kill -0 $workload 2>/dev/null; then echo alive; else echo dead; fi > alive_after
    sleep 1
    kill -TERM $workload
    wait $workload
    echo $? > workload.status
    echo $workload > workload.pid
    done_case "$name" $status
}

launch launch-go1.19 /w/gcload-go1.19
launch launch-go1.27 /w/gcload-go1.27
attach attach-go1.27 /w/gcload-go1.27
attach attach-stripped-go1.27 /w/gcload-go1.27-stripped
allocs allocs-exact-multi-go1.27
allocs allocs-exact-per-site-go1.27 GCTRACE_NO_UPROBE_MULTI=1

cd /out
for f in $(find . -type f | sort); do
    echo "@@FILE ${f#./} $(wc -c < "$f")"
    base64 "$f"
    echo "@@END"
done
echo "@@GUEST done"
sync
poweroff -f
