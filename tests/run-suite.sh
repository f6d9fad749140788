#!/bin/bash
# Runs "make check" in a build directory and ends with one line
#   N passed, N failed[, N skipped]
# computed from the automake harness's summary. XPASS and ERROR count as
# failed, XFAIL as passed. When something failed, the end of each failing
# test's log comes first (the whole log with VERBOSE=1), and the exit status
# is 1. A build that breaks before any test ran counts as one failure.
#
# usage: tests/run-suite.sh BUILDDIR [MAKE ARGUMENTS...]
#        e.g. tests/run-suite.sh _build TESTS='tests/test-man-lint.sh'
set -eu

builddir=${1:?usage: $0 BUILDDIR [MAKE ARGUMENTS...]}
shift
jobs=${FL_CHECK_JOBS:-$(nproc 2>/dev/null || echo 2)}
tail_lines=${FL_LOG_TAIL:-60}

out=$(mktemp)
trap 'rm -f "$out"' EXIT

# The summary is read from make's own output; no colours, and no VERBOSE
# from the environment here: failing logs are printed below instead.
set +e
VERBOSE='' AM_COLOR_TESTS=no make -C "$builddir" --no-print-directory -j"$jobs" check "$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
set -e

count() {
        # "# PASS:  3" -> 3; absent -> 0
        sed -nE "s/^# $1: +([0-9]+)\$/\1/p" "$out" | awk '{ n += $1 } END { print n + 0 }'
}

total=$(count TOTAL)
pass=$(count PASS)
xfail=$(count XFAIL)
fail=$(count FAIL)
xpass=$(count XPASS)
error=$(count ERROR)
skip=$(count SKIP)

passed=$((pass + xfail))
failed=$((fail + xpass + error))

if [ "$total" -eq 0 ] && [ "$rc" -ne 0 ]; then
        echo
        echo "make check failed (exit $rc) before any test ran; the build output is above."
        failed=$((failed + 1))
elif [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
        # The harness passed but make did not (a later rule): not a pass.
        echo
        echo "make check failed (exit $rc) although no test failed; see above."
        failed=1
fi

# The failing tests, by the harness's result lines, and their logs.
grep -E '^(FAIL|XPASS|ERROR): ' "$out" | sed -E 's/^[A-Z]+: +//; s/ .*//' | sort -u |
while read -r test; do
        log=$builddir/${test%.sh}
        log=${log%.py}.log
        echo
        echo "===== $test ($log) ====="
        if [ ! -f "$log" ]; then
                echo "(no log)"
        elif [ -n "${VERBOSE:-}" ]; then
                cat "$log"
        else
                tail -n "$tail_lines" "$log"
        fi
done

echo
if [ "$skip" -gt 0 ]; then
        echo "$passed passed, $failed failed, $skip skipped"
else
        echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
