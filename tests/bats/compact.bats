#!/usr/bin/env bats
# compact.bats - compaction through MOUNT/.ctl/compact (DESIGN.md section
# 4): flush, nrem (merge into one segment, newest version kept, tombstones
# dropped, kappa boosted), prune (low kappa and importance, or too old),
# EBUSY while a run is going on (reads and writes go on), bad commands, a
# SIGKILL in the middle of a run and right after one, and the automatic
# compaction when segments of a size pile up.
#
# T4DX_TEST_COMPACT_PAUSE=SECONDS in the daemon's environment makes an nrem
# or prune stop that long once its new segment is complete in seg/ and
# before the MANIFEST naming it is installed: the test sees an unlisted
# seg/*.t4s and knows the run is exactly there.  Anything done while a run
# may be paused in the daemon is bounded by `timeout -s KILL`, so a daemon
# that blocks cannot hang the suite.
#
# EBUSY is checked twice: against a manual nrem (a second `echo` while the
# first is still in its write(2)) and against an automatic compaction
# started by a full memtable (no write of .ctl/compact in progress).

load ../lib/mount

# Every test starts the daemon itself (some with the pause).
setup() {
	t4dx_setup
}

# start_paused SECONDS [t4dxfs option...]: t4dx_start with the compaction
# pause in the daemon's environment.
start_paused() {
	local secs=$1
	shift
	T4DX_TEST_COMPACT_PAUSE=$secs
	export T4DX_TEST_COMPACT_PAUSE
	t4dx_start "$@"
	local rc=$?
	unset T4DX_TEST_COMPACT_PAUSE
	return $rc
}

# compact_get FILTER: jq FILTER (raw) of .ctl/compact, bounded in time.
compact_get() {
	timeout -s KILL 5 jq -r "$1" "$MNT/.ctl/compact"
}

# compact_run WORD: `echo WORD > .ctl/compact`, bounded (a run here takes
# well under a second).  Use with run.
compact_run() {
	timeout -s KILL 20 bash -c 'echo "$1" >"$2"' _ "$1" "$MNT/.ctl/compact"
}

COMPACT_SCHEMA='
def last_ok: . == null or ((.start_ns | type == "number") and
	(.duration_s | type == "number" and . >= 0) and (.result | type == "string") and
	all(.items_in, .items_out, .bytes_in, .bytes_out; type == "number" and . >= 0));
(.running == null or (.running | type == "string")) and
all(.flush, .nrem, .prune; (.runs | type == "number") and
	(.bytes_written | type == "number" and . >= 0) and (.last | last_ok))'

# assert_ran OP N: .ctl/compact is well-formed, nothing is running, OP has
# run N times and its last run succeeded.
assert_ran() {
	run jq -e --arg op "$1" --argjson n "$2" "($COMPACT_SCHEMA) and
		.running == null and .[\$op].runs == \$n and
		.[\$op].last.result == \"ok\" and .[\$op].last.start_ns > 0" \
		"$MNT/.ctl/compact"
	if ((status != 0)); then
		cat "$MNT/.ctl/compact"
		fail "after $1 run $2: .ctl/compact is not as expected"
	fi
}

# assert_kappa FILE WANT: user.t4dx.kappa of FILE is WANT (within 1e-6).
assert_kappa() {
	local got
	got=$(t4dx_xattr kappa "$1") || fail "no kappa on $1"
	t4dx_num_eq "$got" "$2" 1e-6 || fail "kappa of ${1#"$ITEMS"/}: $(t4dx_num_eq "$got" "$2" 1e-6)"
}

# assert_listing LINE...: the entries below ITEMS (relative paths, sorted
# bytewise) are exactly these.
assert_listing() {
	run bash -c 'cd "$1" && find . -mindepth 1 -printf "%P\n" | LC_ALL=C sort' _ "$ITEMS"
	assert_success
	assert_output "$(printf '%s\n' "$@" | LC_ALL=C sort)"
}

# segments: stats.segments.
segments() {
	t4dx_stat_field segments
}

