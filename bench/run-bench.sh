#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The benchmarks of bench/README.md, end to end, on loopback:
#
#   bench/run-bench.sh [--builddir DIR] [--devices N] [--runs K] [--concurrency C]
#                      [--bursts B] [--rss "1000 10000"] [--durable-devices N]
#                      [--durable-large "FLOATS N"] [--durable-runs K]
#                      [--tls-devices N] [--tls-large "FLOATS N"] [--tls-runs K]
#                      [--only ingest|rss|aggregate|durability|tls]
#
# 1. updateModel ingest: a fresh fl-schedulerd + one fl-serverd (admit N
#    devices, post their N updates) and bench-http-discard (the HTTP stack
#    alone), the updates in B bursts each after as many discarded requests;
#    K runs.
# 2. Peak RSS of fl-serverd (VmHWM) with 1,000 and with 10,000 devices in
#    one iteration, each on a fresh cluster; PASS when the growth < 10%.
# 3. The aggregation kernel against memcpy (bench-aggregate).
# 4. The cost of the durable update log: updateModel throughput of
#    fl-serverd with --durable_updates=true and =false, each on a fresh
#    cluster, in K pairs, for LeNet-5 (N updates) and a larger model
#    (FLOATS floats, N updates; "0 0" skips it).
# 5. What TLS costs: updateModel throughput over HTTPS and over clear HTTP,
#    each on a fresh cluster (with and without enable_ssl), in K pairs, for
#    LeNet-5 (N updates) and a model of FLOATS floats; on each cluster, new
#    device connections one after another (the handshake's cost); and the
#    ring all-reduce over TLS and clear TCP (bench-allreduce --tls).
# Prints a summary table at the end; exits 1 when the RSS target FAILs.
# Builds nothing: build the tree first (the programs are noinst, built by a
# plain `make`).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
builddir=${FL_BUILDDIR:-$top/_build}
devices=10000
runs=3
rss_devices="1000 10000"
only=""
rss_failed=0
concurrency=64
bursts=5
wait_s=60               # every wait for a daemon is bounded by this
rss_limit_pct=10
durable_devices=5000    # LeNet-5 updates per durability run
durable_large_floats=1000000
durable_large_devices=200
durable_runs=3
tls_devices=2000        # LeNet-5 updates per TLS run
tls_large_floats=1000000
tls_large_devices=200
tls_runs=3
tls_connections=300     # new connections per handshake measurement
cluster_tls=""          # a configuration file with enable_ssl for the next cluster_start
cluster_model=""        # the model of the next cluster_start (default LeNet-5)
cluster_server_opts=""  # more fl-serverd options of the next cluster_start

usage() {
        sed -n '3,23s/^# \{0,1\}//p' "$0"
}

while [ $# -gt 0 ]; do
        case $1 in
        --builddir) builddir=$2; shift 2 ;;
        --devices) devices=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --concurrency) concurrency=$2; shift 2 ;;
        --bursts) bursts=$2; shift 2 ;;
        --rss) rss_devices=$2; shift 2 ;;
        --durable-devices) durable_devices=$2; shift 2 ;;
        --durable-large) read -r durable_large_floats durable_large_devices <<<"$2"; shift 2 ;;
        --durable-runs) durable_runs=$2; shift 2 ;;
        --tls-devices) tls_devices=$2; shift 2 ;;
        --tls-large) read -r tls_large_floats tls_large_devices <<<"$2"; shift 2 ;;
        --tls-runs) tls_runs=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
        esac
done
builddir=$(cd "$builddir" && pwd)

say() { printf '==> %s\n' "$*"; }
die() { printf 'run-bench: %s\n' "$*" >&2; exit 1; }

for p in fl-schedulerd fl-serverd flctl bench-ingest bench-http-discard bench-aggregate bench-model bench-allreduce; do
        [ -x "$builddir/$p" ] || die "$builddir/$p is missing: build the tree first (make -C $builddir)"
done

# ------------------------------------------------------------- processes

