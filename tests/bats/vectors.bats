#!/usr/bin/env bats
# vectors.bats - an item's vector through the mount (DESIGN.md section 9):
# the extended attribute user.t4dx.vector (read, set by hand, removed),
# what refuses a bad vector and keeps the old one, a hand vector through a
# content rewrite, a restart and a SIGKILL, the embedder's vector coming
# back once a hand one is removed, and the embedder's figures in .ctl.
#
# The stores here use vector.dim 8, so that a vector is short enough to
# write out in a test.

load ../lib/mount

DIM=8
HAND='[1,0.5,-0.25,0.125,0,-1,2.5,3]'
OTHER='[0,0,0,0,0,0,0,1]'

setup() {
	t4dx_setup
}

# start_dim8 [EMBEDDER]: mount with vector.dim 8 and the embedder named
# (default builtin).
start_dim8() {
	CFG=$(t4dx_config_file "{\"vector\":{\"dim\":$DIM,\"embedder\":\"${1:-builtin}\"}}")
	t4dx_start -o "config=$CFG"
}

# vec FILE: print user.t4dx.vector of FILE.
vec() {
	t4dx_xattr vector "$1"
}

# has_vec FILE: FILE has a vector (for t4dx_wait_for).
has_vec() {
	vec "$1" >/dev/null 2>&1
}

# vec_is FILE WANT: FILE's vector reads as WANT (for t4dx_wait_for).
vec_is() {
	[[ $(vec "$1" 2>/dev/null) == "$2" ]]
}

# listed FILE: print the names of FILE's extended attributes.
listed() {
	getfattr --absolute-names -m - -- "$1" | sed -n 's/^user\./user./p'
}

@test "vector: a hand vector reads back as set, and is listed only then" {
	start_dim8 off
	printf 'green tea\n' >"$ITEMS/f"
	run vec "$ITEMS/f"
	assert_failure
	assert_output --partial 'No such attribute'
	run listed "$ITEMS/f"
	refute_line user.t4dx.vector

	run setfattr -n user.t4dx.vector -v "$HAND" "$ITEMS/f"
	assert_success
	run vec "$ITEMS/f"
	assert_success
	assert_output "$HAND"
	run listed "$ITEMS/f"
	assert_line user.t4dx.vector
	# any JSON spelling of the numbers, with spaces, reads back shortest
	run setfattr -n user.t4dx.vector \
		-v '[ 1.0e0, 5E-1 ,-0.250, 1.25e-1, -0, -1.00, 25e-1, 3 ]' "$ITEMS/f"
	assert_success
	run vec "$ITEMS/f"
	assert_output '[1,0.5,-0.25,0.125,0,-1,2.5,3]'
	# the record says where it came from
	t4dx_wait_for 10 t4dx_ctl_test health '.queue_depth == 0'
	run jq -r 'select(.op == "update_fields" and .vec_src == "hand") | .name' \
		<(t4dx_wal_dump)
	assert_line f
}