# build_history: items spread over three segments and the memtable, with
# overwrites, deletes, a delete-and-recreate and attribute changes, so that
# the live state differs from every single segment.  Sets HISTORY_LIVE,
# the entries expected afterwards.  Contents are "NAME vN".
build_history() {
	local i
	mkdir "$ITEMS/ns"
	for i in 0 1 2 3 4 5 6 7 8 9; do printf 'a%d v1\n' "$i" >"$ITEMS/a$i"; done
	for i in 0 1 2 3 4; do printf 'b%d v1\n' "$i" >"$ITEMS/ns/b$i"; done
	compact_run flush
	for i in 0 1 2 3 4; do cp <(printf 'a%d v2\n' "$i") "$ITEMS/a$i"; done
	rm "$ITEMS/a5" "$ITEMS/a6" "$ITEMS/a8"
	compact_run flush
	cp <(printf 'a0 v3\n') "$ITEMS/a0"
	cp <(printf 'a1 v3\n') "$ITEMS/a1"
	printf 'a8 v3\n' >"$ITEMS/a8"
	rm "$ITEMS/ns/b0"
	setfattr -n user.t4dx.kappa -v 0.5 "$ITEMS/a2"
	setfattr -n user.t4dx.kappa -v 0.98 "$ITEMS/a3"
	setfattr -n user.t4dx.importance -v 0.3 "$ITEMS/a4"
	compact_run flush
	# left in the memtable
	cp <(printf 'a2 v4\n') "$ITEMS/a2"
	rm "$ITEMS/a7"
	printf 'c0 v1\n' >"$ITEMS/c0"
	HISTORY_LIVE=(a0 a1 a2 a3 a4 a8 a9 c0 ns ns/b1 ns/b2 ns/b3 ns/b4)
}

# assert_history_contents: the contents of the live entries of
# build_history are the newest versions.
assert_history_contents() {
	local want=(a0:v3 a1:v3 a2:v4 a3:v2 a4:v2 a8:v3 a9:v1 c0:v1
		ns/b1:v1 ns/b2:v1 ns/b3:v1 ns/b4:v1) w name
	for w in "${want[@]}"; do
		name=${w%%:*}
		run cat "$ITEMS/$name"
		assert_output "${name##*/} ${w#*:}"
	done
}

# ---- flush ---------------------------------------------------------------------

@test "compact reads as JSON with no runs; flush moves the memtable to one new segment" {
	t4dx_start
	local f=$MNT/.ctl/compact
	t4dx_ends_with_newline "$f" || fail "compact does not end with a newline"
	run jq -e "($COMPACT_SCHEMA) and .running == null and
		all(.flush, .nrem, .prune; .runs == 0 and .bytes_written == 0 and
		.last == null)" "$f"
	assert_success

	local i
	for i in 0 1 2 3 4 5; do t4dx_content "f$i" >"$ITEMS/f$i"; done
	local segs0 mem0 files0
	segs0=$(segments)
	mem0=$(t4dx_stat_field memtable_items)
	((mem0 >= 6)) || fail "memtable_items is $mem0 after 6 writes"
	files0=$(compgen -G "$DATA/seg/*.t4s" | wc -l)

	# the embedder's vectors, logged once writes pause, go in the flush
	t4dx_wait_ctl 30 stats '.vectors.busy == false'
	run compact_run flush
	assert_success
	assert_output ''
	# done when the write returned
	assert_ran flush 1
	run jq -e '.flush.last.bytes_out > 0 and
		.flush.bytes_written == .flush.last.bytes_out' "$f"
	assert_success
	run t4dx_stat_field memtable_items
	assert_output 0
	run segments
	assert_output "$((segs0 + 1))"
	run jq '.segments | length' "$DATA/MANIFEST"
	assert_output "$((segs0 + 1))"
	run bash -c 'compgen -G "$1/seg/*.t4s" | wc -l' _ "$DATA"
	assert_output "$((files0 + 1))"
	run jq -e '.flush.last | .items_in >= 6 and .items_out >= 6 and
		.bytes_in > 0 and .bytes_out > 0' "$f"
	assert_success
	run t4dx_unlisted_segments
	assert_failure

	# a second flush is a second run, later
	local start1
	start1=$(compact_get .flush.last.start_ns)
	printf 'g\n' >"$ITEMS/g"
	compact_run flush
	assert_ran flush 2
	run compact_get ".flush.last.start_ns > $start1"
	assert_output true
	run segments
	assert_output "$((segs0 + 2))"
	run jq -e '.nrem.runs == 0 and .prune.runs == 0' "$f"
	assert_success

	t4dx_remount
	for i in 0 1 2 3 4 5; do
		run cat "$ITEMS/f$i"
		assert_output "$(t4dx_content "f$i")"
	done
}

