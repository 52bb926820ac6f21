#!/usr/bin/env bats
# modelcheck.bats - several processes use the mount at random while the
# daemon is killed (SIGKILL) at random moments; after each restart every
# acknowledged operation must be there (tests/modelcheck.c).  Each round
# prints its seed; `tests/modelcheck run ...` with it replays the
# operations (the moment of the kill is the count printed too).
#
# T4DX_MC_ROUNDS (default 3), T4DX_MC_WORKERS (4) and T4DX_MC_OPS (300)
# make it longer: `make soak` runs it with more.

load ../lib/mount

MC=$T4DX_BUILDDIR/tests/modelcheck

# acked_at_least STATE ROUND N: the workers of ROUND acknowledged N
# operations between them.
acked_at_least() {
	local n
	n=$(cat "$1"/r"$2"-w*.log 2>/dev/null | grep -c '^A ')
	((n >= $3))
}

# the workers of ROUND all ended (PIDS are theirs)
@test "random operations by several processes, SIGKILL of the daemon at random moments: every acknowledged operation survives" {
	[[ -x $MC ]] || skip "tests/modelcheck is not built"
	local rounds=${T4DX_MC_ROUNDS:-3} workers=${T4DX_MC_WORKERS:-4}
	local ops=${T4DX_MC_OPS:-300} state=$T4DX_TMP/state round seed kill_at pid
	mkdir "$state"
	t4dx_start
	for ((round = 1; round <= rounds; round++)); do
		seed=${T4DX_MC_SEED:-$((RANDOM * 32768 + RANDOM))}
		kill_at=$((10 + seed % (workers * ops / 2)))
		echo "# round $round: seed $seed, kill after $kill_at acknowledged operations" >&3
		"$MC" run "$MNT" "$state" "$round" "$seed" "$workers" "$ops" \
			>"$T4DX_TMP/mc.$round.out" 2>&1 3>&- &
		pid=$!
		t4dx_track "$pid"
		# the kill comes after kill_at acknowledgements, or at the end
		t4dx_wait_for 120 acked_at_least "$state" "$round" "$kill_at" || true
		t4dx_kill9
		t4dx_wait_children 60 "$pid" ||
			fail "round $round (seed $seed): a worker saw the model disagree: $(cat "$T4DX_TMP/mc.$round.out")"
		t4dx_start
		local r
		for ((r = 1; r <= round; r++)); do
			run "$MC" verify "$MNT" "$state" "$r"
			[[ $status == 0 ]] ||
				fail "after round $round (seed $seed), round $r: $output"
		done
	done
	t4dx_stop
}
