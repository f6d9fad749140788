#!/bin/bash
# The installed units under a real systemd: boots a throwaway container with
# systemd-nspawn, installs this build inside and drives the cluster the way
# an operator does (systemctl, journalctl, flctl over the system bus).
#
# The container's root is an overlay of the host's root with its upper layer
# on a tmpfs, mounted in a mount namespace of this test's own: nothing of
# the host changes, and everything the container writes is gone with it.
# nspawn runs with --private-network --register=no --keep-unit (no machined,
# no systemd needed on the host) in a cgroup of the test's own, which is
# removed at the end; the test enters the container with nsenter. Should
# the test be killed outright, a reaper in a session of its own tears the
# container down.
#
# Checked, in order (every wait is bounded):
#   - make install, systemd-sysusers, daemon-reload and a D-Bus reload work;
#   - systemctl start fl-schedulerd fl-server@6668 fl-server@6669 returns
#     (Type=notify: READY=1 was sent), the units are active/running, as the
#     user flcluster, with a status line;
#   - flctl nodes over the container's system bus shows the two servers (also
#     for an unprivileged user: the policy lets anyone read);
#   - the journal has "Server started successfully." for fl-server@6669,
#     with FL_ROLE, FL_NODE_ID and FL_RANK; FL_ITERATION and (scheduler)
#     FL_CLUSTER_STATE filter as journalctl FIELD=VALUE;
#   - systemctl kill -s KILL fl-server@6669: systemd restarts it, it rejoins
#     with its node id and rank;
#   - a SIGSTOPped fl-server@6668 is killed by the watchdog (WatchdogSec=5s
#     in a drop-in) and restarted, and rejoins;
#   - flctl scaleout 2, then systemctl start fl-server@6670 fl-server@6671:
#     CLUSTER_READY with four servers;
#   - fl-client trains two iterations on the four servers: every server
#     aggregates and checkpoints under the units' sandboxing (left out
#     without the Fashion-MNIST files);
#   - the scheduler and the untouched servers were never restarted (their
#     watchdog pings arrive);
#   - flctl scalein: the server removed ends inactive, not failed;
#   - under the sandbox a server finds a non-loopback address (netlink);
#   - flctl finish: every unit ends inactive, none failed, none restarted;
#   - flcluster.target pulls in the scheduler, and stopping it stops all.
#
# Exit 77 (skip) only when nspawn cannot run here at all: not root, no
# systemd-nspawn, a kernel without the namespaces or overlayfs it needs, no
# permission to create a mount namespace (an unprivileged container), nspawn
# itself failing to start a container; or when the build is configured for
# other directories than /usr, /etc, /var (make distcheck), where systemd
# would not find the units. The reason is printed.
# FL_NSPAWN_TIMEOUT: the longest single wait, in seconds (default 60).
#
# With FL_NSPAWN_DEBS=DIR (tests/test-deb.sh sets it) the tree comes from
# the Debian packages in DIR instead of make install: apt-get install of
# flcluster and flcluster-client creates the user and leaves every unit
# stopped and disabled, the units start, a job trains and its metrics are
# served, and apt-get remove leaves no flcluster unit running.
set -eu

