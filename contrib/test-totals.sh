#!/usr/bin/env bash
# contrib/test-totals.sh - add up the results of `make check`.
#
# usage: bash contrib/test-totals.sh [DIR...]        (default: .)
#
# automake's test harness writes one .trs file next to each test's .log.
# Every ":test-result: RESULT" line in it is one result: a C unit test
# program gives one, a bats suite run through the TAP driver gives one per
# test case.  PASS and XFAIL count as passed; FAIL, ERROR and XPASS as
# failed; SKIP as skipped.  The last (and only) line printed is
#
#     N passed, M failed, K skipped
#
# The exit status is 0 whatever the counts are: this only reports.
set -euo pipefail

if [[ $# -eq 0 ]]; then
	set -- .
fi

for dir in "$@"; do
	if [[ ! -d $dir ]]; then
		printf 'test-totals: %s: not a directory\n' "$dir" >&2
		exit 2
	fi
done

find "$@" -name .git -prune -o -type f -name '*.trs' -exec cat {} + |
awk '
	$1 == ":test-result:" {
		r = $2
		if (r == "PASS" || r == "XFAIL")
			passed++
		else if (r == "FAIL" || r == "ERROR" || r == "XPASS")
			failed++
		else if (r == "SKIP")
			skipped++
	}
	END { printf "%d passed, %d failed, %d skipped\n", passed, failed, skipped }
'
