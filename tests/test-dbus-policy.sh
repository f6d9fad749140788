#!/bin/bash
# The installed D-Bus policy does what fl-schedulerd(8) says, on a private
# bus with the system bus's default policy and our policy file included,
# with the real fl-schedulerd on it:
#   - root may own org.flcluster.Scheduler1, and so may the user flcluster;
#   - members of the group flcluster may call every method;
#   - everybody else may read (Introspect, properties, ListNodes, GetState)
#     but not call Finish, nor own the name.
# The test runs as root and plays the other users with setpriv. The user
# and group flcluster need not exist here: the test's copy of the policy
# gives their rules to the stock users "bin" and group "daemon".
# Exit 77 (skip) when not root, or without dbus-daemon/dbus-send/setpriv.
set -eu

builddir=${FL_BUILDDIR:-$PWD}
dbus_daemon=${FL_DBUS_DAEMON:-$(command -v dbus-daemon || true)}
policy=$builddir/units/org.flcluster.Scheduler1.conf
name=org.flcluster.Scheduler1
path=/org/flcluster/Scheduler1

if [ "$(id -u)" -ne 0 ]; then
        echo "SKIP: needs root to act as other users"
        exit 77
fi
for tool in "$dbus_daemon" dbus-send setpriv; do
        if [ -z "$tool" ] || ! command -v "$tool" >/dev/null; then
                echo "SKIP: ${tool:-dbus-daemon} not found"
                exit 77
        fi
done
if ! getent passwd bin >/dev/null || ! getent passwd daemon >/dev/null || ! getent passwd nobody >/dev/null; then
        echo "SKIP: the stock users bin, daemon and nobody are needed"
        exit 77
fi
[ -f "$policy" ] || { echo "FAIL: $policy was not built"; exit 1; }

tmp=$(mktemp -d)
chmod 755 "$tmp"
bus_pid="" scheduler_pid=""
cleanup() {
        [ -z "$scheduler_pid" ] || kill "$scheduler_pid" 2>/dev/null || true
        [ -z "$bus_pid" ] || kill "$bus_pid" 2>/dev/null || true
        wait 2>/dev/null || true
        rm -rf "$tmp"
}
trap cleanup EXIT

sed -e 's/user="flcluster"/user="bin"/' -e 's/group="flcluster"/group="daemon"/' "$policy" > "$tmp/policy.conf"
if ! grep -q 'user="bin"' "$tmp/policy.conf" || ! grep -q 'group="daemon"' "$tmp/policy.conf"; then
        echo "FAIL: the policy has no rule for the user and the group flcluster"
        exit 1
fi

# The default policy of Debian's system.conf, and ours.
cat > "$tmp/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$tmp/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <include>$tmp/policy.conf</include>
</busconfig>
EOF

"$dbus_daemon" --config-file="$tmp/bus.conf" --nofork --nopidfile >"$tmp/bus.log" 2>&1 &
bus_pid=$!
for _ in $(seq 1 100); do
        [ -S "$tmp/bus" ] && break
        kill -0 "$bus_pid" 2>/dev/null || break
        sleep 0.05
done
if [ ! -S "$tmp/bus" ]; then
        cat "$tmp/bus.log"
        echo "FAIL: dbus-daemon refused the configuration with the policy"
        exit 1
fi
export DBUS_SYSTEM_BUS_ADDRESS=unix:path=$tmp/bus

# Free TCP ports for the scheduler: two consecutive ones nobody listens on.
used=$(ss -Htan 2>/dev/null | awk '{ sub(/.*:/, "", $4); print $4 }' | sort -un || true)
for _ in $(seq 1 100); do
        port=$((20000 + RANDOM % 40000))
        grep -qx -e "$port" -e "$((port + 1))" <<<"$used" || break
done

"$builddir/fl-schedulerd" --scheduler_ip=127.0.0.1 --scheduler_port="$port" \
        --scheduler_manage_port=$((port + 1)) --state_dir="$tmp/state" >"$tmp/scheduler.log" 2>&1 &
scheduler_pid=$!

# as USER: dbus-send ARGS...; prints the reply or the error, never fails
as() {
        local user=$1 group
        shift
        group=$(id -gn "$user")
        setpriv --reuid="$user" --regid="$group" --clear-groups \
                dbus-send --system --print-reply --reply-timeout=3000 "$@" 2>&1 || true
}

fail=0
# "denied" is the bus's refusal, by the policy; "refused" an AccessDenied
# from fl-schedulerd itself (sd-bus refuses unprivileged callers a method
# not marked SD_BUS_VTABLE_UNPRIVILEGED).
expect() {      # expect allowed|denied WHAT OUTPUT
        local want=$1 what=$2 out=$3 got=allowed

        case $out in
        *"Rejected send message"*|*"not allowed to own"*) got=denied ;;
        *AccessDenied*) got=refused ;;
        esac
        if [ "$got" = "$want" ]; then
                echo "ok: $what: $got"
        else
                printf '%s\n' "$out"
                echo "FAIL: $what: $got, expected $want"
                fail=1
        fi
}

request_name() {
        as "$1" --dest=org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus.RequestName \
                string:$name uint32:4
}

# The scheduler (root) owns the name once it is up.
for _ in $(seq 1 100); do
        owner=$(dbus-send --system --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
                org.freedesktop.DBus.NameHasOwner string:$name 2>/dev/null | awk '/boolean/ { print $2 }')
        [ "$owner" = true ] && break
        kill -0 "$scheduler_pid" 2>/dev/null || break
        sleep 0.1
done
if [ "$owner" != true ]; then
        cat "$tmp/scheduler.log"
        echo "FAIL: fl-schedulerd running as root did not get the name $name"
        exit 1
fi
echo "ok: root owns $name"

expect allowed "the user flcluster (bin) requests the name" "$(request_name bin)"
expect denied "an operator (group daemon) requests the name" "$(request_name daemon)"
expect denied "nobody requests the name" "$(request_name nobody)"

for user in nobody daemon; do
        expect allowed "$user: GetState" "$(as $user --dest=$name $path $name.GetState)"
        expect allowed "$user: ListNodes" "$(as $user --dest=$name $path $name.ListNodes)"
        expect allowed "$user: Get ClusterState" \
                "$(as $user --dest=$name $path org.freedesktop.DBus.Properties.Get string:$name string:ClusterState)"
        expect allowed "$user: Introspect" "$(as $user --dest=$name $path org.freedesktop.DBus.Introspectable.Introspect)"
done
expect denied "nobody: Properties.Set" \
        "$(as nobody --dest=$name $path org.freedesktop.DBus.Properties.Set string:$name string:ServerNum variant:uint32:3)"
expect denied "nobody: Finish" "$(as nobody --dest=$name $path $name.Finish)"

# Last, as it stops the scheduler: an operator may finish the cluster.
out=$(as daemon --dest=$name $path $name.Finish)
expect allowed "an operator (group daemon): Finish" "$out"
case $out in
*SCHEDULER*) ;;
*) printf '%s\n' "$out"; echo "FAIL: Finish did not answer with the stopped scheduler"; fail=1 ;;
esac

if [ "$fail" -ne 0 ]; then
        echo "--- scheduler log"; cat "$tmp/scheduler.log"
        exit 1
fi
echo "PASS: D-Bus policy"