# ---- nrem ------------------------------------------------------------------------

@test "nrem merges all segments into one: newest versions, no tombstones, kappa +0.05 capped at 1" {
	t4dx_start
	build_history
	run segments
	assert_output 3
	run t4dx_stat_field memtable_items
	refute_output 0

	# the embedder's vectors, logged once writes pause, go in the nrem
	t4dx_wait_ctl 30 stats '.vectors.busy == false'
	run compact_run nrem
	assert_success
	assert_output ''
	assert_ran nrem 1
	# it flushed the memtable first, and left one segment
	run t4dx_stat_field memtable_items
	assert_output 0
	run segments
	assert_output 1
	run jq -e '(.segments | length) == 1' "$DATA/MANIFEST"
	assert_success
	# superseded versions and tombstones were dropped: the merged segment
	# holds the live entries only
	run jq -e '.segments[0].items == .items' "$DATA/MANIFEST"
	assert_success
	local in out
	in=$(compact_get .nrem.last.items_in)
	out=$(compact_get .nrem.last.items_out)
	echo "# nrem: items_in $in, items_out $out"
	((in - out >= 10)) || fail "nrem read $in records and wrote $out: superseded versions or tombstones kept"
	run jq -e '.nrem.last.bytes_in > .nrem.last.bytes_out and .nrem.last.bytes_out > 0' \
		"$MNT/.ctl/compact"
	assert_success
	run t4dx_unlisted_segments
	assert_failure

	local pass f
	for pass in mounted remounted; do
		assert_listing "${HISTORY_LIVE[@]}"
		assert_history_contents
		for f in a0 a1 a4 a8 a9 c0 ns/b1 ns/b2 ns/b3 ns/b4; do
			assert_kappa "$ITEMS/$f" 0.05
		done
		assert_kappa "$ITEMS/a2" 0.55
		assert_kappa "$ITEMS/a3" 1
		run t4dx_xattr importance "$ITEMS/a4"
		t4dx_num_eq "$output" 0.3 || fail "importance of a4 is $output"
		[[ $pass == remounted ]] || t4dx_remount
	done
	run segments
	assert_output 1

	# a second run boosts again; deleted items stay deleted
	run compact_run nrem
	assert_success
	run jq -e '.running == null and .nrem.last.result == "ok"' "$MNT/.ctl/compact"
	assert_success
	assert_kappa "$ITEMS/a9" 0.1
	assert_kappa "$ITEMS/a2" 0.6
	assert_kappa "$ITEMS/a3" 1
	t4dx_remount
	assert_listing "${HISTORY_LIVE[@]}"
	assert_history_contents
	assert_kappa "$ITEMS/ns/b1" 0.1
}

# ---- prune ------------------------------------------------------------------------

# setattrs FILE KAPPA IMPORTANCE
setattrs() {
	setfattr -n user.t4dx.kappa -v "$2" "$1"
	setfattr -n user.t4dx.importance -v "$3" "$1"
}

