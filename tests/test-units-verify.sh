#!/bin/bash
# systemd-analyze verify must have nothing to say about the units.
#
# The units are generated here from their .in files, as units/units.am does,
# but with ExecStart= pointing at the daemons of this build (verify insists
# that they exist), and the man pages of the source tree put on MANPATH so
# that every Documentation=man:... link is checked too. Exit 77 (skip) only
# when systemd-analyze is missing.
set -eu

srcdir=${FL_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
builddir=${FL_BUILDDIR:-$PWD}
analyze=${FL_SYSTEMD_ANALYZE:-$(command -v systemd-analyze || true)}

if [ -z "$analyze" ] || [ ! -x "$analyze" ]; then
        echo "SKIP: systemd-analyze not found"
        exit 77
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/units" "$tmp/man/man1" "$tmp/man/man5" "$tmp/man/man8"

for page in "$srcdir"/man/*.[158]; do
        [ -e "$page" ] || continue
        section=${page##*.}
        cp "$page" "$tmp/man/man$section/"
done

for unit in fl-schedulerd.service fl-server@.service flcluster.target; do
        sed -e "s|@sbindir@|$builddir|g" \
            -e "s|@bindir@|$builddir|g" \
            -e "s|@sysconfdir@|/etc|g" \
            -e "s|@localstatedir@|/var|g" \
            "$srcdir/units/$unit.in" > "$tmp/units/$unit"
        if grep -n '@[a-z_]*@' "$tmp/units/$unit"; then
                echo "FAIL: $unit.in: a placeholder this test does not substitute (keep it in step with units/units.am)"
                exit 1
        fi
done

# An instance stands for the template; the target pulls in the scheduler.
cd "$tmp/units"
out=$(MANPATH="$tmp/man" SYSTEMD_COLORS=0 \
      "$analyze" verify fl-schedulerd.service fl-server@6668.service flcluster.target 2>&1) || rc=$?
echo "systemd-analyze verify: exit ${rc:-0}"
if [ -n "$out" ] || [ "${rc:-0}" -ne 0 ]; then
        printf '%s\n' "$out"
        echo "FAIL: systemd-analyze verify is not silent"
        exit 1
fi

# The instance must run the daemon on its own port, whatever the options say.
grep -q -- '--fl_server_port=%i --local_server_num=1$' "$tmp/units/fl-server@.service" || {
        echo "FAIL: fl-server@.service does not end its ExecStart= with --fl_server_port=%i --local_server_num=1"
        exit 1
}
# The sysusers.d entry creates the user and group the units run as.
if command -v systemd-sysusers >/dev/null; then
        mkdir -p "$tmp/root/etc"
        sed -e "s|@localstatedir@|/var|g" "$srcdir/units/flcluster.sysusers.in" > "$tmp/flcluster.conf"
        systemd-sysusers --root="$tmp/root" "$tmp/flcluster.conf" >/dev/null 2>&1 || true
        if ! grep -q '^flcluster:x:[0-9]*:[0-9]*:.*:/var/lib/flcluster:' "$tmp/root/etc/passwd" 2>/dev/null ||
           ! grep -q '^flcluster:x:' "$tmp/root/etc/group" 2>/dev/null; then
                echo "FAIL: flcluster.sysusers.in does not create the user and group flcluster"
                exit 1
        fi
fi
echo "PASS: units verified"