srcdir=${FL_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
builddir=${FL_BUILDDIR:-$PWD}
wait_max=${FL_NSPAWN_TIMEOUT:-60}
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")

skip() { echo "SKIP: $*"; exit 77; }
say() { printf '%s  %s\n' "$(date +%T)" "$*"; }

# ------------------------------------------------- on the host: can it run?

if [ -z "${FL_NSPAWN_INNER:-}" ]; then
        [ "$(id -u)" -eq 0 ] || skip "systemd-nspawn needs root"
        for tool in systemd-nspawn nsenter unshare setpriv mount umount timeout; do
                command -v "$tool" >/dev/null || skip "$tool not found (systemd-nspawn is in the package systemd-container)"
        done
        for ns in mnt:NAMESPACES pid:PID_NS net:NET_NS ipc:IPC_NS uts:UTS_NS; do
                [ -e "/proc/self/ns/${ns%%:*}" ] ||
                        skip "the kernel has no ${ns%%:*} namespaces (CONFIG_${ns#*:}), which systemd-nspawn needs"
        done
        if ! grep -qw overlay /proc/filesystems && ! { modprobe overlay && grep -qw overlay /proc/filesystems; } 2>/dev/null; then
                skip "the kernel has no overlay filesystem (CONFIG_OVERLAY_FS) for the container's root"
        fi
        if ! err=$(unshare --mount true 2>&1); then
                skip "cannot create a mount namespace here ($err); an unprivileged container?"
        fi
        for f in fl-schedulerd fl-serverd flctl; do
                [ -x "$builddir/$f" ] || { echo "FAIL: $builddir/$f was not built"; exit 1; }
        done
        command -v jq >/dev/null || { echo "FAIL: jq is needed to read flctl --json and journalctl -o json"; exit 1; }

        # The rest runs in a mount namespace of its own: the tmpfs and the
        # overlay mounted there are never seen by the host and vanish with it.
        export FL_NSPAWN_INNER=1 FL_BUILDDIR="$builddir" FL_SRCDIR="$srcdir"
        exec unshare --mount --propagation private "$BASH" "$self" "$@"
fi

# ------------------------------------------ in our own mount namespace

running() {
        local state

        state=$(sed -E 's/.*\) ([A-Za-z]).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
        [ "$state" != Z ] && [ "$state" != X ]
}

start_time() {  # of a process: with its pid, who it is
        sed -E 's/.*\) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20
}

# Teardown, shared with the reaper (below): idempotent, each step bounded.
# What is torn down is in $tmp/state, written as it comes into being.
state_load() {
        nspawn_pid="" nspawn_start="" leader="" leader_start=""
        # shellcheck disable=SC1091
        [ ! -f "$tmp/state" ] || . "$tmp/state"
}

state_save() {
        printf 'nspawn_pid=%s nspawn_start=%s leader=%s leader_start=%s\n' \
                "$nspawn_pid" "$nspawn_start" "$leader" "$leader_start" >"$tmp/state"
}

ours() {        # ours PID START: the process we started is still there
        [ -n "$1" ] && running "$1" && [ "$(start_time "$1")" = "$2" ]
}

cgroup_procs() {
        local cg

        for cg in $cgroups; do
                find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null
        done
}

stop_container() {
        local pid pids

        # The first SIGTERM asks the container to power off, the second one
        # makes nspawn kill it.
        for _ in 1 2; do
                ours "$nspawn_pid" "$nspawn_start" || break
                kill -TERM "$nspawn_pid" 2>/dev/null || true
                for _ in $(seq 1 100); do
                        ours "$nspawn_pid" "$nspawn_start" || break
                        sleep 0.1
                done
        done
        # Whatever is left: the leader (its death ends the PID namespace), nspawn,
        # anything in the cgroups made for them.
        for _ in $(seq 1 50); do
                pids=$(cgroup_procs)
                ! ours "$leader" "$leader_start" || pids="$pids $leader"
                ! ours "$nspawn_pid" "$nspawn_start" || pids="$pids $nspawn_pid"
                [ -n "${pids// /}" ] || break
                for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
                sleep 0.1
        done
        [ -z "$nspawn_pid" ] || wait "$nspawn_pid" 2>/dev/null || true
}

# nspawn makes "payload" and "supervisor" below the cgroup it starts in; that
# cgroup is one of ours (see cgroup_make) and goes, empty, with all below it.
remove_cgroups() {
        local cg

        for cg in $cgroups; do
                for _ in $(seq 1 50); do
                        find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
                        [ -d "$cg" ] || break
                        sleep 0.1
                done
                [ ! -d "$cg" ] || echo "warning: could not remove the cgroup $cg" >&2
        done
}

teardown() {
        state_load
        stop_container
        remove_cgroups
        if mountpoint -q "$tmp"; then
                umount -R "$root" 2>/dev/null || umount -R -l "$root" 2>/dev/null
                umount "$tmp" 2>/dev/null || umount -l "$tmp"
        fi
        rm -rf --one-file-system "$tmp"
}

# The reaper: if the test is killed outright (SIGKILL, where no trap runs),
# it tears down what the test left. It runs in a session of its own.
if [ -n "${FL_NSPAWN_REAP:-}" ]; then
        set +e
        tmp=$FL_NSPAWN_TMP root=$FL_NSPAWN_TMP/root cgroups=$FL_NSPAWN_CGROUPS
        while kill -0 "$FL_NSPAWN_REAP" 2>/dev/null; do sleep 1; done
        [ ! -d "$tmp" ] || teardown
        exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fl-nspawn.XXXXXX")
root=$tmp/root
machine=flcluster-test-$$
cgroups="" failed=1
nspawn_pid="" nspawn_start="" leader="" leader_start=""
started=$SECONDS

# in_ct CMD...: run CMD in the container (all its namespaces, its root),
# with a clean environment and bounded by $ct_timeout (default $wait_max).
in_ct() {
        timeout -k 5 "${ct_timeout:-$wait_max}" nsenter -t "$leader" -a \
                env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
                LANG=C.UTF-8 SYSTEMD_PAGER=cat SYSTEMD_COLORS=0 SYSTEMD_LOG_COLOR=0 "$@" </dev/null
}

diagnostics() {
        if [ -z "$leader" ] || ! running "$leader"; then
                echo "--- container console (last 40 lines)"
                tail -n 40 "$tmp/console.log" 2>/dev/null
                return 0
        fi
        echo "--- systemctl status (container)"
        in_ct systemctl status --no-pager --full --lines=0 'fl-*' 2>&1 | head -n 80
        echo "--- journalctl -u 'fl-*' (container, last 80 lines)"
        in_ct journalctl --no-pager -o short-precise -n 80 -u 'fl-*' 2>&1
        echo "--- failed units (container)"
        in_ct systemctl list-units --failed --no-pager --plain 2>&1
}

fail() {
        echo "FAIL: $*"
        diagnostics || true
        exit 1
}

cleanup() {
        local rc=$?

        set +e
        trap - EXIT INT TERM HUP
        state_save 2>/dev/null
        teardown
        echo "test-nspawn: $((SECONDS - started))s"
        [ "$rc" -ne 0 ] || [ "$failed" -eq 0 ] || rc=1
        exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# cgroup_make: a cgroup of the test's own in each hierarchy that tracks
# processes (the unified one, and name=systemd on a hybrid or legacy host),
# below the one we are in. Where that fails nspawn uses ours.
cgroup_make() {
        local line hier path mnt cg

        while IFS= read -r line; do
                hier=${line#*:}
                path=${hier#*:}
                hier=${hier%%:*}
                case $hier in
                "") mnt=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo) ;;
                name=systemd) mnt=$(awk '$9 == "cgroup" && $NF ~ /(^|,)name=systemd(,|$)/ { print $5; exit }' /proc/self/mountinfo) ;;
                *) continue ;;
                esac
                [ -n "$mnt" ] || continue
                cg=$mnt${path%/}/flcluster-nspawn-$$
                if mkdir "$cg" 2>/dev/null; then
                        cgroups="$cgroups $cg"
                else
                        echo "note: cannot create the cgroup $cg; nspawn uses the test's own" >&2
                fi
        done </proc/self/cgroup
}

cgroup_enter() {
        local cg

        for cg in $cgroups; do
                echo "$BASHPID" >"$cg/cgroup.procs" || echo "note: cannot enter the cgroup $cg" >&2
        done
}

start_reaper() {
        FL_NSPAWN_REAP=$$ FL_NSPAWN_TMP=$tmp FL_NSPAWN_CGROUPS=$cgroups \
                setsid "$BASH" "$self" </dev/null >/dev/null 2>&1 &
}

# ---------------------------------------------------------- the root

# An overlay of / (and of /usr, /etc, /var where they are file systems of
# their own) with its upper layer on a tmpfs: no copy of the OS is made.
# nspawn also gets a /run of its own, for its locks and the like (it then
# sees no systemd on the host either, and needs none with --register=no).
make_root() {
        local d err

        mount -t tmpfs -o mode=0755,nosuid,nodev flcluster-nspawn /run
        mount -t tmpfs -o mode=0755 flcluster-nspawn "$tmp"
        mkdir -p "$tmp/upper/root" "$tmp/work/root" "$root" "$tmp/dest"
        if ! err=$(mount -t overlay flcluster-nspawn -o "lowerdir=/,upperdir=$tmp/upper/root,workdir=$tmp/work/root" "$root" 2>&1); then
                skip "cannot mount an overlay of / for the container ($err; $(dmesg 2>/dev/null | grep -i overlay | tail -n 1))"
        fi
        for d in usr etc var opt; do
                mountpoint -q "/$d" || continue
                mkdir -p "$tmp/upper/$d" "$tmp/work/$d"
                mount -t overlay flcluster-nspawn -o "lowerdir=/$d,upperdir=$tmp/upper/$d,workdir=$tmp/work/$d" "$root/$d"
        done
        mountpoint -q "$root" || fail "$root is not the overlay"
        [ -e "$root/usr/lib/os-release" ] || [ -e "$root/etc/os-release" ] ||
                fail "the host has no os-release file; nspawn would not boot its root"
}

# Whatever flcluster the host itself has (units, drop-ins, state) must not
# leak in: these deletions are whiteouts in the overlay.
write_file() {     # write_file PATH-IN-CONTAINER: stdin to it
        mkdir -p "$(dirname "$root$1")"
        cat >"$root$1"
}

prepare_root() {
        local unit

        rm -rf "$root"/etc/systemd/system/fl-* "$root"/etc/systemd/system/flcluster* \
                "$root"/etc/systemd/system/*.wants/fl-* "$root"/etc/systemd/system/*.wants/flcluster* \
                "$root"/etc/default/flcluster "$root"/etc/flcluster "$root"/var/lib/flcluster \
                "$root"/var/lib/private/flcluster
        systemd-id128 new >"$root/etc/machine-id"

        # Boot only what the cluster needs: no getty, no host services.
        write_file /etc/systemd/system/flcluster-test.target <<-'EOF'
	[Unit]
	Description=flcluster test container
	Requires=sysinit.target sockets.target
	After=sysinit.target sockets.target
	AllowIsolate=yes
	EOF
        ln -sf flcluster-test.target "$root/etc/systemd/system/default.target"
        # No clock to sync in a container; no network to wait for either.
        for unit in systemd-timesyncd.service systemd-networkd-wait-online.service \
                    NetworkManager-wait-online.service ifupdown-wait-online.service; do
                ln -sf /dev/null "$root/etc/systemd/system/$unit"
        done
        write_file /etc/systemd/journald.conf.d/flcluster-test.conf <<-'EOF'
	[Journal]
	Storage=volatile
	RateLimitBurst=0
	EOF

        # The configuration every unit reads (fl-serverd(8), SYSTEMD); the
        # packages' own comes first, when they are tested. A Docker image's
        # policy-rc.d (which tells maintainer scripts to leave services
        # alone) is not what a system the packages install on has.
        if [ -n "${FL_NSPAWN_DEBS:-}" ]; then
                rm -f "$root/usr/sbin/policy-rc.d"
        else
                write_config
        fi
        # A short watchdog so that a hung daemon is caught within the test.
        # SIGKILL rather than the default SIGABRT: the core dump of a process
        # in the container would go to the host's core_pattern.
        for unit in fl-server@.service fl-schedulerd.service; do
                write_file "/etc/systemd/system/$unit.d/test-watchdog.conf" <<-'EOF'
		[Service]
		WatchdogSec=5s
		WatchdogSignal=SIGKILL
		EOF
        done
}

write_config() {
        write_file /etc/default/flcluster <<-'EOF'
	FL_SCHEDULER_OPTS="--server_num=2 --node_timeout=5 --fl_iteration_num=2 --start_fl_job_threshold=4 --client_epoch_num=1 --client_batch_size=32 --client_learning_rate=0.01"
	FL_SERVER_OPTS="--server_num=2 --node_timeout=5 --model_path=/etc/flcluster/lenet5.fl"
	EOF
}

# ----------------------------------------------------------- the boot

boot() {
        local pid child deadline state

        cgroup_make
        start_reaper
        say "Booting the container (systemd-nspawn --boot, overlay of /)"
        (
                cgroup_enter
                exec systemd-nspawn --register=no --keep-unit \
                        --private-network --link-journal=no --console=read-only \
                        --machine="$machine" --directory="$root" --boot
        ) </dev/null >"$tmp/console.log" 2>&1 &
        nspawn_pid=$!
        nspawn_start=$(start_time "$nspawn_pid")
        state_save

        # The leader is nspawn's child in a PID namespace of its own.
        deadline=$((SECONDS + 30))
        while [ -z "$leader" ]; do
                if ! running "$nspawn_pid"; then
                        echo "--- systemd-nspawn said:"
                        cat "$tmp/console.log"
                        skip "systemd-nspawn cannot start a container here (see its messages above)"
                fi
                [ "$SECONDS" -lt "$deadline" ] || fail "systemd-nspawn started no container within 30s"
                # shellcheck disable=SC2013 # the file is a list of words
                for child in $(cat /proc/"$nspawn_pid"/task/*/children 2>/dev/null); do
                        pid=$(readlink "/proc/$child/ns/pid" 2>/dev/null) || continue
                        [ "$pid" != "$(readlink /proc/self/ns/pid)" ] && leader=$child
                done
                [ -n "$leader" ] || sleep 0.1
        done
        leader_start=$(start_time "$leader")
        state_save

        # Up once systemd has finished the boot; "degraded" is fine (some
        # unit of the host's may not work in a container).
        deadline=$((SECONDS + wait_max))
        while :; do
                state=$(in_ct systemctl is-system-running --wait 2>/dev/null) || true
                case $state in
                running|degraded) break ;;
                esac
                [ "$SECONDS" -lt "$deadline" ] || fail "the container did not boot within ${wait_max}s (state: ${state:-no answer})"
                running "$leader" || fail "the container died while booting"
                sleep 0.5
        done
        say "Container up ($state), leader pid $leader"
        if [ "$state" = degraded ]; then
                echo "note: units that failed in the container (not ours):"
                in_ct systemctl list-units --failed --no-pager --plain --no-legend || true
        fi
}

