#!/bin/bash
# Every man page renders without a warning (lintian's check), and each
# daemon's page names every option its role takes in src/shared/conf.c's
# table; flcluster.conf(5) names every key.
set -eu

srcdir=${FL_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
conf=$srcdir/src/shared/conf.c
fail=0

if ! command -v man >/dev/null; then
        echo "FAIL: man (man-db) is not installed"
        exit 1
fi

render() {
        LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 "$@"
}

# Option names of a role, from lines like
#   U32(fl_server_port, 1, 65535, CONF_ROLE_SERVER, "...")
#   STR(node_id, CONF_ROLE_SERVER, "...")
#   BOOL(durable_updates, CONF_ROLE_SERVER, "...")
#   DBL_CO(server_momentum, 0, 1, CONF_ROLE_SCHEDULER, "...")
options_of() {
        sed -nE "s/^[[:space:]]*(STR|U32|DBL|DBL_CO|DBL_CC|BOOL)\(([a-z0-9_]+),.*CONF_ROLE_($1|ALL)\b.*/\2/p" "$conf"
}

n_pages=0
for page in "$srcdir"/man/*.[1-8]; do
        [ -e "$page" ] || continue
        n_pages=$((n_pages + 1))
        name=${page##*/}
        warnings=$(render -Z "$page" 2>&1 >/dev/null) || {
                echo "FAIL: $name does not render"
                fail=1
        }
        if [ -n "$warnings" ]; then
                printf '%s\n' "$warnings"
                echo "FAIL: $name renders with warnings"
                fail=1
        fi
done
if [ "$n_pages" -lt 3 ]; then
        echo "FAIL: only $n_pages man pages under man/"
        fail=1
fi

# $1 page, $2 role regex, $3 prefix the page writes before each name
check_options() {
        local page=$srcdir/man/$1 text opt n=0

        text=$(render "$page" 2>/dev/null | col -b | sed 's/\xe2\x80\x90/-/g; s/\xe2\x88\x92/-/g')
        for opt in $(options_of "$2"); do
                n=$((n + 1))
                if ! grep -qF -- "$3$opt" <<<"$text"; then
                        echo "FAIL: $1 does not document $3$opt"
                        fail=1
                fi
        done
        if [ "$n" -lt 5 ]; then
                echo "FAIL: found only $n options for $1 in $conf"
                fail=1
        fi
        echo "$1: checked $n options"
}

check_options fl-schedulerd.8 SCHEDULER --
check_options fl-serverd.8 SERVER --
check_options flcluster.conf.5 'SCHEDULER|SERVER' ''

if [ "$fail" -ne 0 ]; then
        exit 1
fi
echo "PASS: $n_pages man pages"
