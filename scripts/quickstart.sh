#!/bin/bash
# flcluster quickstart, for a fresh Debian 12 (as root, or with every
# package below already installed):
#
#   scripts/quickstart.sh demo   build, then run a small cluster on loopback
#   scripts/quickstart.sh test   build, then run the whole test suite
#
# Both install what is missing with apt-get, run autoreconf when configure
# is missing or older than its sources, configure into _build/ and build.
# Running it again only redoes what changed.
set -eu

cd "$(dirname "$0")/.."
top=$PWD
# FL_BUILDDIR: another build directory (the tests take the same variable).
builddir=${FL_BUILDDIR:-$top/_build}

PACKAGES="build-essential autoconf automake autoconf-archive libtool pkg-config
libsystemd-dev libmicrohttpd-dev libjson-c-dev libsqlite3-dev libopenblas-dev
libcmocka-dev libcurl4-gnutls-dev libgnutls28-dev gnutls-bin zlib1g-dev flatbuffers-compiler python3-flatbuffers dataset-fashion-mnist dbus-daemon systemd python3 curl jq iproute2
man-db groff-base systemd-container libcairo2-dev prometheus chromium
debhelper lintian dpkg-dev"

say() { printf '==> %s\n' "$*"; }
die() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }

usage() {
        cat <<EOF
usage: $0 demo|test

  demo   build, start a scheduler and two servers on loopback ports, train
         LeNet-5 on Fashion-MNIST with eight simulated devices for ten
         iterations, download the final model, finish the cluster; fails
         if the final test accuracy is below 0.80
  test   build and run the test suite (make check); ends with
         "N passed, N failed"
EOF
}

# ---------------------------------------------------------------- prepare

install_packages() {
        local missing="" p

        if ! command -v dpkg-query >/dev/null; then
                say "No dpkg here: not installing packages; the build says what is missing."
                return 0
        fi
        for p in $PACKAGES; do
                case $(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null) in
                ii*) ;;
                *) missing="$missing $p" ;;
                esac
        done
        [ -n "$missing" ] || return 0

        [ "$(id -u)" -eq 0 ] || die "missing packages:$missing (run as root, or install them)"
        say "Installing$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get -qq update </dev/null
        # shellcheck disable=SC2086 # one word per package
        apt-get -qq -y -o Dpkg::Use-Pty=0 install --no-install-recommends $missing </dev/null >/dev/null
}

configure_is_stale() {
        [ -x configure ] || return 0
        [ -n "$(find . \( -path ./.git -o -path './_build*' -o -path ./autom4te.cache -o -path './flcluster-*' \) -prune \
                -o \( -name configure.ac -o -name '*.am' \) -newer configure -print | head -n 1)" ]
}

configure_tree() {
        if configure_is_stale; then
                say "autoreconf -fi"
                autoreconf -fi
        fi
        if [ -f config.status ]; then
                die "the source tree is configured in place; run 'make distclean' here first (builds go to _build/)"
        fi
        if [ ! -f "$builddir/Makefile" ]; then
                say "configure (in _build/)"
                mkdir -p "$builddir"
                (cd "$builddir" && "$top/configure" -q --prefix=/usr --sysconfdir=/etc --localstatedir=/var)
        fi
}

compile() {
        say "make"
        make -C "$builddir" --no-print-directory -j"$(nproc)"
}

prepare() {
        install_packages
        configure_tree
}

# ------------------------------------------------------------------- test

# Whatever stops the preparation still ends with the summary line; once the
# suite runs, tests/run-suite.sh prints it (exec: this trap is gone then).
tests_not_run() {
        local rc=$?

        [ "$rc" -eq 0 ] && return 0
        echo
        echo "Installing, configuring or building failed (see above); no test ran."
        echo "0 passed, 1 failed"
        exit "$rc"
}

run_tests() {
        trap tests_not_run EXIT
        prepare
        compile
        say "make check"
        exec "$top/tests/run-suite.sh" "$builddir"
}

# ------------------------------------------------------------------- demo
# One function per step.

DEMO_TIMEOUT=${FL_DEMO_TIMEOUT:-30}
DEMO_SERVERS=2
# The job: eight devices, all of them in every iteration, each one local
# epoch of SGD (batches of 32, lr 0.01, momentum 0.9: the training core's
# recommended plan, src/client/trainer.h) on its eighth of the training
# set. Ten iterations reach about 0.88 test accuracy in well under a
# minute on two cores.
DEMO_DEVICES=8
DEMO_ITERATIONS=10
DEMO_JOB="--fl_iteration_num=$DEMO_ITERATIONS --start_fl_job_threshold=$DEMO_DEVICES \
--client_epoch_num=1 --client_batch_size=32 --client_learning_rate=0.01 \
--start_fl_job_time_window=300000 --update_model_time_window=300000"
DEMO_MIN_ACCURACY=0.80
DEMO_DATA=${FL_DEMO_DATA:-/usr/share/datasets/fashion-mnist}
# What the demo leaves behind: the final model and the accuracy table.
demo_out=$builddir/demo
demo_dir=""
demo_ok=0
bus_pid=""
scheduler_pid=""
servers_pid=""