# ------------------------------------------------------------ install

# make install into a directory of ours, before the boot: a build configured
# for other places than Debian's (make distcheck's prefix) cannot be tested
# under systemd, as systemd and D-Bus would not find its units and policy.
make_install() {
        local unit f

        say "make install DESTDIR=..."
        make -C "$builddir" --no-print-directory -s install DESTDIR="$tmp/dest" >"$tmp/install.log" 2>&1 || {
                cat "$tmp/install.log"
                fail "make install failed"
        }
        unit=""
        for f in "$tmp"/dest/{usr/,}lib/systemd/system/fl-schedulerd.service; do
                [ ! -f "$f" ] || unit=$f
        done
        if [ ! -x "$tmp/dest/usr/sbin/fl-schedulerd" ] || [ -z "$unit" ] ||
           [ ! -f "$tmp/dest/usr/share/dbus-1/system.d/org.flcluster.Scheduler1.conf" ] ||
           ! grep -qx 'EnvironmentFile=-/etc/default/flcluster' "$unit"; then
                echo "--- installed:"
                (cd "$tmp/dest" && find . ! -type d | sort)
                skip "the build does not install into /usr, /etc and /lib/systemd/system (configured with another prefix, as by make distcheck?); configure with --prefix=/usr --sysconfdir=/etc --localstatedir=/var"
        fi
}

