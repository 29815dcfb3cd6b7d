#!/usr/bin/env bash
# Runs each Check test program given as an argument, shows its output, and
# ends with one summary line "tests: N passed, M failed" over all of them.
# Exits non-zero if any check failed or any program exited non-zero.
set -u
passed=0 failed=0 broken=0
for t in "$@"; do
    echo "== $(basename "$t")"
    out=$("$t" 2>&1); rc=$?
    printf '%s\n' "$out"
    # Check's summary: "93%: Checks: 15, Failures: 1, Errors: 0"
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+%: Checks: [0-9]+' | tail -n 1)
    if [ -z "$line" ]; then
        echo "!! $(basename "$t"): no Check summary (exit $rc)"; broken=$((broken + 1)); continue
    fi
    checks=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$line")
    fails=$(sed -E 's/.*Failures: ([0-9]+).*/\1/' <<<"$line")
    errs=$(sed -E 's/.*Errors: ([0-9]+).*/\1/' <<<"$line")
    bad=$((fails + errs))
    passed=$((passed + checks - bad)); failed=$((failed + bad))
    if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
        echo "!! $(basename "$t"): exit $rc"; broken=$((broken + 1))
    fi
done
failed=$((failed + broken))
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