# Sets base to the first of n consecutive ports that nothing listens on.
demo_pick_ports() {
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

running() {
        local state

        state=$(sed -E 's/.*\) ([A-Za-z]).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
        [ "$state" != Z ] && [ "$state" != X ]
}

# Kills whatever we started and is still there: the whole process group of
# each (every daemon was started in a session of its own).
demo_cleanup() {
        local pid

        for pid in $servers_pid $scheduler_pid $bus_pid; do
                if running "$pid"; then kill -TERM -- "-$pid" 2>/dev/null || true; fi
        done
        for _ in $(seq 1 50); do
                running "${servers_pid:-0}" || running "${scheduler_pid:-0}" || running "${bus_pid:-0}" || break
                sleep 0.1
        done
        for pid in $servers_pid $scheduler_pid $bus_pid; do
                if running "$pid"; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
        done
        if [ -n "$demo_dir" ]; then
                if [ "$demo_ok" -eq 1 ]; then
                        rm -rf "$demo_dir"
                else
                        echo "The daemons' logs are kept in $demo_dir" >&2
                fi
        fi
}

demo_logs() {
        local f

        for f in "$demo_dir"/*.log; do
                [ -s "$f" ] || continue
                echo "----- ${f##*/} (last 30 lines)"
                tail -n 30 "$f"
        done
}

demo_fail() {
        printf 'demo: %s\n' "$*" >&2
        demo_logs >&2
        exit 1
}

demo_setup() {
        demo_dir=$(mktemp -d /tmp/flcluster-demo.XXXXXX)
        trap demo_cleanup EXIT
        trap 'exit 130' INT TERM

        demo_pick_ports $((2 + DEMO_SERVERS))
        scheduler_port=$base
        manage_port=$((base + 1))
        server_port=$((base + 2))
        url=http://127.0.0.1:$manage_port
        say "State in $demo_dir; scheduler on 127.0.0.1:$scheduler_port, REST on $url, servers on $server_port-$((server_port + DEMO_SERVERS - 1))"
}

# A private bus stands in for the system bus, so that the demo neither needs
# one nor meets an installed scheduler on it.
demo_start_bus() {
        setsid dbus-daemon --session --nofork --nopidfile \
                --address="unix:path=$demo_dir/bus" >"$demo_dir/dbus.log" 2>&1 &
        bus_pid=$!
        export DBUS_SYSTEM_BUS_ADDRESS=unix:path=$demo_dir/bus
        for _ in $(seq 1 50); do
                [ -S "$demo_dir/bus" ] && return 0
                running "$bus_pid" || break
                sleep 0.1
        done
        demo_fail "the private D-Bus daemon did not start"
}

# The servers start from this model: LeNet-5 with weights drawn from seed 1.
demo_init_model() {
        say "fl-client init-model --arch lenet5 --seed 1 -o $demo_dir/lenet5.fl"
        "$builddir/fl-client" init-model --arch lenet5 --seed 1 -o "$demo_dir/lenet5.fl" ||
                demo_fail "fl-client init-model failed"
}

demo_start_scheduler() {
        say "Starting fl-schedulerd (job: $DEMO_JOB)"
        # shellcheck disable=SC2086 # one word per option
        setsid "$builddir/fl-schedulerd" --scheduler_ip=127.0.0.1 --scheduler_port="$scheduler_port" \
                --server_num="$DEMO_SERVERS" --scheduler_manage_port="$manage_port" \
                --state_dir="$demo_dir" $DEMO_JOB >"$demo_dir/scheduler.log" 2>&1 &
        scheduler_pid=$!
}

demo_start_servers() {
        say "Starting fl-serverd with $DEMO_SERVERS servers"
        setsid "$builddir/fl-serverd" --scheduler_ip=127.0.0.1 --scheduler_port="$scheduler_port" \
                --fl_server_port="$server_port" --server_num="$DEMO_SERVERS" \
                --local_server_num="$DEMO_SERVERS" --state_dir="$demo_dir" \
                --model_path="$demo_dir/lenet5.fl" >"$demo_dir/servers.log" 2>&1 &
        servers_pid=$!
}

demo_wait_ready() {
        local deadline=$((SECONDS + DEMO_TIMEOUT)) state=""

        say "Waiting for CLUSTER_READY (at most ${DEMO_TIMEOUT}s)"
        while [ "$SECONDS" -lt "$deadline" ]; do
                running "$scheduler_pid" || demo_fail "fl-schedulerd exited early"
                running "$servers_pid" || demo_fail "fl-serverd exited early"
                state=$(curl -s --max-time 2 "$url/state" || true)
                case $state in
                *CLUSTER_READY*)
                        say "Cluster ready after $((SECONDS + DEMO_TIMEOUT - deadline))s"
                        return 0 ;;
                esac
                sleep 0.2
        done
        demo_fail "the cluster was not ready after ${DEMO_TIMEOUT}s; last state: ${state:-no answer}"
}