install_tree() {
        say "Copying the installed tree into the container"
        # The default configuration is installed, but the container's own (the
        # operator's, written before the boot) is kept, as a package keeps it.
        [ -f "$tmp/dest/etc/default/flcluster" ] || fail "make install did not install /etc/default/flcluster"
        # Debian's /lib, /bin, /sbin are symbolic links to /usr: keep them.
        tar -C "$tmp/dest" --exclude=./etc/default/flcluster -cf - . |
                tar -C "$root" -xf - --keep-directory-symlink --no-same-owner ||
                fail "copying the installed tree into the container failed"

        say "systemd-sysusers, daemon-reload, D-Bus reload (what a package does)"
        in_ct systemd-sysusers || fail "systemd-sysusers failed"
        in_ct getent passwd flcluster >/dev/null || fail "systemd-sysusers did not create the user flcluster"
        if [ -n "$(ls "$tmp"/dest/usr/lib/tmpfiles.d/ 2>/dev/null)" ]; then
                in_ct systemd-tmpfiles --create || fail "systemd-tmpfiles --create failed"
        fi
        in_ct systemctl daemon-reload || fail "systemctl daemon-reload failed"
        # The servers' initial model (a scale-out completes once the new
        # servers hold the cluster's model).
        mkdir -p "$root/etc/flcluster"
        in_ct fl-client init-model --arch lenet5 --seed 1 -o /etc/flcluster/lenet5.fl >/dev/null ||
                fail "fl-client init-model failed"
        in_ct systemctl start dbus.service || fail "dbus.service does not start"
        in_ct systemctl reload dbus.service || fail "dbus.service does not reload"
}

# ------------------------------------------------------------ helpers

prop() {        # prop UNIT PROPERTY: its value
        in_ct systemctl show -p "$2" --value "$1"
}

nodes_json() {
        in_ct flctl --json nodes 2>/dev/null
}

# wait_until SECONDS WHAT CMD...: until CMD succeeds, else fail
wait_until() {
        local secs=$1 what=$2 deadline

        shift 2
        deadline=$((SECONDS + secs))
        until "$@"; do
                [ "$SECONDS" -lt "$deadline" ] || fail "$what: not within ${secs}s"
                sleep 0.5
        done
}

# cluster_ready N: CLUSTER_READY with N servers alive, each with a rank
cluster_ready() {
        local state nodes

        state=$(in_ct flctl --json state 2>/dev/null | jq -r .cluster_state 2>/dev/null) || return 1
        [ "$state" = CLUSTER_READY ] || return 1
        nodes=$(nodes_json) || return 1
        [ "$(jq '[.node_ids[] | select(.role == "SERVER" and .alive and .rank_id != "")] | length' <<<"$nodes")" = "$1" ]
}

node_id_of() {  # the node id a server on PORT keeps in its state directory
        cat "$root/var/lib/flcluster/node-id-$1" 2>/dev/null
}