@test "prune removes files with kappa <= 0.05 and importance < 0.1, never directories" {
	t4dx_start
	mkdir "$ITEMS/ns" "$ITEMS/emptydir" "$ITEMS/lowdir"
	local f
	for f in default p-low p-zero p-edge k-kappa k-imp ns/p-in ns/k-in lowdir/p-only; do
		printf '%s\n' "$f" >"$ITEMS/$f"
	done
	compact_run flush
	setattrs "$ITEMS/p-low" 0 0.05
	setattrs "$ITEMS/p-edge" 0.05 0.09
	setattrs "$ITEMS/k-kappa" 0.06 0
	setattrs "$ITEMS/k-imp" 0 0.1
	setattrs "$ITEMS/ns/p-in" 0.01 0.01
	setattrs "$ITEMS/lowdir/p-only" 0 0
	compact_run flush
	# these changes stay in the memtable
	setattrs "$ITEMS/p-zero" 0 0
	setattrs "$ITEMS/ns/k-in" 0.5 0
	# directories may carry attributes too; whether or not they do, prune
	# leaves them
	setattrs "$ITEMS/emptydir" 0 0 2>/dev/null || true
	setattrs "$ITEMS/lowdir" 0 0 2>/dev/null || true

	run compact_run prune
	assert_success
	assert_output ''
	assert_ran prune 1
	run compact_get '.nrem.runs'
	assert_output 0
	local pass kept=(default k-kappa k-imp ns ns/k-in emptydir lowdir)
	for pass in mounted remounted; do
		assert_listing "${kept[@]}"
		for f in default k-kappa k-imp ns/k-in; do
			run cat "$ITEMS/$f"
			assert_output "$f"
		done
		# prune does not boost kappa
		assert_kappa "$ITEMS/k-kappa" 0.06
		assert_kappa "$ITEMS/default" 0
		assert_kappa "$ITEMS/ns/k-in" 0.5
		[[ $pass == remounted ]] || t4dx_remount
	done
	# the pruned names are free again
	printf 'new\n' >"$ITEMS/p-low"
	run cat "$ITEMS/p-low"
	assert_output new
}

@test "prune with compaction.prune_max_age_s removes files whose event_time is older" {
	local cfg
	cfg=$(t4dx_config_file '{"compaction":{"prune_max_age_s":3600}}')
	t4dx_start -o "config=$cfg"
	local now
	now=$(date +%s%N)
	mkdir "$ITEMS/olddir"
	printf 'old\n' >"$ITEMS/old"
	printf 'recent\n' >"$ITEMS/recent"
	printf 'fresh\n' >"$ITEMS/fresh"
	printf 'old too\n' >"$ITEMS/olddir/old2"
	setattrs "$ITEMS/old" 0.9 0.9
	setfattr -n user.t4dx.event_time -v "$((now - 7200 * 1000000000))" "$ITEMS/old"
	setfattr -n user.t4dx.event_time -v "$((now - 86400 * 1000000000))" "$ITEMS/olddir/old2"
	setfattr -n user.t4dx.event_time -v "$((now - 600 * 1000000000))" "$ITEMS/recent"
	setfattr -n user.t4dx.event_time -v "$((now - 7200 * 1000000000))" "$ITEMS/olddir" \
		2>/dev/null || true
	run compact_run prune
	assert_success
	assert_ran prune 1
	assert_listing fresh olddir recent
	t4dx_remount
	assert_listing fresh olddir recent
	run cat "$ITEMS/recent" "$ITEMS/fresh"
	assert_output $'recent\nfresh'
}

# ---- refused commands ----------------------------------------------------------------

@test "rem is EOPNOTSUPP; bad, random, oversized and empty writes are EINVAL or nothing; none runs" {
	t4dx_start
	printf 'x\n' >"$ITEMS/x" # a flush would change the segment count
	local segs w
	segs=$(segments)
	run compact_run rem
	assert_failure
	assert_output --partial 'Operation not supported'
	for w in '' flushh FLUSH Nrem 'nrem prune' 'flush now' ' flush' compact rem2 open; do
		run compact_run "$w"
		assert_failure
		assert_output --partial 'Invalid argument'
	done
	printf 'flush\0' >"$T4DX_TMP/nul"
	printf 'prune\r\n' >"$T4DX_TMP/crlf"
	for w in nul crlf; do
		run t4dx_ctl_write_file compact "$T4DX_TMP/$w"
		assert_failure
		assert_output --partial 'Invalid argument'
	done
	for w in 1 2 3 4 5; do
		head -c $((1 + RANDOM % 200)) /dev/urandom >"$T4DX_TMP/random"
		run t4dx_ctl_write_file compact "$T4DX_TMP/random"
		assert_failure
		assert_output --partial 'Invalid argument'
	done
	for w in $(seq 50); do printf 'flush\n'; done >"$T4DX_TMP/big"
	run t4dx_ctl_write_file compact "$T4DX_TMP/big"
	assert_failure
	assert_output --partial 'Invalid argument'
	run t4dx_ctl_write_file compact /dev/null
	# nothing ran
	run jq -e "($COMPACT_SCHEMA) and .running == null and
		all(.flush, .nrem, .prune; .runs == 0)" "$MNT/.ctl/compact"
	assert_success
	run segments
	assert_output "$segs"
	run t4dx_stat_field memtable_items
	refute_output 0
	# a command without its newline works
	printf 'flush' >"$T4DX_TMP/flush"
	run t4dx_ctl_write_file compact "$T4DX_TMP/flush"
	assert_success
	assert_ran flush 1
	run segments
	assert_output "$((segs + 1))"
}