demo_show_nodes() {
        say "flctl --url $url nodes"
        "$builddir/flctl" --url "$url" nodes || demo_fail "flctl nodes failed"
}

demo_server_urls() {
        local i urls=""

        for i in $(seq 0 $((DEMO_SERVERS - 1))); do
                urls="$urls${urls:+,}http://127.0.0.1:$((server_port + i))"
        done
        echo "$urls"
}

# fl-client prints a row per iteration as it goes; its own waits are bounded
# (--timeout), so the demo cannot hang here.
demo_train() {
        local servers

        servers=$(demo_server_urls)
        mkdir -p "$demo_out"
        rm -f "$demo_out/accuracy.csv"
        say "fl-client train --servers $servers --devices $DEMO_DEVICES --partition iid"
        "$builddir/fl-client" train --servers "$servers" --devices "$DEMO_DEVICES" --partition iid \
                --data "$DEMO_DATA" --seed 1 --timeout 300 --csv "$demo_out/accuracy.csv" ||
                demo_fail "fl-client train failed"
}

demo_model_get() {
        say "flctl --url $url model get -o $demo_out/final.fl"
        "$builddir/flctl" --url "$url" model get -o "$demo_out/final.fl" || demo_fail "flctl model get failed"
}

demo_show_table() {
        say "Test accuracy of the global model after each iteration ($demo_out/accuracy.csv)"
        column -s, -t <"$demo_out/accuracy.csv" 2>/dev/null || cat "$demo_out/accuracy.csv"
}

# The last row's accuracy against the bar the demo promises.
demo_check_accuracy() {
        local last accuracy

        last=$(tail -n 1 "$demo_out/accuracy.csv")
        accuracy=$(cut -d, -f3 <<<"$last")
        [ "$(cut -d, -f1 <<<"$last")" = "$DEMO_ITERATIONS" ] ||
                demo_fail "the table ends at iteration $(cut -d, -f1 <<<"$last"), not $DEMO_ITERATIONS"
        awk -v a="$accuracy" -v min="$DEMO_MIN_ACCURACY" 'BEGIN { exit !(a + 0 >= min + 0) }' ||
                demo_fail "final test accuracy $accuracy is below $DEMO_MIN_ACCURACY"
        say "Final test accuracy $accuracy (at least $DEMO_MIN_ACCURACY); model in $demo_out/final.fl"
}

demo_finish() {
        say "flctl --url $url finish"
        "$builddir/flctl" --url "$url" finish || demo_fail "flctl finish failed"
}

# Waits (bounded) for both daemons to exit and reports how they did.
demo_wait_exit() {
        local deadline=$((SECONDS + DEMO_TIMEOUT)) name pid rc bad=0

        while running "$scheduler_pid" || running "$servers_pid"; do
                [ "$SECONDS" -lt "$deadline" ] || demo_fail "the daemons did not exit within ${DEMO_TIMEOUT}s of finish"
                sleep 0.2
        done
        for name in fl-schedulerd fl-serverd; do
                if [ "$name" = fl-schedulerd ]; then pid=$scheduler_pid; else pid=$servers_pid; fi
                rc=0
                wait "$pid" || rc=$?
                echo "$name (pid $pid) exited with status $rc"
                [ "$rc" -eq 0 ] || bad=1
        done
        scheduler_pid="" servers_pid=""
        [ "$bad" -eq 0 ] || demo_fail "a daemon did not exit cleanly"
}

run_demo() {
        local start=$SECONDS

        demo_setup
        demo_start_bus
        demo_init_model
        demo_start_scheduler
        demo_start_servers
        demo_wait_ready
        demo_show_nodes
        demo_train
        demo_model_get
        demo_show_table
        demo_finish
        demo_wait_exit
        demo_check_accuracy
        demo_ok=1
        say "Demo finished in $((SECONDS - start))s"
}

# ------------------------------------------------------------------- main

case ${1:-} in
demo)
        prepare
        compile
        run_demo ;;
test)
        run_tests ;;
-h|--help)
        usage ;;
*)
        usage >&2
        exit 2 ;;
esac