rank_of() {     # rank_of NODE_ID: its rank, as flctl shows it
        nodes_json | jq -r --arg id "$1" '.node_ids[] | select(.node_id == $id and .alive) | .rank_id'
}

unit_running() {   # active/running, with a main process other than $2
        [ "$(prop "$1" ActiveState)" = active ] && [ "$(prop "$1" SubState)" = running ] &&
                [ "$(prop "$1" MainPID)" != "${2:-0}" ]
}

restarted() {   # restarted UNIT N: NRestarts is N and the unit runs again
        [ "$(prop "$1" NRestarts)" = "$2" ] && unit_running "$1"
}

# ------------------------------------------------------------- checks

check_start() {
        local unit state pid user status

        say "systemctl start fl-schedulerd fl-server@6668 fl-server@6669"
        in_ct systemctl start fl-schedulerd.service fl-server@6668.service fl-server@6669.service ||
                fail "systemctl start did not succeed (Type=notify: the units must send READY=1)"
        for unit in fl-schedulerd.service fl-server@6668.service fl-server@6669.service; do
                state=$(in_ct systemctl show -p ActiveState -p SubState "$unit" | tr '\n' ' ')
                [ "$state" = "ActiveState=active SubState=running " ] || fail "$unit: $state"
                pid=$(prop "$unit" MainPID)
                user=$(in_ct ps -o user= -p "$pid" | tr -d ' ')
                [ "$user" = flcluster ] || fail "$unit: runs as '$user', not flcluster"
                status=$(prop "$unit" StatusText)
                [ -n "$status" ] || fail "$unit: no STATUS= line"
                echo "ok: $unit: $state(pid $pid, user $user; status: $status)"
        done
}

check_nodes() {
        local out

        wait_until "$wait_max" "CLUSTER_READY with 2 servers" cluster_ready 2
        say "flctl nodes (D-Bus, the container's system bus)"
        out=$(in_ct flctl nodes) || fail "flctl nodes failed"
        printf '%s\n' "$out"
        [ "$(grep -c SERVER <<<"$out")" -eq 2 ] || fail "flctl nodes does not show 2 servers"
        out=$(in_ct setpriv --reuid=nobody --regid=nogroup --clear-groups flctl nodes 2>&1) ||
                fail "flctl nodes as nobody (the policy lets anyone read): $out"
        [ "$(grep -c SERVER <<<"$out")" -eq 2 ] || fail "flctl nodes as nobody does not show 2 servers: $out"
        echo "ok: flctl nodes shows the 2 servers, for root and for nobody"
}

journal_has_started() {
        in_ct journalctl --no-pager -u fl-server@6669.service -o cat | grep -qx 'Server started successfully.'
}

check_journal() {
        local id rank entries

        wait_until 10 "'Server started successfully.' in journalctl -u fl-server@6669" journal_has_started
        echo "ok: journalctl -u fl-server@6669 -o cat has 'Server started successfully.'"

        id=$(node_id_of 6669) || fail "no node-id-6669 in the state directory"
        rank=$(rank_of "$id")
        [ -n "$rank" ] || fail "fl-server@6669 ($id) has no rank"
        entries=$(in_ct journalctl --no-pager -o json -u fl-server@6669.service FL_ROLE=SERVER) ||
                fail "journalctl -o json FL_ROLE=SERVER failed"
        [ -n "$entries" ] || fail "no line of fl-server@6669 has FL_ROLE=SERVER"
        # The line an operator looks for carries who said it.
        jq -s -e --arg id "$id" --arg rank "$rank" 'any(.[]; .MESSAGE == "Server started successfully." and
                .FL_ROLE == "SERVER" and .FL_NODE_ID == $id and .FL_RANK == $rank and (.PRIORITY | tonumber) <= 6)' \
                <<<"$entries" >/dev/null ||
                fail "'Server started successfully.' of fl-server@6669 lacks FL_ROLE=SERVER, FL_NODE_ID=$id, FL_RANK=$rank or PRIORITY<=6"
        [ -n "$(in_ct journalctl --no-pager -o cat -u fl-server@6669.service FL_RANK="$rank")" ] ||
                fail "journalctl -u fl-server@6669 FL_RANK=$rank finds nothing"
        [ -n "$(in_ct journalctl --no-pager -o cat -u fl-server@6669.service FL_ITERATION=1)" ] ||
                fail "journalctl -u fl-server@6669 FL_ITERATION=1 finds nothing"
        [ -n "$(in_ct journalctl --no-pager -o cat -u fl-schedulerd.service FL_ROLE=SCHEDULER FL_CLUSTER_STATE=CLUSTER_READY)" ] ||
                fail "no line of fl-schedulerd has FL_ROLE=SCHEDULER and FL_CLUSTER_STATE=CLUSTER_READY"
        echo "ok: the journal has FL_ROLE, FL_NODE_ID=$id, FL_RANK=$rank, FL_ITERATION for fl-server@6669," \
                "FL_ROLE=SCHEDULER and FL_CLUSTER_STATE for fl-schedulerd"
}

# rejoins UNIT PORT NRESTARTS OLD-PID NODE-ID RANK: systemd restarted UNIT (now
# NRESTARTS times), and the server came back with its node id and rank
rejoins() {
        local unit=$1 port=$2 n=$3 old_pid=$4 id=$5 rank=$6

        wait_until "$wait_max" "systemd restarting $unit (NRestarts=$n)" restarted "$unit" "$n"
        [ "$(prop "$unit" MainPID)" != "$old_pid" ] || fail "$unit: still the old process"
        [ "$(node_id_of "$port")" = "$id" ] || fail "$unit: its node id changed"
        wait_until "$wait_max" "CLUSTER_READY with 2 servers after $unit came back" cluster_ready 2
        [ "$(rank_of "$id")" = "$rank" ] || fail "$unit: rank $(rank_of "$id"), was $rank"
}