work=$(mktemp -d /tmp/flcluster-bench.XXXXXX)
pids=""                 # every process group we started, newest first
keep_logs=0

running() {
        local state

        state=$(sed -E 's/.*\) ([A-Za-z]).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
        [ "$state" != Z ] && [ "$state" != X ]
}

# Stops one process group we started (each runs in a session of its own),
# TERM first, KILL after a bounded wait.
stop() {
        local pid=$1

        if running "$pid"; then kill -TERM -- "-$pid" 2>/dev/null || true; fi
        for _ in $(seq 1 50); do
                running "$pid" || break
                sleep 0.1
        done
        if running "$pid"; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
        wait "$pid" 2>/dev/null || true
}

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
        local pid

        for pid in $pids; do
                stop "$pid"
        done
        if [ "$keep_logs" -eq 1 ]; then
                echo "Logs kept in $work" >&2
        else
                rm -rf "$work"
        fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME COMMAND...: in its own session, output to $work/NAME.log; sets pid.
start() {
        local name=$1

        shift
        setsid "$@" >"$work/$name.log" 2>&1 </dev/null &
        pid=$!
        pids="$pid $pids"
}

forget() {
        local p rest=""

        for p in $pids; do
                [ "$p" = "$1" ] || rest="$rest $p"
        done
        pids=$rest
}

fail() {
        local f

        keep_logs=1
        printf 'run-bench: %s\n' "$*" >&2
        for f in "$work"/*.log; do
                [ -s "$f" ] || continue
                echo "----- ${f##*/} (last 20 lines)" >&2
                tail -n 20 "$f" >&2
        done
        exit 1
}

# Sets base to the first of n consecutive loopback ports nothing listens on.
pick_ports() {
        local n=$1 used p free

        used=$(ss -Htan 2>/dev/null | awk '{ sub(/.*:/, "", $4); print $4 }' | sort -un)
        for _ in $(seq 1 100); do
                base=$((20000 + RANDOM % 40000))
                free=1
                for p in $(seq "$base" $((base + n - 1))); do
                        if grep -qx "$p" <<<"$used"; then
                                free=0
                                break
                        fi
                done
                [ "$free" -eq 0 ] || return 0
        done
        die "found no $n free consecutive ports"
}

# A private bus stands in for the system bus (the scheduler serves D-Bus).
start_bus() {
        command -v dbus-daemon >/dev/null || return 0
        start dbus dbus-daemon --session --nofork --nopidfile --address="unix:path=$work/bus"
        bus_pid=$pid
        export DBUS_SYSTEM_BUS_ADDRESS=unix:path=$work/bus
        for _ in $(seq 1 $((wait_s * 10))); do
                [ -S "$work/bus" ] && return 0
                running "$bus_pid" || break
                sleep 0.1
        done
        fail "the private D-Bus daemon did not start"
}

vm_kib() {      # vm_kib PID FIELD -> the value in KiB
        awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null
}

