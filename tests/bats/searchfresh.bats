#!/usr/bin/env bats
# searchfresh.bats - a search sees the files closed before it (fs/search.c,
# t4dx_embed_wait in core/embedder.c): a note written and closed is found
# by the search that follows at once, also while other writers never
# pause; a search waits for that at most its bound (2 s, vector.timeout_s
# for a program) and then answers with "pending" in results.json; it does
# not wait for a program in its back-off; and an unmount while a search
# waits ends.

load ../lib/mount

# word: ten random lowercase letters (a word no other note holds).
word() {
	tr -dc a-z </dev/urandom | head -c 10
}

# start_cmd TIMEOUT MODE ARG...: mounted with embed-cmd.sh MODE as the
# program (dim 4).
start_cmd() {
	local timeout=$1
	shift
	CFG=$(t4dx_config_file "$(jq -cn --arg sh "$T4DX_SRCDIR/tests/embed-cmd.sh" \
		--argjson t "$timeout" '$ARGS.positional as $a |
		{vector: {dim: 4, embedder: "command", timeout_s: $t,
			command: (["bash", $sh] + $a)}}' --args "$@")")
	t4dx_start -o "config=$CFG"
}

# ref_id: an item "ref" with a vector set by hand; prints its id (a query
# @ID asks the program nothing).
ref_id() {
	printf 'ref\0' >"$ITEMS/ref"   # binary: the program is not asked
	setfattr -n user.t4dx.vector -v '[1,0,0,0]' "$ITEMS/ref"
	t4dx_xattr id "$ITEMS/ref"
}

# timed_json QUERY: the query's results.json into $T4DX_TMP/r.json, the
# milliseconds it took into MS.
timed_json() {
	local t0
	t0=$(date +%s%N)
	cat "$MNT/search/$1/results.json" >"$T4DX_TMP/r.json"
	MS=$((($(date +%s%N) - t0) / 1000000))
}

@test "a note closed just before a search is its first result, 50 times in a row" {
	t4dx_start
	local i w top
	for i in $(seq 1 50); do
		w=$(word)
		echo "a note about $w and nothing else" >"$ITEMS/note$i"
		top=$(jq -r '.results[0].path // ""' "$MNT/search/$w/results.json")
		[[ $top == "note$i" ]] ||
			fail "round $i: '$w' found '$top' first: $(cat "$MNT/search/$w/results.json")"
	done
	jq -e 'has("pending") | not' "$MNT/search/$w/results.json" >/dev/null ||
		fail "pending in a full answer: $(cat "$MNT/search/$w/results.json")"
}

@test "writers that never pause: a note closed before a search is found, within the bound" {
	t4dx_start
	# a writer that does not pause until told to stop
	(
		n=0
		while [[ ! -e $T4DX_TMP/stop ]]; do
			echo "busy writer line $n" >"$ITEMS/busy$((n % 20))" || exit 1
			n=$((n + 1))
		done
	) 3>&- &
	local writer=$!
	t4dx_track "$writer"
	local i w
	for i in 1 2 3 4 5; do
		w=$(word)
		echo "$w" >"$ITEMS/fresh$i"
		timed_json "$w"
		[[ $(jq -r '.results[0].path // ""' "$T4DX_TMP/r.json") == "fresh$i" ]] ||
			fail "round $i: '$w' not found first: $(cat "$T4DX_TMP/r.json")"
		((MS < 4000)) || fail "round $i: the search took $MS ms"
	done
	touch "$T4DX_TMP/stop"
	wait "$writer" || fail "the writer failed"
}

@test "command: a slow program: the search answers at its bound, with pending" {
	# 5 s an answer, vector.timeout_s 10: the bound is 2 s
	start_cmd 10 slow 5 4
	local id
	id=$(ref_id)
	t4dx_wait_ctl 30 stats '.vectors.busy == false'
	printf 'fresh words\n' >"$ITEMS/fresh"
	timed_json "@$id"
	((MS >= 1500 && MS < 4500)) || fail "the search took $MS ms"
	run jq -c '.pending' "$T4DX_TMP/r.json"
	assert_output 1
	# the next search does not wait for it again, and still says so
	timed_json "@$id?k=5"
	((MS < 1500)) || fail "the second search took $MS ms"
	run jq -c '.pending' "$T4DX_TMP/r.json"
	assert_output 1
	# and t4dx search says so
	run "$T4DX" search -k 4 "$MNT" "@$id"
	assert_success
	assert_line --index 0 --partial "(pending: 1 files closed before the search"
	# once it is in, the answer is whole again
	t4dx_wait_ctl 30 stats '.vectors.busy == false and .vectors.embedded >= 1'
	timed_json "@$id?k=6"
	run jq -c 'has("pending")' "$T4DX_TMP/r.json"
	assert_output false
	run jq -r '[.results[].path] | index("fresh") != null' "$T4DX_TMP/r.json"
	assert_output true
}

@test "command: a program that is down: the search does not wait" {
	start_cmd 10 crash
	local id
	id=$(ref_id)
	printf 'first words\n' >"$ITEMS/f1"
	t4dx_wait_ctl 30 stats '.vectors.failed >= 1'
	# in its back-off now: a new file is not waited for
	printf 'second words\n' >"$ITEMS/f2"
	timed_json "@$id"
	((MS < 1000)) || fail "the search took $MS ms"
	run jq -r '.pending >= 1' "$T4DX_TMP/r.json"
	assert_output true
	t4dx_alive "$T4DX_PID" || fail "the daemon died"
}

@test "an unmount while a search waits ends, and so does the search" {
	# 30 s an answer, vector.timeout_s 10: the search waits 2 s
	start_cmd 10 slow 30 4
	local id
	id=$(ref_id)
	printf 'fresh words\n' >"$ITEMS/fresh"
	(
		cat "$MNT/search/@$id/results.json" >"$T4DX_TMP/r.json" 2>&1
		echo $? >"$T4DX_TMP/rc"
	) 3>&- &
	local reader=$!
	t4dx_track "$reader"
	t4dx_wait_ctl 10 stats '.vectors.searches_waiting == 1'
	local t0
	t0=$(date +%s%N)
	t4dx_stop
	local ms=$((($(date +%s%N) - t0) / 1000000))
	((ms < 8000)) || fail "the unmount took $ms ms"
	t4dx_wait_for 10 test -s "$T4DX_TMP/rc" || fail "the search never ended"
	wait "$reader" || :
	run cat "$T4DX_TMP/rc"
	assert_output 0
	# fresh, in the program's hands, and ref (binary, behind it: a
	# search takes the newest file first)
	run jq -c '.pending' "$T4DX_TMP/r.json"
	assert_output 2
}