check_kill() {
        local id rank pid

        id=$(node_id_of 6669)
        rank=$(rank_of "$id")
        pid=$(prop fl-server@6669.service MainPID)
        say "systemctl kill -s KILL fl-server@6669 (pid $pid, rank $rank)"
        in_ct systemctl kill -s KILL fl-server@6669.service || fail "systemctl kill failed"
        rejoins fl-server@6669.service 6669 1 "$pid" "$id" "$rank"
        echo "ok: fl-server@6669 restarted by systemd (pid $(prop fl-server@6669.service MainPID)), rejoined with rank $rank"
}

check_watchdog() {
        local id rank pid t0

        id=$(node_id_of 6668)
        rank=$(rank_of "$id")
        pid=$(prop fl-server@6668.service MainPID)
        say "SIGSTOP to fl-server@6668 (pid $pid, rank $rank, WatchdogSec=5s)"
        t0=$SECONDS
        in_ct systemctl kill -s STOP --kill-who=main fl-server@6668.service || fail "systemctl kill -s STOP failed"
        rejoins fl-server@6668.service 6668 1 "$pid" "$id" "$rank"
        in_ct journalctl --no-pager -u fl-server@6668.service -o cat | grep -q 'Watchdog timeout' ||
                fail "fl-server@6668 was restarted, but not for a watchdog timeout"
        echo "ok: the watchdog caught the stopped fl-server@6668 and systemd restarted it; rank $rank again ($((SECONDS - t0))s)"
}

check_scaleout() {
        local out

        say "flctl scaleout 2; systemctl start fl-server@6670 fl-server@6671"
        out=$(in_ct flctl scaleout 2) || fail "flctl scaleout 2: $out"
        echo "$out"
        # The new servers start with server_num raised by 2 (flctl(1)), set
        # for their instances alone in /etc/default/flcluster@PORT.
        for port in 6670 6671; do
                sed -n 's/^FL_SERVER_OPTS=.*/&/p' "$root/etc/default/flcluster" |
                        sed 's/--server_num=2/--server_num=4/' >"$root/etc/default/flcluster@$port"
                grep -q -- '--server_num=4' "$root/etc/default/flcluster@$port" ||
                        fail "could not write /etc/default/flcluster@$port"
        done
        in_ct systemctl start fl-server@6670.service fl-server@6671.service ||
                fail "systemctl start fl-server@6670 fl-server@6671 did not succeed"
        wait_until "$wait_max" "CLUSTER_READY with 4 servers after the scale-out" cluster_ready 4
        in_ct flctl nodes
        echo "ok: scaled out to 4 servers, CLUSTER_READY"
}

# Two iterations of LeNet-5 with four simulated devices on the four servers:
# the all-reduce between servers, the checkpoints in the state directory and
# the device protocol, all under the units' sandboxing. Needs Fashion-MNIST
# (the package dataset-fashion-mnist); without it this step is left out.
# ct_train DEVICES PORT...: fl-client train in the container, through the
# servers on those ports; returns 1 (after a note) without Fashion-MNIST.
ct_train() {
        local data=/usr/share/datasets/fashion-mnist devices=$1 port servers="" out

        shift
        if [ ! -e "$root$data/train-images-idx3-ubyte.gz" ]; then
                echo "note: no Fashion-MNIST in $data; not training"
                return 1
        fi
        for port in "$@"; do
                servers="$servers${servers:+,}http://127.0.0.1:$port"
        done
        say "fl-client train: $devices devices on the servers $*"
        out=$(ct_timeout=$((3 * wait_max)) in_ct fl-client train --devices "$devices" --seed 1 --timeout "$wait_max" \
                --servers "$servers" 2>&1) || fail "fl-client train failed: $out"
        printf '%s\n' "$out"
}

check_training() {
        local n

        ct_train 4 6668 6669 6670 6671 || return 0
        for n in 6668 6669 6670 6671; do
                in_ct journalctl --no-pager -o cat -u "fl-server@$n.service" FL_ITERATION=2 | grep -q '^Iteration 2 aggregated' ||
                        fail "fl-server@$n: no 'Iteration 2 aggregated' line with FL_ITERATION=2"
                [ -s "$root/var/lib/flcluster/server-$n.db" ] || fail "fl-server@$n: no checkpoint database in /var/lib/flcluster"
        done
        echo "ok: trained 2 iterations; every server aggregated them (journalctl FL_ITERATION=2) and checkpointed"
}

check_restarts() {
        local unit n expect

        for unit in fl-schedulerd.service fl-server@666{8,9}.service fl-server@667{0,1}.service; do
                case $unit in
                fl-server@6668.service|fl-server@6669.service) expect=1 ;;
                *) expect=0 ;;
                esac
                n=$(prop "$unit" NRestarts)
                [ "$n" = "$expect" ] || fail "$unit: restarted $n times, expected $expect (watchdog pings missing?)"
        done
        echo "ok: no unexpected restarts (the scheduler and the other servers kept pinging the watchdog)"
}

all_inactive() {
        local unit

        for unit in "$@"; do
                [ "$(prop "$unit" ActiveState)" = inactive ] || return 1
        done
}

journal_cursor() {
        in_ct journalctl --no-pager -n 0 --show-cursor | sed -n 's/^-- cursor: //p'
}