# ---- EBUSY, and a crash in the middle of a run -----------------------------------------

# run_in_background OP: start `echo OP > .ctl/compact` in the background,
# BG_PID its pid, BG_OUT its output file.
run_in_background() {
	BG_OUT=$T4DX_TMP/bg.$1.out
	(
		exec 3>&-
		echo "$1" >"$MNT/.ctl/compact"
	) >"$BG_OUT" 2>&1 &
	BG_PID=$!
	t4dx_track "$BG_PID"
}

# paused_in OP: OP is running and its new segment is complete but not yet
# listed in the MANIFEST.
paused_in() {
	[[ $(compact_get .running 2>/dev/null) == "$1" ]] && t4dx_unlisted_segments >/dev/null
}

# run_paused OP: run_in_background OP, and wait until it is paused_in OP.
run_paused() {
	run_in_background "$1"
	t4dx_wait_for 15 paused_in "$1" ||
		fail "$1 not seen paused before its MANIFEST: $(cat "$MNT/.ctl/compact"; ls -l "$DATA/seg")"
}

# assert_busy_at_once WORD...: each `echo WORD > .ctl/compact` fails with
# EBUSY, and at once (not after the run in progress ended).
assert_busy_at_once() {
	local w t0 ms
	for w in "$@"; do
		t0=$(_t4dx_now_us)
		run compact_run "$w"
		ms=$((($(_t4dx_now_us) - t0) / 1000))
		if ((status == 0)); then
			fail "'$w' written during a run succeeded after $ms ms (the run in progress had ended?): $(cat "$MNT/.ctl/compact")"
		fi
		assert_output --partial 'Device or resource busy'
		((ms < 1500)) || fail "'$w' got EBUSY only after $ms ms"
	done
}

@test "while nrem runs: reads and writes go on, a second command is EBUSY at once" {
	# long enough for the checks below on a loaded machine (3 s was not)
	start_paused 8
	build_history
	compact_run flush
	run_paused nrem
	# reads and writes are served while the run is paused
	run timeout -s KILL 2 cat "$ITEMS/a0"
	assert_output 'a0 v3'
	run timeout -s KILL 2 bash -c 'printf "during\n" >"$1"' _ "$ITEMS/during"
	assert_success
	run timeout -s KILL 2 cp <(printf 'a9 v2\n') "$ITEMS/a9"
	assert_success
	run timeout -s KILL 2 cat "$ITEMS/during" "$ITEMS/a9"
	assert_output $'during\na9 v2'
	t4dx_alive "$BG_PID" || fail "the nrem run ended before the writes were checked: $(cat "$BG_OUT")"
	run compact_get .running
	assert_output nrem
	assert_busy_at_once prune flush nrem

	t4dx_wait_children 30 "$BG_PID" || fail "nrem failed: ${T4DX_FAILED[*]}: $(cat "$BG_OUT")"
	assert_ran nrem 1
	run jq -e '.prune.runs == 0' "$MNT/.ctl/compact"
	assert_success
	run segments
	assert_output 1
	# what was written during the run is kept, over the merged versions
	local pass
	for pass in mounted remounted; do
		run cat "$ITEMS/during" "$ITEMS/a9" "$ITEMS/a0"
		assert_output $'during\na9 v2\na0 v3'
		[[ $pass == remounted ]] || t4dx_remount
	done
}

# paused_auto: an automatic compaction is paused before its MANIFEST: 9
# segments are live and a complete new one is not listed yet.
paused_auto() {
	local s
	t4dx_unlisted_segments >/dev/null && s=$(segments) && ((s >= 9))
}