@test "vector: wrong dimension, NaN, infinities, overflow and garbage are EINVAL and keep the old vector" {
	start_dim8 off
	printf 'x\n' >"$ITEMS/f"
	setfattr -n user.t4dx.vector -v "$HAND" "$ITEMS/f"
	local bad probs=()
	for bad in '[1,2,3,4,5,6,7]' '[1,2,3,4,5,6,7,8,9]' '[]' '' \
		'[1,2,3,4,5,6,7,NaN]' '[1,2,3,4,5,6,7,nan]' \
		'[1,2,3,4,5,6,7,Infinity]' '[1,2,3,4,5,6,7,-inf]' \
		'[1,2,3,4,5,6,7,1e39]' '[1,2,3,4,5,6,7,"8"]' \
		'[1,2,3,4,5,6,7,null]' '[1,2,3,4,5,6,7,true]' \
		'[1,2,3,4,5,6,7,[8]]' '{"0":1}' '1,2,3,4,5,6,7,8' \
		'[1,2,3,4,5,6,7,8' '[1,2,3,4,5,6,7,8]x' '[1,2,3,4,5,6,7,0x8]' \
		'hello' '[1,2,3,4,5,6,7,8],[1]'; do
		run setfattr -n user.t4dx.vector -v "$bad" "$ITEMS/f"
		if ((status == 0)); then
			probs+=("'$bad' accepted")
		elif [[ $output != *'Invalid argument'* ]]; then
			probs+=("'$bad': $output")
		fi
		[[ $(vec "$ITEMS/f") == "$HAND" ]] ||
			probs+=("'$bad' changed the vector to $(vec "$ITEMS/f")")
	done
	((${#probs[@]} == 0)) || fail "$(printf '%s\n' "${probs[@]}")"
	# a NUL inside the value
	run setfattr -n user.t4dx.vector -v 0x5b312c322c332c342c352c362c372c385d00 "$ITEMS/f"
	assert_failure
	assert_output --partial 'Invalid argument'
	run vec "$ITEMS/f"
	assert_output "$HAND"
}

@test "vector: a hand vector survives content rewrites, a restart and SIGKILL" {
	start_dim8
	printf 'first words\n' >"$ITEMS/f"
	setfattr -n user.t4dx.vector -v "$HAND" "$ITEMS/f"
	printf 'other words entirely\n' >"$ITEMS/f"
	printf 'and appended\n' >>"$ITEMS/f"
	run vec "$ITEMS/f"
	assert_output "$HAND"
	t4dx_remount -o "config=$CFG"
	run vec "$ITEMS/f"
	assert_output "$HAND"
	# into a segment and back
	t4dx_ctl_echo compact flush
	t4dx_remount -o "config=$CFG"
	run vec "$ITEMS/f"
	assert_output "$HAND"
	# set again, then SIGKILL right after setfattr returned
	setfattr -n user.t4dx.vector -v "$OTHER" "$ITEMS/f"
	printf 'third content\n' >"$ITEMS/f"
	t4dx_kill9
	t4dx_start -o "config=$CFG"
	run vec "$ITEMS/f"
	assert_output "$OTHER"
	run cat "$ITEMS/f"
	assert_output 'third content'
}

@test "vector: removing a hand vector brings back the embedder's" {
	start_dim8
	printf 'green tea with lemon\n' >"$ITEMS/f"
	t4dx_wait_for 20 has_vec "$ITEMS/f" || fail "no vector from the embedder"
	local embedded
	embedded=$(vec "$ITEMS/f")
	[[ $embedded != "$HAND" ]] || fail "the embedder gave the hand vector"
	run listed "$ITEMS/f"
	refute_line user.t4dx.vector

	setfattr -n user.t4dx.vector -v "$HAND" "$ITEMS/f"
	run vec "$ITEMS/f"
	assert_output "$HAND"
	run setfattr -x user.t4dx.vector "$ITEMS/f"
	assert_success
	t4dx_wait_for 20 vec_is "$ITEMS/f" "$embedded" ||
		fail "after removal: '$(vec "$ITEMS/f" 2>&1)', not the embedder's $embedded"
	run listed "$ITEMS/f"
	refute_line user.t4dx.vector
	# and it is durable
	t4dx_kill9
	t4dx_start -o "config=$CFG"
	t4dx_wait_for 20 vec_is "$ITEMS/f" "$embedded" ||
		fail "after SIGKILL: '$(vec "$ITEMS/f" 2>&1)'"
}

@test "vector: without an embedder a removed vector stays removed; removing none is ENODATA" {
	start_dim8 off
	printf 'words\n' >"$ITEMS/f"
	run setfattr -x user.t4dx.vector "$ITEMS/f"
	assert_failure
	assert_output --partial 'No such attribute'
	setfattr -n user.t4dx.vector -v "$HAND" "$ITEMS/f"
	run setfattr -x user.t4dx.vector "$ITEMS/f"
	assert_success
	run vec "$ITEMS/f"
	assert_failure
	assert_output --partial 'No such attribute'
	t4dx_remount -o "config=$CFG"
	run vec "$ITEMS/f"
	assert_failure
	assert_output --partial 'No such attribute'
}

@test "vector: a directory has none and takes none" {
	start_dim8
	mkdir "$ITEMS/d"
	run vec "$ITEMS/d"
	assert_failure
	assert_output --partial 'No such attribute'
	run setfattr -n user.t4dx.vector -v "$HAND" "$ITEMS/d"
	assert_failure
	assert_output --partial 'Operation not supported'
	run setfattr -x user.t4dx.vector "$ITEMS/d"
	assert_failure
	assert_output --partial 'No such attribute'
	run vec "$MNT/items"
	assert_failure
	run listed "$ITEMS/d"
	refute_output --partial user.t4dx.vector
}

# metric NAME: the value of the sample NAME in .ctl/metrics.
metric() {
	awk -v n="$1" '$1 == n { print $2 }' "$MNT/.ctl/metrics"
}

@test "vector: .ctl/stats and .ctl/metrics count the embedder's work" {
	start_dim8
	t4dx_wait_ctl 20 stats '.vectors.busy == false'
	run jq -c '.vectors' "$MNT/.ctl/stats"
	assert_output '{"embedder":"builtin","embedded":0,"no_vector":0,"failed":0,"dropped":0,"bytes_read":0,"program_starts":0,"queued":0,"searches_waiting":0,"deferred":0,"flush_left":0,"busy":false}'
	printf 'green tea\n' >"$ITEMS/a"
	printf 'black coffee\n' >"$ITEMS/b"
	printf 'mint tea\n' >"$ITEMS/c"
	printf '\0\1\2binary\n' >"$ITEMS/bin"
	printf '... --- ...\n' >"$ITEMS/noword"
	t4dx_wait_ctl 20 stats '.vectors.busy == false and .vectors.embedded == 3'
	run jq -c '.vectors' "$MNT/.ctl/stats"
	assert_output '{"embedder":"builtin","embedded":3,"no_vector":2,"failed":0,"dropped":0,"bytes_read":54,"program_starts":0,"queued":0,"searches_waiting":0,"deferred":0,"flush_left":0,"busy":false}'
	run metric t4dx_embed_vectors_total
	assert_output 3
	run metric t4dx_embed_no_vector_total
	assert_output 2
	run metric t4dx_embed_failures_total
	assert_output 0
	run metric t4dx_embed_dropped_total
	assert_output 0
	run metric t4dx_embed_queue_length
	assert_output 0
	run metric t4dx_embed_deferred_total
	assert_output 0
	run metric t4dx_embed_flush_left_total
	assert_output 0
	run metric t4dx_embed_read_bytes_total
	assert_output 54
	run grep -c '^# TYPE t4dx_embed_vectors_total counter$' "$MNT/.ctl/metrics"
	assert_output 1
	# a removed vector is computed again, and counted
	setfattr -x user.t4dx.vector "$ITEMS/a"
	t4dx_wait_ctl 20 stats '.vectors.busy == false and .vectors.embedded == 4'
	run metric t4dx_embed_vectors_total
	assert_output 4
}

@test "vector: with the embedder off the figures say so and stay 0" {
	start_dim8 off
	printf 'green tea\n' >"$ITEMS/a"
	run jq -c '.vectors' "$MNT/.ctl/stats"
	assert_output '{"embedder":"off","embedded":0,"no_vector":0,"failed":0,"dropped":0,"bytes_read":0,"program_starts":0,"queued":0,"searches_waiting":0,"deferred":0,"flush_left":0,"busy":false}'
	run metric t4dx_embed_vectors_total
	assert_output 0
}

@test "vector: a restart reads no content the embedder has seen, binary included; new content is read once" {
	start_dim8
	local i
	for i in 1 2 3; do
		head -c 262144 /dev/urandom >"$ITEMS/bin$i"
		printf 'text number %s\n' "$i" >"$ITEMS/text$i"
	done
	t4dx_wait_ctl 30 stats '.vectors.busy == false and .vectors.embedded == 3 and .vectors.no_vector == 3'
	run jq -r '[.[] | select(.vec_src == "tried") | .name] | sort | join(" ")' \
		<(t4dx_wal_dump | jq -s .)
	assert_output 'bin1 bin2 bin3'
	[[ $(cat "$DATA/EMBEDDER") == "{\"embedder\":\"builtin\",\"version\":1,\"dim\":$DIM}" ]] ||
		fail "EMBEDDER: $(cat "$DATA/EMBEDDER")"
	t4dx_remount -o "config=$CFG"
	t4dx_wait_ctl 30 stats '.vectors.busy == false'
	run jq -c '.vectors | [.embedded, .no_vector, .bytes_read]' "$MNT/.ctl/stats"
	assert_output '[0,0,0]'
	# through a segment and SIGKILL too
	t4dx_ctl_echo compact flush
	t4dx_kill9
	t4dx_start -o "config=$CFG"
	t4dx_wait_ctl 30 stats '.vectors.busy == false'
	run jq -c '.vectors | [.embedded, .no_vector, .bytes_read]' "$MNT/.ctl/stats"
	assert_output '[0,0,0]'
	# new content is read, once
	printf 'new words\n' >"$ITEMS/bin2"
	t4dx_wait_ctl 30 stats '.vectors.busy == false and .vectors.embedded == 1'
	run jq -c '.vectors | [.embedded, .no_vector, .bytes_read]' "$MNT/.ctl/stats"
	assert_output '[1,0,10]'
	t4dx_wait_for 20 has_vec "$ITEMS/bin2" || fail "no vector for new text"
}

@test "vector: another vector.dim re-embeds every file once; hand vectors stay" {
	start_dim8
	printf 'green tea\n' >"$ITEMS/a"
	printf 'by hand\n' >"$ITEMS/h"
	setfattr -n user.t4dx.vector -v "$HAND" "$ITEMS/h"
	t4dx_wait_for 20 has_vec "$ITEMS/a" || fail "no vector"
	t4dx_stop
	CFG=$(t4dx_config_file '{"vector":{"dim":4,"embedder":"builtin"}}')
	t4dx_start -o "config=$CFG"
	t4dx_wait_ctl 30 stats '.vectors.busy == false'
	run jq -c '.vectors | [.embedded, .no_vector, .failed]' "$MNT/.ctl/stats"
	assert_output '[1,0,0]'
	run jq -e 'length == 4' <(vec "$ITEMS/a")
	assert_success
	run vec "$ITEMS/h"
	assert_output "$HAND"
	[[ $(cat "$DATA/EMBEDDER") == '{"embedder":"builtin","version":1,"dim":4}' ]] ||
		fail "EMBEDDER: $(cat "$DATA/EMBEDDER")"
	# a hand vector must have the new dim
	run setfattr -n user.t4dx.vector -v "$HAND" "$ITEMS/a"
	assert_failure
	assert_output --partial 'Invalid argument'
	t4dx_remount -o "config=$CFG"
	t4dx_wait_ctl 30 stats '.vectors.busy == false'
	run jq -c '.vectors | [.embedded, .bytes_read]' "$MNT/.ctl/stats"
	assert_output '[0,0]'
}

# ---- vector.embedder "command" -----------------------------------------

# start_cmd TIMEOUT MODE [ARG...]: mount with vector.dim 4 and the
# embedder program tests/embed-cmd.sh MODE ARG..., timeout_s TIMEOUT.
start_cmd() {
	local timeout=$1
	shift
	CFG=$(t4dx_config_file "$(jq -cn --arg sh "$T4DX_SRCDIR/tests/embed-cmd.sh" \
		--argjson t "$timeout" '$ARGS.positional as $a |
		{vector: {dim: 4, embedder: "command", timeout_s: $t, start_timeout_s: $t,
			command: (["bash", $sh] + $a)}}' --args "$@")")
	t4dx_start -o "config=$CFG"
}

@test "command: the program's vectors; null, binary and non-UTF-8 content get none; a restart asks nothing" {
	start_cmd 10 answer 4
	printf 'hello\n' >"$ITEMS/a"
	printf 'nothing here\n' >"$ITEMS/n"
	printf '\0\1\2\n' >"$ITEMS/bin"
	# valid UTF-8 as far as the builtin embedder looks (8 KiB), then not
	# (made aside: each process closing the file would commit a part)
	{ head -c 9000 /dev/zero | tr '\0' a; printf '\xff\n'; } >"$T4DX_TMP/late"
	cp "$T4DX_TMP/late" "$ITEMS/late"
	t4dx_wait_ctl 20 stats '.vectors.busy == false'
	run vec "$ITEMS/late"
	assert_failure
	run vec "$ITEMS/a"
	assert_output '[1,6,0,0]'
	run vec "$ITEMS/n"
	assert_failure
	run vec "$ITEMS/bin"
	assert_failure
	run jq -c '.vectors | [.embedded, .no_vector, .failed, .program_starts]' "$MNT/.ctl/stats"
	assert_output '[1,3,0,1]'
	run jq -c '.' "$DATA/EMBEDDER"
	assert_output "{\"embedder\":\"command\",\"command\":[\"bash\",\"$T4DX_SRCDIR/tests/embed-cmd.sh\",\"answer\",\"4\"],\"dim\":4}"
	# new content is asked for
	printf 'hello world\n' >"$ITEMS/a"
	t4dx_wait_for 20 vec_is "$ITEMS/a" '[1,12,0,0]' || fail "got $(vec "$ITEMS/a" 2>&1)"
	t4dx_remount -o "config=$CFG"
	t4dx_wait_ctl 20 stats '.vectors.busy == false'
	run jq -c '.vectors | [.embedded, .no_vector, .bytes_read, .program_starts]' "$MNT/.ctl/stats"
	assert_output '[0,0,0,0]'
	run vec "$ITEMS/a"
	assert_output '[1,12,0,0]'
}

# broken MODE [ARG...]: with the program in MODE, writes succeed and read
# back, files get no vector, the failure is counted and alerted, and the
# program is started again.
broken() {
	start_cmd 0.5 "$@"
	local i
	for i in 1 2 3; do
		printf 'text %s\n' "$i" >"$ITEMS/f$i" || fail "write $i failed"
	done
	t4dx_wait_ctl 30 stats '.vectors.failed >= 2 and .vectors.program_starts >= 2'
	for i in 1 2 3; do
		run cat "$ITEMS/f$i"
		assert_output "text $i"
		run vec "$ITEMS/f$i"
		assert_failure
	done
	cp "$MNT/.ctl/alerts" "$T4DX_TMP/alerts"
	run grep -c 'the embedder program (vector.command)' "$T4DX_TMP/alerts"
	assert_success
	run metric t4dx_embed_failures_total
	[[ $output -ge 2 ]] || fail "t4dx_embed_failures_total $output"
	t4dx_alive "$T4DX_PID" || fail "the daemon died"
	# a write still works, and is durable
	printf 'late\n' >"$ITEMS/late"
	t4dx_kill9
	t4dx_start -o "config=$CFG"
	run cat "$ITEMS/late"
	assert_output late
}

@test "command: a program that crashes never fails a write" {
	broken crash
	run grep -c 'exited with status 3' "$T4DX_TMP/alerts"
	assert_success
}

@test "command: a program that answers garbage never fails a write" {
	broken garbage
}

@test "command: a program that answers a wrong dimension never fails a write" {
	broken wrongdim 4
	run grep -c 'answered 3 numbers, not 4' "$T4DX_TMP/alerts"
	assert_success
}

@test "command: a program that answers a string for a number never fails a write" {
	broken nan 4
}

@test "command: a program that answers digits beyond a float (1e41 spelt out) gives no vector" {
	# json-c reads digits past 64 bits as UINT64_MAX without an error:
	# that was taken as the number 1.8e19 (found by hostile use)
	broken bigint 4
	run grep -c 'not a finite float at 0' "$T4DX_TMP/alerts"
	assert_success
}

@test "command: a program that answers without the request's id never fails a write" {
	broken bare 4
	run grep -c 'answered something else than {"id":' "$T4DX_TMP/alerts"
	assert_success
}

@test "command: a line too many never gives a vector to the wrong file" {
	start_cmd 10 twice 4
	printf 'say it twice\n' >"$ITEMS/f1"
	t4dx_wait_for 20 vec_is "$ITEMS/f1" '[1,13,0,0]' || fail "f1: $(vec "$ITEMS/f1" 2>&1)"
	# the next answer would have been f1's second line: it is a failure,
	# the program starts again and f2 gets its own vector
	printf 'hello\n' >"$ITEMS/f2"
	t4dx_wait_for 30 vec_is "$ITEMS/f2" '[1,6,0,0]' ||
		fail "f2: $(vec "$ITEMS/f2" 2>&1) $(cat "$MNT/.ctl/stats")"
	run jq -c '.vectors | [.failed, .program_starts]' "$MNT/.ctl/stats"
	assert_output '[1,2]'
	grep -Eq 'nobody asked for|answered request 1, not 2' "$MNT/.ctl/alerts" ||
		fail "alerts: $(cat "$MNT/.ctl/alerts")"
}

@test "command: an integer past 64 bits in an answer is refused, never clamped" {
	# json-c reads 99999999999999999999999 (1e23) as 1.8e19 without an
	# error: the answer is a failure, the file keeps no clamped vector
	broken bigint23 4
	run grep -c 'not a finite float at 0' "$T4DX_TMP/alerts"
	assert_success
}

@test "command: a program that hangs past timeout_s never fails a write" {
	broken hang "$T4DX_TMP/hang.pid"
	run grep -c 'did not answer within vector.timeout_s' "$T4DX_TMP/alerts"
	assert_success
}

@test "command: after a crash the program is started again and the file gets its vector" {
	start_cmd 10 crash-once "$T4DX_TMP/crashed" 4
	printf 'abc\n' >"$ITEMS/f"
	t4dx_wait_for 30 vec_is "$ITEMS/f" '[1,4,0,0]' ||
		fail "no vector after the restart: $(vec "$ITEMS/f" 2>&1) $(cat "$MNT/.ctl/stats")"
	run jq -c '.vectors | [.embedded, .failed, .program_starts]' "$MNT/.ctl/stats"
	assert_output '[1,1,2]'
}

@test "command: a text query in search/ is embedded by the program" {
	start_cmd 10 answer 4
	printf 'ab\n' >"$ITEMS/b"
	printf 'hello there\n' >"$ITEMS/a"
	printf '%s\n' "$(printf 'x%.0s' {1..40})" >"$ITEMS/c"
	t4dx_wait_ctl 30 stats '.vectors.busy == false and .vectors.embedded == 3'
	# "xyz" is [1, 3, 0, 0] to the program, as "ab\n" is
	run jq -c '[.results[] | .path]' "$MNT/search/xyz/results.json"
	assert_success
	assert_output '["b","a","c"]'
	run cat "$MNT/search/xyz/$(ls "$MNT/search/xyz" | head -1)"
	assert_output 'ab'
	# the program answers null for a text holding "nothing": no result
	run jq -c . "$MNT/search/nothing at all/results.json"
	assert_output '{"partial":false,"results":[]}'
}

@test "command: a text query the program answers zeros for finds nothing, as one it answers null for" {
	start_cmd 10 zeros 4
	printf 'hello there\n' >"$ITEMS/a"
	t4dx_wait_ctl 30 stats '.vectors.busy == false and .vectors.embedded == 1'
	# a vector of zeros is near nothing (README: as @ID of one); not EINVAL
	run jq -c . "$MNT/search/zero/results.json"
	assert_success
	assert_output '{"partial":false,"results":[]}'
	run ls "$MNT/search/zero"
	assert_success
	assert_output 'results.json'
}

@test "command: a text query the program does not answer fails with EIO, and the mount goes on" {
	start_cmd 1 hang "$T4DX_TMP/hang.pid"
	run ls "$MNT/search/green tea"
	assert_failure
	assert_output --partial 'Input/output error'
	grep -q "'green tea': the text's vector: .*did not answer within vector.timeout_s" \
		"$T4DX_LOG" || fail "log: $(cat "$T4DX_LOG")"
	printf 'still here\n' >"$ITEMS/f"
	run cat "$ITEMS/f"
	assert_output 'still here'
}

@test "command: while a text query waits for a hung program, the mount serves others" {
	start_cmd 20 hang "$T4DX_TMP/hang.pid"
	ls "$MNT/search/green tea" >/dev/null 2>&1 &
	local q=$!
	t4dx_track "$q"
	t4dx_wait_for 10 test -s "$T4DX_TMP/hang.pid" || fail "the program never started"
	sleep 1         # the request under way
	local t0=$SECONDS
	printf 'still here\n' >"$ITEMS/f"
	run cat "$ITEMS/f"
	assert_output 'still here'
	run ls "$MNT/search/@00000000000000000000000000000000"
	assert_failure  # an unknown id: ENOENT, not stuck behind the query
	run ls "$ITEMS"
	assert_output 'f'
	((SECONDS - t0 < 5)) || fail "others waited $((SECONDS - t0))s"
	t4dx_alive "$q" || fail "the query no longer waits: the test proves nothing"
}

@test "command: a stop (SIGTERM) does not wait vector.timeout_s for a text query the program does not answer" {
	start_cmd 60 hang "$T4DX_TMP/hang.pid"
	printf 'hello\n' >"$ITEMS/a"
	# the files' requests are cancelled at a stop; a query's must be too
	ls "$MNT/search/green tea" >/dev/null 2>&1 &
	t4dx_track "$!"
	t4dx_wait_for 10 test -s "$T4DX_TMP/hang.pid" || fail "the program never started"
	sleep 1         # the request under way
	kill -TERM "$T4DX_PID"
	T4DX_EXIT_TIMEOUT=10 _t4dx_reap "$T4DX_PID" ||
		fail "t4dxfs still running 10s after SIGTERM (vector.timeout_s 60)"
	T4DX_PID=
	[[ $T4DX_STATUS == 0 ]] ||
		fail "t4dxfs exited with status $T4DX_STATUS: $(cat "$T4DX_LOG")"
	run t4dx_is_mounted "$MNT"
	assert_failure
	start_cmd 60 answer 4
	run cat "$ITEMS/a"
	assert_output 'hello'
}

# gone PIDFILE: every pid in PIDFILE is dead.
gone() {
	local p
	while read -r p; do
		t4dx_alive "$p" && return 1
	done <"$1"
	return 0
}

@test "command: a hung program does not hold up the unmount, which kills it and its children" {
	start_cmd 3600 hang "$T4DX_TMP/hang.pid"
	# writes never wait for it
	timeout 20 bash -c 'for i in 1 2 3 4 5; do printf "x %s\n" $i >"$0/f$i" || exit 1; done' "$ITEMS" ||
		fail "writes blocked behind the hung program"
	t4dx_wait_for 20 test -s "$T4DX_TMP/hang.pid" || fail "the program never started"
	t4dx_wait_for 10 eval '[[ $(wc -l <"$T4DX_TMP/hang.pid") == 2 ]]'
	local t0=$SECONDS
	t4dx_stop
	(( SECONDS - t0 < 15 )) || fail "unmount took $((SECONDS - t0)) s"
	t4dx_wait_for 10 gone "$T4DX_TMP/hang.pid" || fail "left running: $(cat "$T4DX_TMP/hang.pid")"
}

@test "command: vector.embedder command without vector.command refuses to start" {
	CFG=$(t4dx_config_file '{"vector":{"embedder":"command"}}')
	t4dx_run_daemon -o "config=$CFG" "$DATA" "$MNT"
	((status != 0)) || fail "t4dxfs started"
	assert_output --partial 'vector.command: must name a program'
}

# One content the program always crashes on keeps it in its back-off
# (1, 2, 4 ... 60 s) for as long as the file is there; a text query does
# not wait for that back-off (it used to fail with EAGAIN every time).
@test "command: one content the program always crashes on does not take text search away" {
	start_cmd 10 poison 4
	printf 'green tea\n' >"$ITEMS/good"
	t4dx_wait_ctl 30 stats '.vectors.embedded == 1'
	printf 'poison pill\n' >"$ITEMS/bad"
	t4dx_wait_ctl 30 stats '.vectors.failed >= 1'
	local i
	for i in 1 2 3; do
		run jq -c '[.results[] | .path]' "$MNT/search/green tea/results.json"
		assert_success
		assert_output '["good"]'
	done
}

# Found by hostile use: text queries from several shells at once, with a program
# that takes 1.5 s an answer and vector.timeout_s 2.  Each lookup waited
# for every query ahead of it (run_mu), so the sixth took 9 s: a lookup
# must end within the request under way plus its own (2 x timeout_s).
@test "command: text queries from several shells at once each end within twice vector.timeout_s" {
	start_cmd 2 slow 1.5 4
	printf 'green tea\n' >"$ITEMS/good"
	t4dx_wait_ctl 30 stats '.vectors.busy == false and .vectors.embedded == 1'
	local i pids=()
	for i in 1 2 3 4 5 6; do
		(
			t0=$(date +%s%N)
			rc=0
			ls "$MNT/search/green tea $i" >/dev/null 2>"$T4DX_TMP/q$i.err" || rc=$?
			echo "$rc $((($(date +%s%N) - t0) / 1000000))" >"$T4DX_TMP/q$i"
		) 3>&- &
		pids+=($!)
		t4dx_track $!
	done
	wait "${pids[@]}" || :  # each writes its own status
	local worst=0 ms
	for i in 1 2 3 4 5 6; do
		read -r _ ms <"$T4DX_TMP/q$i"
		((ms > worst)) && worst=$ms
	done
	((worst <= 4500)) || fail "a lookup took ${worst} ms: $(cat "$T4DX_TMP"/q?)"
	# and the mount answers queries again afterwards
	t4dx_wait_for 10 ls "$MNT/search/green tea again" ||
		fail "no query answers after the burst"
}

# s12: a content the program always crashes on was sent again after each
# back-off for as long as it existed.  After EMB_FILE_FAILS (3) failures
# on it, once the program has answered another file, it gets the "tried"
# mark: the embedder is idle, a restart asks nothing, new content is
# asked for again.
@test "command: a content the program always fails on is given up after 3 failures, until it changes" {
	start_cmd 10 poison 4
	printf 'green tea\n' >"$ITEMS/good"
	t4dx_wait_ctl 30 stats '.vectors.embedded == 1'
	printf 'poison pill\n' >"$ITEMS/bad"
	# a failure counts against the content only while the program
	# answers others between its tries (back-offs of 1, 2, 4 s)
	t4dx_feed_until 8 t4dx_ctl_test stats '.vectors.no_vector == 1' ||
		fail "never given up: $(cat "$MNT/.ctl/stats")"
	t4dx_wait_ctl 30 stats '.vectors.busy == false' ||
		fail "still busy: $(cat "$MNT/.ctl/stats")"
	run jq -c '.vectors | [.no_vector, .failed >= 3]' "$MNT/.ctl/stats"
	assert_output '[1,true]'
	grep -q 'failed 3 times on the content of "bad"' "$MNT/.ctl/alerts" ||
		fail "alerts: $(cat "$MNT/.ctl/alerts")"
	run vec "$ITEMS/bad"
	assert_failure
	run cat "$ITEMS/bad"
	assert_output 'poison pill'
	# the mark is durable: a restart sends it nothing
	sync "$ITEMS/bad"
	t4dx_remount -o "config=$CFG"
	t4dx_wait_ctl 20 stats '.vectors.busy == false'
	run jq -c '.vectors | [.failed, .program_starts]' "$MNT/.ctl/stats"
	assert_output '[0,0]'
	# new content is asked for again
	printf 'cured\n' >"$ITEMS/bad"
	t4dx_wait_for 30 vec_is "$ITEMS/bad" '[1,6,0,0]' ||
		fail "no vector for the new content: $(cat "$MNT/.ctl/stats")"
}

# Found by review: the give-up rule counts any 3 failures on a content once
# the program has answered anything since the start.  A program that
# worked and then fails on everything (a model server or remote API
# down, out of GPU memory) gives up every file written meanwhile: each
# gets the durable "no vector" mark and keeps it once the program works
# again (a restart's sweep skips marked files).
@test "command: a program that answered, then fails on everything for a while, gives up no file" {
	start_cmd 10 down-if "$T4DX_TMP/down" 4
	printf 'green tea\n' >"$ITEMS/good"
	t4dx_wait_ctl 30 stats '.vectors.embedded == 1'
	: >"$T4DX_TMP/down"
	printf 'black coffee\n' >"$ITEMS/f1"
	# three failures on f1 (back-offs of 1 and 2 s between them)
	t4dx_wait_ctl 30 stats '.vectors.failed >= 3'
	rm "$T4DX_TMP/down"
	t4dx_wait_for 40 vec_is "$ITEMS/f1" '[1,13,0,0]' ||
		fail "f1 was given up during the outage: $(cat "$MNT/.ctl/stats")"
}

@test "command: health is degraded while the program fails, names why, and ok once it answers again" {
	start_cmd 10 down-if "$T4DX_TMP/down" 4
	printf 'green tea\n' >"$ITEMS/good"
	t4dx_wait_ctl 30 stats '.vectors.embedded == 1'
	run jq -e '.status == "ok" and .vectors.ok and .vectors.program == "ok"
		and .vectors.embedder == "command"' "$MNT/.ctl/health"
	assert_success
	: >"$T4DX_TMP/down"
	printf 'black coffee\n' >"$ITEMS/f1"
	t4dx_wait_ctl 30 health '.vectors.program == "failing"'
	run jq -e '.status == "degraded" and .vectors.ok == false and
		(.vectors.error | length > 0) and .level == 0' "$MNT/.ctl/health"
	assert_success
	run "$T4DX" status "$MNT"
	assert_failure 1
	assert_output --partial "program FAILING"
	rm "$T4DX_TMP/down"
	t4dx_wait_for 40 vec_is "$ITEMS/f1" '[1,13,0,0]'
	run jq -e '.status == "ok" and .vectors.ok and .vectors.program == "ok"
		and .vectors.error == ""' "$MNT/.ctl/health"
	assert_success
}

# A program that never answered marks nothing: every file is tried again
# once the program works (here: it never does; the files stay queued).
@test "command: a program that fails on everything marks no file" {
	start_cmd 10 crash
	printf 'one\n' >"$ITEMS/f1"
	t4dx_wait_ctl 40 stats '.vectors.failed >= 4 and .vectors.queued == 1'
	run jq -c '.vectors | [.no_vector, .embedded]' "$MNT/.ctl/stats"
	assert_output '[0,0]'
}

# gone PID: the process PID has exited (a zombie counts: nobody reaped it).
gone() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 0
	[[ $st == Z* ]]
}

# s12: a program that ended while idle was found at the next request,
# which then failed (closed its output), was counted and alerted, and
# waited for a back-off: it is a plain restart.
@test "command: a program that exited while idle is started again without a failure" {
	start_cmd 10 once "$T4DX_TMP/once.pid" 4
	printf 'abc\n' >"$ITEMS/f1"
	t4dx_wait_for 20 vec_is "$ITEMS/f1" '[1,4,0,0]' || fail "f1: $(cat "$MNT/.ctl/stats")"
	t4dx_wait_for 20 gone "$(cat "$T4DX_TMP/once.pid")" || fail "the program did not exit"
	printf 'abcd\n' >"$ITEMS/f2"
	t4dx_wait_for 20 vec_is "$ITEMS/f2" '[1,5,0,0]' || fail "f2: $(cat "$MNT/.ctl/stats")"
	run jq -c '.vectors | [.embedded, .failed, .program_starts]' "$MNT/.ctl/stats"
	assert_output '[2,0,2]'
	run grep -c 'the embedder program' "$MNT/.ctl/alerts"
	assert_output 0
}

# Found by review: a program that exits while idle is dropped at the next
# request (drop_if_ended), which killed its process group but left a
# process it had put in a session of its own: that one lived on until
# some later failure or the unmount, one more at each restart.
@test "command: a child in a session of its own goes when the program that started it exits while idle" {
	start_cmd 10 setsid-once "$T4DX_TMP/so.pid" 4
	printf 'abc\n' >"$ITEMS/f1"
	t4dx_wait_for 20 vec_is "$ITEMS/f1" '[1,4,0,0]' || fail "f1: $(cat "$MNT/.ctl/stats")"
	local child
	child=$(cat "$T4DX_TMP/so.pid.child")
	t4dx_track "$child"
	t4dx_wait_for 20 gone "$(cat "$T4DX_TMP/so.pid")" || fail "the program did not exit"
	t4dx_alive "$child" || fail "no child $child"
	printf 'abcd\n' >"$ITEMS/f2"
	t4dx_wait_for 20 vec_is "$ITEMS/f2" '[1,5,0,0]' || fail "f2: $(cat "$MNT/.ctl/stats")"
	t4dx_wait_for 10 t4dx_dead "$child" ||
		fail "pid $child, started by the program that exited, still runs"
	run jq -c '.vectors | [.embedded, .failed, .program_starts]' "$MNT/.ctl/stats"
	assert_output '[2,0,2]'
}

# zombies PID: how many zombie children PID has.
zombies() {
	ps --ppid "$1" -o stat= | grep -c '^Z' || true
}

# Found by review: the daemon is a child subreaper (for the orphan reaper), so
# every orphan of the program comes to it; one that ends by itself stays
# a zombie until the next stop of the program (a failure, the unmount),
# where init reaped it before.  A program that leaves a short-lived
# process behind at each request fills the process table.
@test "command: an orphan of the program that ends by itself does not stay a zombie of the daemon" {
	start_cmd 10 orphans 4
	local i
	for i in 1 2 3 4 5; do
		printf 'text %s\n' "$i" >"$ITEMS/f$i"
		t4dx_wait_for 20 has_vec "$ITEMS/f$i" || fail "f$i: $(cat "$MNT/.ctl/stats")"
	done
	sleep 1                         # the sleeps have ended
	# one more request: the daemon may reap at a request
	printf 'text 6\n' >"$ITEMS/f6"
	t4dx_wait_for 20 has_vec "$ITEMS/f6" || fail "f6"
	run zombies "$T4DX_PID"
	(( output <= 1 )) || fail "$output zombie children of the daemon: $(ps --ppid "$T4DX_PID" -o pid=,stat=,comm=)"
}

# s12: .ctl/stats and metrics said nothing of the segments' indexes.
@test "vector: .ctl/stats index_files and the metrics count index files, loaded graphs and unusable ones" {
	CFG=$(t4dx_config_file "{\"vector\":{\"dim\":$DIM,\"index_min_items\":1}}")
	t4dx_start -o "config=$CFG"
	local i
	for i in 1 2 3; do
		printf 'green tea %s\n' "$i" >"$ITEMS/t$i"
	done
	t4dx_wait_ctl 30 stats '.vectors.busy == false'
	t4dx_ctl_echo compact flush
	run jq -c '.index_files | [.files, .bytes > 0, .unusable]' "$MNT/.ctl/stats"
	assert_output '[1,true,0]'
	run metric t4dx_index_files
	assert_output 1
	ls "$MNT/search/green tea" >/dev/null
	run jq -c '.index_files | [.loaded, .loaded_bytes > 0]' "$MNT/.ctl/stats"
	assert_output '[1,true]'
	# a missing file: counted as unusable once a search finds it so
	t4dx_stop
	rm "$DATA"/seg/*.hnsw
	t4dx_start -o "config=$CFG"
	ls "$MNT/search/green tea" >/dev/null
	run jq -c '.index_files | [.files, .loaded, .unusable]' "$MNT/.ctl/stats"
	assert_output '[0,0,1]'
	run metric t4dx_index_files_unusable
	assert_output 1
	# search still answers (those segments read whole), but health says
	# it is not what it should be
	run jq -e '.status == "degraded" and .vectors.ok == false and
		.vectors.index_files_unusable == 1 and .vectors.program == "none"' \
		"$MNT/.ctl/health"
	assert_success
	run "$T4DX" status "$MNT"
	assert_failure 1
	assert_output --partial "1 index files unusable"
}