# ended_well CURSOR UNIT...: each unit stopped on its own after CURSOR (exit
# 0), is inactive, not failed, and was not restarted. systemd may unload an
# inactive unit (garbage collection), and with it NRestarts and Result: the
# journal tells how each ended.
ended_well() {
        local cursor=$1 unit state log

        shift
        wait_until "$wait_max" "$* inactive" all_inactive "$@"
        sleep 3         # RestartSec=1s: a unit that is to be restarted would be by now
        for unit in "$@"; do
                state=$(in_ct systemctl is-failed "$unit" || true)
                [ "$state" = inactive ] || fail "$unit is $state"
                log=$(in_ct journalctl --no-pager -o cat --after-cursor="$cursor" -u "$unit")
                grep -q 'Deactivated successfully' <<<"$log" || fail "$unit did not end successfully: $log"
                if grep -E 'Failed with result|Scheduled restart job|Starting ' <<<"$log"; then
                        fail "$unit failed or was restarted"
                fi
        done
}

# A server removed by scale-in exits 0: inactive, not failed, not restarted.
check_scalein() {
        local id cursor out

        id=$(node_id_of 6671)
        cursor=$(journal_cursor)
        [ -n "$cursor" ] || fail "journalctl --show-cursor gave no cursor"
        say "flctl scalein <node id of fl-server@6671>"
        out=$(in_ct flctl scalein "$id") || fail "flctl scalein $id: $out"
        echo "$out"
        ended_well "$cursor" fl-server@6671.service
        wait_until "$wait_max" "CLUSTER_READY with 3 servers after the scale-in" cluster_ready 3
        echo "ok: fl-server@6671, scaled in, is inactive, not failed, not restarted; 3 servers remain"
}

# With a scheduler off loopback, a server finds the address it advertises
# with getifaddrs(), over a netlink socket: RestrictAddressFamilies= and the
# system call filter of fl-server@.service must allow that. A veth pair in
# the container's own network namespace gives it a non-loopback address; an
# instance pointed at a scheduler there (none listens) must get as far as
# advertising it. Left out where the kernel has no veth.
check_netlink() {
        local cursor

        if ! in_ct ip link add fltest0 type veth peer name fltest1 2>/dev/null; then
                echo "note: no veth in this kernel; not checking the address lookup over netlink"
                return 0
        fi
        if ! in_ct ip addr add 10.99.0.1/24 dev fltest0 || ! in_ct ip link set fltest0 up ||
           ! in_ct ip link set fltest1 up; then
                fail "cannot set up the veth pair in the container"
        fi
        write_file /etc/systemd/system/fl-server@6680.service.d/test-netlink.conf <<-'EOF'
	[Service]
	ExecStart=
	ExecStart=/usr/sbin/fl-serverd --scheduler_ip=10.99.0.1 --scheduler_port=9 --fl_server_port=%i --local_server_num=1
	EOF
        in_ct systemctl daemon-reload || fail "systemctl daemon-reload failed"
        cursor=$(journal_cursor)
        say "fl-server@6680 with the scheduler on 10.99.0.1 (a veth in the container)"
        in_ct systemctl start --no-block fl-server@6680.service || fail "systemctl start fl-server@6680 failed"
        wait_until "$wait_max" "fl-server@6680 advertising 10.99.0.1 (getifaddrs in the sandbox)" \
                journal_has "$cursor" fl-server@6680.service 'advertised as 10\.99\.0\.1'
        in_ct systemctl stop fl-server@6680.service || fail "systemctl stop fl-server@6680 failed"
        [ "$(in_ct systemctl is-failed fl-server@6680.service || true)" = inactive ] ||
                fail "fl-server@6680 is not inactive after systemctl stop"
        echo "ok: under the sandbox a server finds its non-loopback address over netlink"
}

journal_has() {         # journal_has CURSOR UNIT REGEX
        in_ct journalctl --no-pager -o cat --after-cursor="$1" -u "$2" | grep -q -- "$3"
}

check_finish() {
        local out cursor failed_units

        cursor=$(journal_cursor)
        [ -n "$cursor" ] || fail "journalctl --show-cursor gave no cursor"
        say "flctl finish"
        out=$(in_ct flctl finish) || fail "flctl finish failed: $out"
        printf '%s\n' "$out"
        ended_well "$cursor" fl-schedulerd.service fl-server@6668.service fl-server@6669.service fl-server@6670.service
        failed_units=$(in_ct systemctl list-units --failed --plain --no-legend 'fl-*' 'flcluster*')
        [ -z "$failed_units" ] || fail "failed units after flctl finish: $failed_units"
        echo "ok: after flctl finish every unit is inactive, none failed, none restarted"
}

# The operator's whole-cluster handle: the target pulls in the scheduler,
# and stopping it stops every server too (PartOf=); all end inactive.
check_target() {
        local unit state

        say "systemctl start flcluster.target fl-server@6668 fl-server@6669; systemctl stop flcluster.target"
        in_ct systemctl start flcluster.target fl-server@6668.service fl-server@6669.service ||
                fail "systemctl start flcluster.target fl-server@6668 fl-server@6669 did not succeed"
        for unit in fl-schedulerd.service fl-server@6668.service fl-server@6669.service; do
                unit_running "$unit" || fail "$unit does not run after systemctl start flcluster.target"
        done
        in_ct systemctl stop flcluster.target || fail "systemctl stop flcluster.target failed"
        for unit in flcluster.target fl-schedulerd.service fl-server@6668.service fl-server@6669.service; do
                state=$(in_ct systemctl is-failed "$unit" || true)
                [ "$state" = inactive ] || fail "$unit is $state after systemctl stop flcluster.target"
        done
        echo "ok: flcluster.target starts the scheduler; stopping it stops the scheduler and the servers, none failed"
}

# ------------------------------------------- the Debian packages (test-deb.sh)