# compacted: no run is going on and fewer than 9 segments are live.
compacted() {
	local s
	s=$(segments) && ((s < 9)) && [[ $(compact_get .running) == null ]]
}

@test "while an automatic compaction runs, a command is EBUSY at once" {
	local cfg
	# no embedder: its vector records, logged once the writes below
	# pause, fill the 20-item memtable again, and the flush of that one
	# (an unlisted segment too) passes for the paused compaction
	cfg=$(t4dx_config_file '{"memtable":{"max_items":20},"vector":{"embedder":"off"}}')
	start_paused 3 -o "config=$cfg"
	local i k
	# eight segments, each of ten items: about the size of the ninth
	for ((i = 1; i <= 8; i++)); do
		printf 's%d\n' "$i" >"$ITEMS/s$i"
		for ((k = 1; k < 10; k++)); do
			t4dx_content "p$i.$k" >"$ITEMS/p$i.$k"
		done
		compact_run flush
	done
	run segments
	assert_output 8
	# a full memtable is flushed by itself: the 9th segment, of a size
	# with the others
	for ((i = 0; i < 21; i++)); do t4dx_content "m$i" >"$ITEMS/m$i"; done
	t4dx_wait_for 15 paused_auto ||
		fail "no automatic compaction seen with $(segments) segments: $(cat "$MNT/.ctl/compact"; ls -l "$DATA/seg")"
	assert_busy_at_once nrem prune flush
	run timeout -s KILL 2 bash -c 'printf "during\n" >"$1"' _ "$ITEMS/during"
	assert_success
	t4dx_wait_for 15 compacted ||
		fail "still $(segments) segments: $(cat "$MNT/.ctl/compact")"
	local pass
	for pass in mounted remounted; do
		for ((i = 1; i <= 8; i++)); do
			run cat "$ITEMS/s$i"
			assert_output "s$i"
			run cat "$ITEMS/p$i.9"
			assert_output "$(t4dx_content "p$i.9")"
		done
		for ((i = 0; i < 21; i++)); do
			run cat "$ITEMS/m$i"
			assert_output "$(t4dx_content "m$i")"
		done
		run cat "$ITEMS/during"
		assert_output during
		[[ $pass == remounted ]] || t4dx_remount -o "config=$cfg"
	done
}

# kill_mid_run OP: SIGKILL the daemon while OP is paused between its
# complete new segment and its MANIFEST; after a restart the store is as it
# was before the run; then the same run, uninterrupted, works.
kill_mid_run() {
	local op=$1
	start_paused 30
	build_history
	setattrs "$ITEMS/a9" 0 0 # something for prune to remove
	setattrs "$ITEMS/ns/b1" 0.01 0.01
	# the embedder's vectors in the flush too: logged after it, they
	# would make the run flush a segment of its own first
	t4dx_wait_ctl 60 stats '.vectors.busy == false'
	compact_run flush
	local before segs ids
	before=$(t4dx_tree_state)
	segs=$(segments)
	ids=$(t4dx_manifest_seg_ids | tr '\n' ' ')
	echo "# before $op: $segs segments ($ids)"
	run_paused "$op"
	echo "# unlisted: $(t4dx_unlisted_segments | tr '\n' ' ')"
	t4dx_kill9
	t4dx_wait_children 10 "$BG_PID" || true # its write was cut off
	run t4dx_manifest_seg_ids
	assert_output "$(tr ' ' '\n' <<<"${ids% }")"

	t4dx_start
	run segments
	assert_output "$segs"
	run t4dx_tree_state
	assert_output "$before"
	run compact_get ".running == null and .$op.runs == 0"
	assert_output true

	# the run works now, and its result lasts
	run compact_run "$op"
	assert_success
	assert_ran "$op" 1
	local after
	after=$(t4dx_tree_state)
	[[ $after != "$before" ]] || fail "$op changed nothing after the restart"
	t4dx_remount
	run t4dx_tree_state
	assert_output "$after"
	if [[ $op == nrem ]]; then
		assert_kappa "$ITEMS/a0" 0.05
		run segments
		assert_output 1
	else
		assert_file_not_exists "$ITEMS/a9"
		assert_file_not_exists "$ITEMS/ns/b1"
	fi
}