# A scheduler and one server whose iteration never ends during a run: the
# admission threshold is out of reach and every window lasts a day.
cluster_start() {
        local tag=$1 dir=$work/$1 url state="" tls_opts=() curl_ca=()

        cluster_dir=$dir
        mkdir -p "$dir"
        pick_ports 3
        sched_port=$base
        manage_port=$((base + 1))
        server_port=$((base + 2))
        url=http://127.0.0.1:$manage_port
        cluster_scheme=http
        if [ -n "$cluster_tls" ]; then
                tls_opts=(--config_file_path="$cluster_tls")
                curl_ca=(--cacert "$work/tls/ca.pem")
                url=https://127.0.0.1:$manage_port
                cluster_scheme=https
        fi

        start "$tag-scheduler" "$builddir/fl-schedulerd" --scheduler_ip=127.0.0.1 \
                --scheduler_port="$sched_port" --scheduler_manage_port="$manage_port" --server_num=1 \
                --state_dir="$dir" --log_level=notice --fl_iteration_num=10 \
                --start_fl_job_threshold=1000000 --update_model_ratio=1.0 \
                --start_fl_job_time_window=86400000 --update_model_time_window=86400000 \
                --global_iteration_time_window=172800000 "${tls_opts[@]}"
        sched_pid=$pid
        # shellcheck disable=SC2086 # options, one word each
        start "$tag-server" "$builddir/fl-serverd" --scheduler_ip=127.0.0.1 \
                --scheduler_port="$sched_port" --fl_server_port="$server_port" --server_num=1 \
                --local_server_num=1 --state_dir="$dir" --log_level=notice \
                --start_fl_job_threshold=1000000 --model_path="${cluster_model:-$work/lenet5.fl}" \
                "${tls_opts[@]}" $cluster_server_opts
        server_pid=$pid

        for _ in $(seq 1 $((wait_s * 5))); do
                running "$sched_pid" || fail "fl-schedulerd ($tag) exited early"
                running "$server_pid" || fail "fl-serverd ($tag) exited early"
                state=$(curl -s --max-time 2 "${curl_ca[@]}" "$url/state" || true)
                case $state in
                *CLUSTER_READY*)
                        # setsid did not fork (a script's background job leads no
                        # group): the pid is the daemon's, whose /proc/PID/status
                        # the RSS bench reads.
                        [ "$(cat "/proc/$server_pid/comm" 2>/dev/null)" = fl-serverd ] ||
                                fail "pid $server_pid is not fl-serverd"
                        return 0 ;;
                esac
                sleep 0.2
        done
        fail "the cluster ($tag) was not ready after ${wait_s}s; last state: ${state:-no answer}"
}

cluster_stop() {
        stop "$server_pid"
        forget "$server_pid"
        stop "$sched_pid"
        forget "$sched_pid"
        # The durable update log holds every body (GBs at 10,000 devices); the logs stay.
        rm -rf "${cluster_dir:?}"
}

# field NAME FILE [PHASE]: a value from bench-ingest's or bench-aggregate's RESULT lines.
field() {
        grep "^RESULT ${3:+phase=$3 }" "$2" | tail -n 1 | tr ' ' '\n' | sed -n "s/^$1=//p"
}