# apt-get install of the two packages, as an operator does: the account and
# the state directory are made, the units known, and nothing runs.
install_debs() {
        local deb debs unit state

        # The system bus first: the package reloads its policy into it.
        in_ct systemctl start dbus.service || fail "dbus.service does not start"
        say "apt-get install ./flcluster_*.deb ./flcluster-client_*.deb (in the container)"
        mkdir -p "$root/root/debs"
        debs=""
        for deb in "$FL_NSPAWN_DEBS"/flcluster_*.deb "$FL_NSPAWN_DEBS"/flcluster-client_*.deb; do
                [ -f "$deb" ] || fail "no $deb"
                cp "$deb" "$root/root/debs/"
                debs="$debs /root/debs/$(basename "$deb")"
        done
        # shellcheck disable=SC2086 # one word per package file
        ct_timeout=$((3 * wait_max)) in_ct env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
                --no-install-recommends $debs \
                >"$tmp/apt-install.log" 2>&1 || { cat "$tmp/apt-install.log"; fail "apt-get install of the packages failed"; }
        in_ct getent passwd flcluster >/dev/null || fail "installing flcluster did not create the user flcluster"
        [ "$(in_ct stat -c %U "/var/lib/flcluster")" = flcluster ] ||
                fail "/var/lib/flcluster is not owned by flcluster after the install"
        for unit in fl-schedulerd.service fl-server@6668.service flcluster.target; do
                state=$(in_ct systemctl is-active "$unit" || true)
                [ "$state" = inactive ] || fail "$unit is $state right after the install: nothing may start unasked"
        done
        state=$(in_ct systemctl is-enabled fl-schedulerd.service || true)
        [ "$state" = disabled ] || fail "fl-schedulerd.service is $state after the install, not disabled"
        [ -x "$root/usr/bin/fl-client" ] && [ -f "$root/usr/share/flcluster/status/index.html" ] ||
                fail "fl-client or the status page is missing after the install"
        echo "ok: the packages install; the user and /var/lib/flcluster exist; no unit runs or is enabled"

        # The operator's configuration, then the servers' model; each server
        # serves its metrics on a port of its own.
        write_config
        for port in 6668 6669; do
                sed -n 's/^FL_SERVER_OPTS="\(.*\)"$/FL_SERVER_OPTS="\1 --metrics_port=9'"${port#6}"'"/p' \
                        "$root/etc/default/flcluster" >"$root/etc/default/flcluster@$port"
        done
        mkdir -p "$root/etc/flcluster"
        in_ct fl-client init-model --arch lenet5 --seed 1 -o /etc/flcluster/lenet5.fl >/dev/null ||
                fail "fl-client init-model failed"
}

# A job of two iterations through the packaged units; the scheduler writes
# its metrics file and serves /metrics and the status page from the package.
check_deb_training() {
        local lines

        # 40 devices of 1,500 images: the 4 an iteration admits train quickly.
        ct_train 40 6668 6669 || return 0
        lines=$(wc -l <"$root/var/lib/flcluster/metrics.json" 2>/dev/null || echo 0)
        [ "$lines" -eq 2 ] || fail "/var/lib/flcluster/metrics.json has $lines lines, not one per iteration (2)"
        in_ct curl -sf http://127.0.0.1:11202/metrics | grep -qx 'flcluster_iterations_total{result="completed"} 2' ||
                fail "the scheduler's /metrics does not count 2 completed iterations"
        in_ct curl -sf http://127.0.0.1:9668/metrics | grep -q '^flcluster_device_requests_total{round="updateModel"' ||
                fail "fl-server@6668 serves no device metrics on its metrics_port"
        in_ct curl -sf http://127.0.0.1:11202/ | grep -q '<script src="status.js"' ||
                fail "GET / does not serve the packaged status page"
        echo "ok: trained 2 iterations; metrics.json has 2 lines; /metrics of the scheduler and a server; the status page"
}

# apt-get remove stops every flcluster unit (the templated servers too) and
# leaves none loaded or running; the operator's data stays.
check_deb_remove() {
        local left

        say "apt-get remove flcluster flcluster-client"
        ct_timeout=$((2 * wait_max)) in_ct env DEBIAN_FRONTEND=noninteractive apt-get remove -y -q \
                flcluster flcluster-client >"$tmp/apt-remove.log" 2>&1 ||
                { cat "$tmp/apt-remove.log"; fail "apt-get remove failed"; }
        left=$(in_ct systemctl list-units --all --plain --no-legend --state=active,activating,deactivating,reloading \
                'fl-*' flcluster.target)
        [ -z "$left" ] || fail "units still running after apt-get remove: $left"
        ! in_ct systemctl cat fl-schedulerd.service >/dev/null 2>&1 || fail "fl-schedulerd.service is still known"
        [ -z "$(in_ct pgrep -x fl-schedulerd || true)$(in_ct pgrep -x fl-serverd || true)" ] ||
                fail "flcluster daemons still run after apt-get remove"
        [ -f "$root/var/lib/flcluster/scheduler.db" ] || fail "apt-get remove deleted the state directory's data"
        echo "ok: after apt-get remove no flcluster unit runs or is known; /var/lib/flcluster is kept"
}

# --------------------------------------------------------------- main

make_root
if [ -n "${FL_NSPAWN_DEBS:-}" ]; then
        prepare_root
        boot
        install_debs
        check_start
        check_nodes
        check_deb_training
        check_deb_remove
        failed=0
        echo "PASS: the flcluster packages under systemd in a container"
        exit 0
fi
make_install
prepare_root
boot
install_tree
check_start
check_nodes
check_journal
check_kill
check_watchdog
check_scaleout
check_training
check_restarts
check_scalein
check_netlink
check_finish
check_target
failed=0
echo "PASS: flcluster under systemd in a container"