@test "SIGKILL while nrem waits to install its segment: the store is exactly as before" {
	kill_mid_run nrem
}

@test "SIGKILL while prune waits to install its segment: the store is exactly as before" {
	kill_mid_run prune
}

@test "SIGKILL right after nrem and after prune: their results survive" {
	t4dx_start
	build_history
	setattrs "$ITEMS/a9" 0 0
	# vectors logged during the run would land on the state before it
	# (see the test below)
	t4dx_wait_ctl 60 stats '.vectors.busy == false'
	compact_run nrem
	assert_ran nrem 1
	local after
	after=$(t4dx_tree_state)
	t4dx_kill9
	t4dx_start
	run t4dx_tree_state
	assert_output "$after"
	assert_kappa "$ITEMS/a0" 0.05
	run segments
	assert_output 1
	assert_listing "${HISTORY_LIVE[@]}"
	assert_history_contents

	# a9 got kappa 0.05 from nrem and importance 0: prunable
	compact_run prune
	assert_ran prune 1
	assert_file_not_exists "$ITEMS/a9"
	after=$(t4dx_tree_state)
	t4dx_kill9
	t4dx_start
	run t4dx_tree_state
	assert_output "$after"
	assert_file_not_exists "$ITEMS/a9"
}

# ---- automatic compaction ---------------------------------------------------------------

@test "more than 8 segments of a size start a compaction by themselves" {
	t4dx_start
	local i segs max=0 busy=0
	for ((i = 1; i <= 12; i++)); do
		printf 'auto %d\n' "$i" >"$ITEMS/auto$i"
		run compact_run flush
		if [[ $output == *'Device or resource busy'* ]]; then
			busy=1 # the automatic run already started
			break
		fi
		assert_success
		segs=$(segments)
		((segs > max)) && max=$segs
		((segs < 9)) || break
	done
	((i <= 12)) || i=12 # the loop ran to its end: auto$i was not written
	echo "# $i flushes, at most $max segments seen, busy: $busy"
	((max >= 8)) || fail "only $max segments after $i flushes"
	t4dx_wait_for 10 compacted ||
		fail "still $(segments) segments 10 s after the 9th: $(cat "$MNT/.ctl/compact")"
	run segments
	echo "# now $output segments"
	local n=$i
	for pass in mounted remounted; do
		for ((i = 1; i <= n; i++)); do
			run cat "$ITEMS/auto$i"
			assert_output "auto $i"
		done
		[[ $pass == remounted ]] || t4dx_remount
	done
	segs=$(segments)
	((segs < 9)) || fail "$segs segments after the remount"
}

# kappa and importance of each file in items/, a line each
k_and_i() {
	local f
	for f in "$ITEMS"/*; do
		echo "${f##*/} $(t4dx_xattr kappa "$f") $(t4dx_xattr importance "$f")"
	done
}

# same_after_kill9 LIVE [OPTION...]: after SIGKILL and a start with the
# OPTIONs, k_and_i prints LIVE again.
same_after_kill9() {
	local live=$1
	shift
	t4dx_kill9
	t4dx_start "$@"
	run k_and_i
	assert_output "$live"
}

@test "changes logged while nrem runs land on nrem's result alike live and after a crash" {
	local cfg
	cfg=$(t4dx_config_file '{"vector":{"embedder":"off"}}')
	start_paused 3 -o "config=$cfg"
	local f
	for f in x y z w; do
		printf '%s v1\n' "$f" >"$ITEMS/$f"
	done
	compact_run flush
	run_paused nrem
	# an update, a rename, a rewrite of an item of the run; a new file
	setfattr -n user.t4dx.importance -v 0.7 "$ITEMS/x"
	mv "$ITEMS/y" "$ITEMS/y2"
	printf 'z v2\n' >"$ITEMS/z"
	printf 'n v1\n' >"$ITEMS/n"
	t4dx_wait_children 30 "$BG_PID" || fail "nrem did not end"
	assert_ran nrem 1
	# each item of the run boosted once, however it changed; the new one not
	local live
	live=$(k_and_i)
	[[ $live == *"x 0.05 0.7"* && $live == *"y2 0.05 "* &&
		$live == *"z 0.05 "* && $live == *"w 0.05 "* &&
		$live == *"n 0 "* ]] || fail "live after nrem: $live"
	sync "$ITEMS"        # everything durable
	same_after_kill9 "$live" -o "config=$cfg"
}