median() {      # of the numbers on stdin
        sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ------------------------------------------------------------- benchmarks

discard_start() {        # discard_start TAG: sets discard_pid and discard_port
        local tag=$1

        discard_port=""
        start "discard-$tag" "$builddir/bench-http-discard" 0
        discard_pid=$pid
        for _ in $(seq 1 $((wait_s * 10))); do
                discard_port=$(sed -n 's/^PORT=//p' "$work/discard-$tag.log")
                [ -n "$discard_port" ] && return 0
                running "$discard_pid" || fail "bench-http-discard exited early"
                sleep 0.1
        done
        fail "bench-http-discard did not serve within ${wait_s}s"
}

# One run: a fresh baseline server and a fresh cluster side by side; the
# updates alternate in bursts with as many requests to the baseline.
ingest_run() {          # ingest_run RUN
        local log=$work/ingest-$1.out

        discard_start "$1"
        cluster_start "ingest-$1"
        timeout $((wait_s * 20)) "$builddir/bench-ingest" server --url "http://127.0.0.1:$server_port" \
                --devices "$devices" --concurrency "$concurrency" --ready-timeout "$wait_s" \
                --server-pid "$server_pid" --scheduler-pid "$sched_pid" \
                --baseline-url "http://127.0.0.1:$discard_port" --baseline-pid "$discard_pid" \
                --bursts "$bursts" >"$log" 2>&1 ||
                { cat "$log" >&2; fail "ingest run $1 failed (not every answer was SUCCEED)"; }
        sed 's/^/    /' "$log" | grep -v RESULT
        cluster_stop
        stop "$discard_pid"
        forget "$discard_pid"
}

bench_ingest() {
        local i

        : >"$work/ingest-runs"
        for i in $(seq 1 "$runs"); do
                say "ingest run $i/$runs: $devices devices admitted, then their updates in $bursts bursts," \
                    "each after as many to bench-http-discard; $concurrency in flight"
                ingest_run "$i"
                echo "$(field per_s "$work/ingest-$i.out" discard) $(field per_s "$work/ingest-$i.out" updateModel)" \
                     "$(field ratio_median "$work/ingest-$i.out" compare) $(field ratio_total "$work/ingest-$i.out" compare)" \
                     "$(field mb_per_s "$work/ingest-$i.out" discard) $(field mb_per_s "$work/ingest-$i.out" updateModel)" \
                     "$(field server_cpu_s "$work/ingest-$i.out" discard) $(field server_cpu_s "$work/ingest-$i.out" updateModel)" \
                     "$(field n "$work/ingest-$i.out" updateModel)" >>"$work/ingest-runs"
        done
}

bench_rss() {
        local n hwm rss sched_hwm idle

        : >"$work/rss"
        for n in $rss_devices; do
                say "peak RSS: fresh cluster, $n devices admitted and updating in one iteration"
                cluster_start "rss-$n"
                idle=$(vm_kib "$server_pid" VmHWM)
                timeout $((wait_s * 20)) "$builddir/bench-ingest" server --url "http://127.0.0.1:$server_port" \
                        --devices "$n" --concurrency "$concurrency" --ready-timeout "$wait_s" \
                        --server-pid "$server_pid" --scheduler-pid "$sched_pid" >"$work/rss-$n.out" 2>&1 ||
                        { cat "$work/rss-$n.out" >&2; fail "the RSS run with $n devices failed"; }
                sed 's/^/    /' "$work/rss-$n.out" | grep -v RESULT
                hwm=$(vm_kib "$server_pid" VmHWM)
                rss=$(vm_kib "$server_pid" VmRSS)
                sched_hwm=$(vm_kib "$sched_pid" VmHWM)
                printf '    fl-serverd VmHWM %s KiB (idle %s KiB, VmRSS now %s KiB); fl-schedulerd VmHWM %s KiB\n' \
                        "$hwm" "$idle" "$rss" "$sched_hwm"
                echo "$n $hwm $idle $sched_hwm" >>"$work/rss"
                cluster_stop
        done
}

io_bytes() {    # io_bytes PID: bytes the process has sent to the storage layer
        awk '$1 == "write_bytes:" { print $2 }' "/proc/$1/io" 2>/dev/null || echo 0
}

# paired_runs WHAT RUNS "A B" N FLOATS LARGE_N RUN: for LeNet-5 (N updates) and a
# model of FLOATS floats (LARGE_N updates; 0 skips it), RUNS pairs of fresh
# runs "RUN SIZE SETTING I N MODEL", the settings A and B in alternating
# order, so that both see the machine alike.
paired_runs() {
        local what=$1 runs=$2 a=${3% *} b=${3#* } lenet_n=$4 floats=$5 large_n=$6 run=$7 size model n i s order

        for size in lenet5 large; do
                model=$work/lenet5.fl
                n=$lenet_n
                if [ "$size" = large ]; then
                        if [ "$floats" -eq 0 ] || [ "$large_n" -eq 0 ]; then
                                continue
                        fi
                        model=$work/$what-large.fl
                        n=$large_n
                        "$builddir/bench-model" --floats "$floats" -o "$model" ||
                                die "failed to write the model of $floats floats"
                fi
                for i in $(seq 1 "$runs"); do
                        order="$a $b"
                        [ $((i % 2)) -eq 1 ] || order="$b $a"
                        for s in $order; do
                                "$run" "$size" "$s" "$i" "$n" "$model"
                        done
                done
        done
}

# One run: a fresh cluster with the log on or off; the N updates of N
# admitted devices, C in flight, none interleaved with anything else.
durability_run() {      # durability_run SIZE DURABLE RUN DEVICES MODEL
        local size=$1 durable=$2 tag=dur-$1-$2-$3 n=$4 out srv0 sch0 srv1 sch1

        say "durability $size run $3/$durable_runs: durable_updates=$durable, fresh cluster," \
            "$n devices admitted, then their updates, $concurrency in flight"
        out=$work/$tag.out
        cluster_model=$5
        cluster_server_opts="--durable_updates=$durable"
        cluster_start "$tag"
        cluster_model=""
        cluster_server_opts=""
        srv0=$(io_bytes "$server_pid")
        sch0=$(io_bytes "$sched_pid")
        timeout $((wait_s * 10)) "$builddir/bench-ingest" server --url "http://127.0.0.1:$server_port" \
                --devices "$n" --concurrency "$concurrency" --ready-timeout "$wait_s" --model "$5" \
                --server-pid "$server_pid" --scheduler-pid "$sched_pid" >"$out" 2>&1 ||
                { cat "$out" >&2; fail "durability run $tag failed (not every answer was SUCCEED)"; }
        srv1=$(io_bytes "$server_pid")
        sch1=$(io_bytes "$sched_pid")
        sed 's/^/    /' "$out" | grep -v RESULT
        printf '    disk writes during the run: fl-serverd %.1f MB, fl-schedulerd %.1f MB\n' \
                "$(awk -v a="$srv0" -v b="$srv1" 'BEGIN { print (b - a) / 1e6 }')" \
                "$(awk -v a="$sch0" -v b="$sch1" 'BEGIN { print (b - a) / 1e6 }')"
        echo "$size $durable $3 $(field per_s "$out" updateModel) $(field mb_per_s "$out" updateModel)" \
             "$(field server_cpu_s "$out" updateModel) $(field n "$out" updateModel)" \
             "$((srv1 - srv0)) $((sch1 - sch0)) $(field body_bytes "$out" updateModel)" \
             "$(field p50_ms "$out" updateModel) $(field p99_ms "$out" updateModel)" >>"$work/durability"
        cluster_stop
}

# Pairs of runs, the order alternating, so that both settings see the
# machine alike; per pair the ratio durable/non-durable.
bench_durability() {
        : >"$work/durability"
        paired_runs durability "$durable_runs" "true false" "$durable_devices" "$durable_large_floats" \
                "$durable_large_devices" durability_run
}

# Columns of $work/durability: size durable run per_s mb_per_s server_cpu_s n
# server_write_bytes scheduler_write_bytes body_bytes p50_ms p99_ms.
pair_col() {     # pair_col FILE SIZE SETTING K: column K of those runs
        awk -v s="$2" -v d="$3" -v k="$4" '$1 == s && $2 == d { print $k }' "$1"
}

# summary_pairs FILE SIZE A B NAME_A NAME_B RATIO_NAME P50_COLUMN: the lines of
# paired_runs' two settings (throughput: columns 4 and 5) and their ratio per pair.
summary_pairs() {
        local file=$1 size=$2 a=$3 b=$4 ratio=$7 p50=$8 setting name ratios

        for setting in "$a" "$b"; do
                name=$5
                [ "$setting" = "$a" ] || name=$6
                printf '%-44s %.0f updates/s, %.0f MB/s, p50 %.0f ms (median; runs: %s)\n' "$name" \
                        "$(pair_col "$file" "$size" "$setting" 4 | median)" \
                        "$(pair_col "$file" "$size" "$setting" 5 | median)" \
                        "$(pair_col "$file" "$size" "$setting" "$p50" | median)" \
                        "$(pair_col "$file" "$size" "$setting" 4 | awk '{ printf "%.0f ", $1 }')"
        done
        ratios=$(awk -v s="$size" -v a="$a" -v b="$b" '$1 == s { v[$2 " " $3] = $4 }
                END { for (i = 1; (a " " i) in v; i++) print v[a " " i] / v[b " " i] }' "$file")
        printf '%-44s %.3f (median of %d pairs; pairs: %s)\n' "$ratio" \
                "$(median <<<"$ratios")" "$(wc -l <<<"$ratios")" "$(awk '{ printf "%.3f ", $1 }' <<<"$ratios")"
}

durability_per() {      # durability_per SIZE DURABLE K SCALE: column K per update, times SCALE
        awk -v s="$1" -v d="$2" -v k="$3" -v x="$4" '$1 == s && $2 == d { print $k / $7 * x }' "$work/durability"
}

cpu_ticks() {   # cpu_ticks PID: user + system clock ticks of the process, all its threads
        sed -E 's/.*\) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'
}

tls_prepare() {
        "$builddir/flctl" tls init --dir "$work/tls" --hosts 127.0.0.1 >/dev/null ||
                die "flctl tls init failed"
        printf '{"enable_ssl": true, "ssl": {"server_cert_path": "%s", "server_key_path": "%s", "ca_cert_path": "%s"}}\n' \
                "$work/tls/node.pem" "$work/tls/node-key.pem" "$work/tls/ca.pem" >"$work/tls.json"
}

# One run: a fresh cluster with TLS on or off; the N updates of N admitted
# devices, C in flight; then new connections one by one to its device port.
tls_run() {             # tls_run SIZE TLS RUN DEVICES MODEL
        local size=$1 tls=$2 tag=tls-$1-$2-$3 n=$4 out ca=() c0 c1 hz

        say "TLS $size run $3/$tls_runs: TLS $tls, fresh cluster, $n devices admitted, then their updates," \
            "$concurrency in flight; then $tls_connections new connections"
        out=$work/$tag.out
        cluster_model=$5
        cluster_tls=""
        [ "$tls" = on ] && { cluster_tls=$work/tls.json; ca=(--cacert "$work/tls/ca.pem"); }
        cluster_start "$tag"
        cluster_model=""
        cluster_tls=""
        c0=$(cpu_ticks "$server_pid")
        timeout $((wait_s * 10)) "$builddir/bench-ingest" server --url "$cluster_scheme://127.0.0.1:$server_port" \
                --devices "$n" --concurrency "$concurrency" --ready-timeout "$wait_s" --model "$5" "${ca[@]}" \
                --server-pid "$server_pid" --scheduler-pid "$sched_pid" >"$out" 2>&1 ||
                { cat "$out" >&2; fail "TLS run $tag failed (not every answer was SUCCEED)"; }
        c1=$(cpu_ticks "$server_pid")
        hz=$(getconf CLK_TCK)
        sed 's/^/    /' "$out" | grep -v RESULT
        timeout $((wait_s * 5)) "$builddir/bench-ingest" connect --url "$cluster_scheme://127.0.0.1:$server_port" \
                --connections "$tls_connections" --server-pid "$server_pid" "${ca[@]}" >"$out.connect" 2>&1 ||
                { cat "$out.connect" >&2; fail "the connections of $tag failed"; }
        sed 's/^/    /' "$out.connect" | grep -v RESULT
        echo "$size $tls $3 $(field per_s "$out" updateModel) $(field mb_per_s "$out" updateModel)" \
             "$(awk -v a="$c0" -v b="$c1" -v hz="$hz" -v n="$n" 'BEGIN { print (b - a) / hz / n * 1e6 }')" \
             "$(field ms_per_conn "$out.connect" connect) $(field server_cpu_us_per_conn "$out.connect" connect)" \
             "$(field p50_ms "$out" updateModel)" >>"$work/tls-runs"
        cluster_stop
}

# Pairs of runs, the order alternating; then the all-reduce both ways.
bench_tls() {
        tls_prepare
        : >"$work/tls-runs"
        paired_runs tls "$tls_runs" "on off" "$tls_devices" "$tls_large_floats" "$tls_large_devices" tls_run
        say "ring all-reduce over clear TCP and over TLS, one process per server (bench-allreduce --tls --processes)"
        "$builddir/bench-allreduce" --tls --processes --repeat 3 | tee "$work/allreduce-tls.out" |
                grep -v '^RESULT' | sed 's/^/    /'
}

# Columns of $work/tls-runs: size tls run per_s mb_per_s server_cpu_us_per_update
# ms_per_conn server_cpu_us_per_conn p50_ms.
bench_aggregate() {
        say "aggregation kernel vs memcpy (bench-aggregate)"
        "$builddir/bench-aggregate" | tee "$work/aggregate.out" | grep -v '^RESULT' | sed 's/^/    /'
}

# ------------------------------------------------------------- main

need() { [ -z "$only" ] || [ "$only" = "$1" ]; }

if need ingest || need rss || need durability || need tls; then
        command -v curl >/dev/null || die "curl is needed to watch the scheduler's REST API"
        command -v ss >/dev/null || die "ss (iproute2) is needed to pick free ports"
        "$builddir/bench-ingest" write-model "$work/lenet5.fl" || die "failed to write the LeNet-5 model"
        start_bus
fi
need ingest && bench_ingest
need rss && bench_rss
need aggregate && bench_aggregate
need durability && bench_durability
need tls && bench_tls

echo
echo "Summary ($(nproc) CPUs, $(uname -r); $work)"
printf '%-44s %s\n' "benchmark" "result"
printf '%-44s %s\n' "---------" "------"
if need ingest; then
        body=$(field body_bytes "$work/ingest-1.out" updateModel)
        printf '%-44s %s\n' "updateModel body (LeNet-5, 61,684 floats)" "$body bytes"
        printf '%-44s %.0f updates/s, %.0f MB/s (median; runs: %s)\n' "ingest baseline: http.c, body discarded" \
                "$(awk '{ print $1 }' "$work/ingest-runs" | median)" "$(awk '{ print $5 }' "$work/ingest-runs" | median)" \
                "$(awk '{ printf "%.0f ", $1 }' "$work/ingest-runs")"
        printf '%-44s %.0f updates/s, %.0f MB/s (median; runs: %s)\n' "ingest fl-serverd, $concurrency senders" \
                "$(awk '{ print $2 }' "$work/ingest-runs" | median)" "$(awk '{ print $6 }' "$work/ingest-runs" | median)" \
                "$(awk '{ printf "%.0f ", $2 }' "$work/ingest-runs")"
        printf '%-44s %s (median of the runs; runs: %s)\n' "ingest ratio fl-serverd/baseline" \
                "$(awk '{ print $3 }' "$work/ingest-runs" | median)" "$(awk '{ printf "%s ", $3 }' "$work/ingest-runs")"
        # CPU time is steadier than wall time on a shared host: the server's own
        # cost per request, and the same ratio computed from it.
        printf '%-44s baseline %.0f us, fl-serverd %.0f us: ratio %.3f (median)\n' "server CPU per request" \
                "$(awk '{ print $7 / $9 * 1e6 }' "$work/ingest-runs" | median)" \
                "$(awk '{ print $8 / $9 * 1e6 }' "$work/ingest-runs" | median)" \
                "$(awk '{ print $7 / $8 }' "$work/ingest-runs" | median)"
fi
if need rss; then
        first=$(head -n 1 "$work/rss")
        last=$(tail -n 1 "$work/rss")
        while read -r n hwm idle sched_hwm; do
                printf '%-44s %.1f MiB (idle %.1f MiB; scheduler %.1f MiB)\n' "fl-serverd peak RSS, $n devices" \
                        "$(awk -v k="$hwm" 'BEGIN { print k / 1024 }')" "$(awk -v k="$idle" 'BEGIN { print k / 1024 }')" \
                        "$(awk -v k="$sched_hwm" 'BEGIN { print k / 1024 }')"
        done <"$work/rss"
        awk -v a="${first#* }" -v b="${last#* }" -v n1="${first%% *}" -v n2="${last%% *}" -v lim="$rss_limit_pct" 'BEGIN {
                split(a, x, " "); split(b, y, " ");
                g = 100 * (y[1] - x[1]) / x[1];
                printf "%-44s %+.1f%% (limit %d%%): %s\n", "peak RSS growth " n1 " -> " n2 " devices", g, lim, g < lim ? "PASS" : "FAIL";
                exit g < lim ? 0 : 1;
        }' || rss_failed=1
fi
if need aggregate; then
        for size in lenet5 large; do
                a=$(grep "^RESULT $size " "$work/aggregate.out" | tr ' ' '\n' | sed -n 's/^add_gbs=//p')
                m=$(grep "^RESULT $size " "$work/aggregate.out" | tr ' ' '\n' | sed -n 's/^memcpy_gbs=//p')
                q=$(grep "^RESULT $size " "$work/aggregate.out" | tr ' ' '\n' | sed -n 's/^ratio=//p')
                label="aggregation kernel, LeNet-5 (61,684 floats)"
                [ "$size" = large ] && label="aggregation kernel, 11M floats"
                printf '%-44s %s GB/s vs memcpy %s GB/s: ratio %s\n' "$label" "$a" "$m" "$q"
        done
fi
if need durability; then
        for size in lenet5 large; do
                grep -q "^$size " "$work/durability" || continue
                label="LeNet-5 (61,684 floats)"
                [ "$size" = large ] && label="$durable_large_floats floats"
                summary_pairs "$work/durability" "$size" true false "durable updates, $label" \
                        "non-durable updates, $label" "durability ratio durable/non-durable" 11
                printf '%-44s durable %.0f us, non-durable %.0f us per update (median)\n' "  server CPU" \
                        "$(durability_per "$size" true 6 1e6 | median)" "$(durability_per "$size" false 6 1e6 | median)"
                printf '%-44s fl-serverd %.0f KB durable, %.0f KB not; fl-schedulerd %.1f KB (body %.0f KB)\n' \
                        "  disk writes per update" "$(durability_per "$size" true 8 1e-3 | median)" \
                        "$(durability_per "$size" false 8 1e-3 | median)" "$(durability_per "$size" true 9 1e-3 | median)" \
                        "$(pair_col "$work/durability" "$size" true 10 | awk '{ print $1 / 1e3 }' | median)"
        done
fi
if need tls; then
        for size in lenet5 large; do
                grep -q "^$size " "$work/tls-runs" || continue
                label="LeNet-5 (61,684 floats)"
                [ "$size" = large ] && label="$tls_large_floats floats"
                summary_pairs "$work/tls-runs" "$size" on off "ingest over HTTPS, $label" \
                        "ingest over clear HTTP, $label" "ingest ratio TLS/clear" 9
                printf '%-44s TLS %.0f us, clear %.0f us per update (median; /proc/PID/stat)\n' "  server CPU" \
                        "$(pair_col "$work/tls-runs" "$size" on 6 | median)" "$(pair_col "$work/tls-runs" "$size" off 6 | median)"
        done
        printf '%-44s TLS %.2f ms (server CPU %.0f us), clear %.2f ms (%.0f us): ratio %.1f (median)\n' \
                "new device connection, one GET" \
                "$(pair_col "$work/tls-runs" lenet5 on 7 | median)" "$(pair_col "$work/tls-runs" lenet5 on 8 | median)" \
                "$(pair_col "$work/tls-runs" lenet5 off 7 | median)" "$(pair_col "$work/tls-runs" lenet5 off 8 | median)" \
                "$(awk '$2 == "on" { n++; s += $7 } $2 == "off" { m++; c += $7 } END { print (s / n) / (c / m) }' "$work/tls-runs")"
        grep '^RESULT allreduce' "$work/allreduce-tls.out" | while read -r _ _ k n clear tls ratio; do
                printf '%-44s %s ms vs clear %s ms: ratio %s\n' "all-reduce over TLS, k=${k#k=}, ${n#n=} doubles" \
                        "${tls#tls_ms=}" "${clear#clear_ms=}" "${ratio#ratio=}"
        done
fi
# The only target with a verdict: its FAIL is the script's failure.
exit "$rss_failed"