@test "policy reject: changes logged while nrem runs land alike live and after a crash, a second nrem too" {
	local cfg
	cfg=$(t4dx_config_file '{"vector":{"embedder":"off"},"fallback":{"policy":"reject"}}')
	start_paused 3 -o "config=$cfg"
	local f
	for f in x y z w; do
		printf '%s v1\n' "$f" >"$ITEMS/$f"
	done
	compact_run flush
	run_paused nrem
	setfattr -n user.t4dx.importance -v 0.7 "$ITEMS/x"
	setfattr -n user.t4dx.kappa -v 0.98 "$ITEMS/w"
	mv "$ITEMS/y" "$ITEMS/y2"
	printf 'z v2\n' >"$ITEMS/z"
	rm "$ITEMS/y2"
	printf 'y2 again\n' >"$ITEMS/y2"
	t4dx_wait_children 30 "$BG_PID" || fail "nrem did not end"
	assert_ran nrem 1
	local live
	live=$(k_and_i)
	[[ $live == *"x 0.05 0.7"* && $live == *"z 0.05 "* &&
		$live == *"w 1 "* && $live == *"y2 0 "* ]] ||
		fail "live after nrem: $live"
	same_after_kill9 "$live" -o "config=$cfg"
	# a second nrem over the first's records, then a crash again
	compact_run nrem
	live=$(k_and_i)
	[[ $live == *"x 0.1 0.7"* && $live == *"y2 0.05 "* ]] ||
		fail "live after the second nrem: $live"
	same_after_kill9 "$live" -o "config=$cfg"
}

@test "the embedder's vectors logged while nrem runs: kappa and vectors alike live and after a crash" {
	start_paused 4
	local f
	for f in a b c; do
		printf '%s green tea leaves\n' "$f" >"$ITEMS/$f"
	done
	t4dx_wait_ctl 30 stats '.vectors.busy == false'
	compact_run flush
	run_paused nrem
	# new content: the embedder logs their vectors during the run
	printf 'a black coffee beans\n' >"$ITEMS/a"
	printf 'n new oolong\n' >"$ITEMS/n"
	t4dx_wait_ctl 30 stats '.vectors.busy == false'
	t4dx_wait_children 30 "$BG_PID" || fail "nrem did not end"
	assert_ran nrem 1
	local live vecs
	live=$(k_and_i)
	vecs=$(for f in "$ITEMS"/*; do getfattr --absolute-names --only-values -n user.t4dx.vector "$f" | md5sum; done)
	[[ $live == *"a 0.05 "* && $live == *"b 0.05 "* && $live == *"n 0 "* ]] ||
		fail "live after nrem: $live"
	sync "$ITEMS"
	same_after_kill9 "$live"
	run bash -c 'for f in "$1"/*; do getfattr --absolute-names --only-values -n user.t4dx.vector "$f" | md5sum; done' _ "$ITEMS"
	assert_output "$vecs"
}

@test "a file open across nrem (created before it, closed after): kappa alike live and after a crash" {
	local cfg
	cfg=$(t4dx_config_file '{"vector":{"embedder":"off"}}')
	start_paused 3 -o "config=$cfg"
	printf 'x v1\n' >"$ITEMS/x"
	exec 5>"$ITEMS/p"
	printf 'p v1\n' >&5
	run_paused nrem
	exec 6>"$ITEMS/q"
	printf 'q v1\n' >&6
	t4dx_wait_children 30 "$BG_PID" || fail "nrem did not end"
	assert_ran nrem 1
	printf 'p v2\n' >&5
	exec 5>&- 6>&-
	local live
	live=$(k_and_i)
	[[ $live == *"x 0.05 "* ]] || fail "live after nrem: $live"
	sync "$ITEMS"
	same_after_kill9 "$live" -o "config=$cfg"
	run cat "$ITEMS/p"
	assert_output $'p v1\np v2'
}
