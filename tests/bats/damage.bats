#!/usr/bin/env bats
# damage.bats - damaged segments and stray files in DATA_DIR (DESIGN.md
# sections 3 and 7).
#
# A segment whose bytes changed in the middle (a data block, not the
# header or footer, so only the block CRCs can tell) is found at the next
# start when it reads every block (health.verify_at_start), or else by the
# health thread's slices or a read, which leave a marker so that the next
# start reads it whole.  Then it is moved to DATA_DIR/quarantine/
# unchanged, named in .ctl/health, and its items are rebuilt from the
# archived WAL (wal/archive/): every item, overwrite, delete and attribute
# comes back as it was, and no damaged byte is served.  A stray file the
# daemon does not know is logged and left where it is.

load ../lib/mount

# write_history: about 300 items in 3 flushes, so 3 segments, each flush
# archiving the WAL files it covers.  The second segment also overwrites
# and deletes items of the first and sets attributes, so that rebuilding
# it wrongly (or dropping it) shows.
write_history() {
	local i
	mkdir "$ITEMS/a" "$ITEMS/b" "$ITEMS/c"
	for ((i = 0; i < 100; i++)); do t4dx_content "a$i" >"$ITEMS/a/a$i"; done
	echo flush >"$MNT/.ctl/compact"
	for ((i = 0; i < 100; i++)); do t4dx_content "b$i" >"$ITEMS/b/b$i"; done
	for ((i = 0; i < 10; i++)); do printf 'a%d, version 2\n' "$i" >"$ITEMS/a/a$i"; done
	for ((i = 50; i < 55; i++)); do rm "$ITEMS/a/a$i"; done
	mv "$ITEMS/a/a60" "$ITEMS/b/from-a60"
	for ((i = 0; i < 100; i += 10)); do
		setfattr -n user.t4dx.kappa -v 0.625 "$ITEMS/b/b$i"
		setfattr -n user.t4dx.importance -v 0.875 "$ITEMS/a/a$((i + 7))"
	done
	head -c 20000 /dev/urandom >"$ITEMS/b/binary"
	echo flush >"$MNT/.ctl/compact"
	for ((i = 0; i < 100; i++)); do t4dx_content "c$i" >"$ITEMS/c/c$i"; done
	# the embedder's vectors in the last flush too: logged after it,
	# the unmount would flush them to a fourth segment
	t4dx_wait_ctl 60 stats '.vectors.busy == false'
	echo flush >"$MNT/.ctl/compact"
}

# seg_files: the segment files of DATA_DIR, in id order.
seg_files() {
	find "$DATA/seg" -name '[0-9]*.t4s' | LC_ALL=C sort
}

# damage FILE [late]: complement 8 bytes inside FILE's data blocks
# (between the 16-byte header and the block index named by the footer), in
# the first half of the file; with late, 64 bytes before the index (the
# last block, away from the first keys).  Prints the offset.
damage() {
	local f=$1 size idx off
	size=$(stat -c %s "$f")
	idx=$(od -An -t u8 -j $((size - 88)) -N 8 "$f" | tr -d ' ')
	((idx > 16 + 64 && idx < size)) || fail "$f: index offset $idx of $size bytes"
	off=$((16 + (idx - 16) / 3))
	((off < size / 2)) || off=$((16 + (size / 2 - 16) / 2))
	[[ ${2:-} == late ]] && off=$((idx - 64))
	local b bytes=
	for b in $(od -An -v -t x1 -j "$off" -N 8 "$f"); do
		bytes+=$(printf '\\x%02x' $((0x$b ^ 0xff)))
	done
	printf "$bytes" | dd of="$f" bs=1 seek="$off" conv=notrunc status=none
	printf '%s\n' "$off"
}

# full_cfg: a config file for starts that read every block.
full_cfg() {
	t4dx_config_file '{"health":{"verify_at_start":true}}'
}

# assert_not_live COPY: no file in seg/ has the bytes of COPY.
assert_not_live() {
	local f
	for f in "$DATA"/seg/*; do
		[[ -e $f ]] || continue
		! cmp -s -- "$1" "$f" || fail "the damaged segment is still live as $f"
	done
}

@test "a segment damaged in a data block: quarantined, named in health, every item rebuilt from the archive" {
	t4dx_start
	write_history
	local want
	want=$(t4dx_tree_state) || fail "tree state"
	t4dx_stop

	local segs
	mapfile -t segs < <(seg_files)
	((${#segs[@]} == 3)) || fail "${#segs[@]} segments, not 3: ${segs[*]}"
	[[ -n $(find "$DATA/wal/archive" -type f) ]] || fail "nothing in wal/archive"
	local victim=${segs[1]} base off
	base=${victim##*/}
	off=$(damage "$victim")
	echo "# damaged 8 bytes of $base at offset $off"
	cp "$victim" "$T4DX_TMP/damaged.copy"

	local full
	full=$(full_cfg)
	t4dx_start -o "config=$full"
	# moved aside unchanged, no longer live (a rebuilt segment may take
	# its name)
	assert_file_exists "$DATA/quarantine/$base"
	t4dx_assert_same_bytes "$T4DX_TMP/damaged.copy" "$DATA/quarantine/$base"
	assert_not_live "$T4DX_TMP/damaged.copy"
	# named in health
	run jq -e --arg b "$base" '.recovery.segments_quarantined >= 1 and
		(.recovery.quarantined | type == "array" and
		 any(.[]; . == $b or endswith("/" + $b)))' "$MNT/.ctl/health"
	if ((status != 0)); then
		fail "health does not name $base: $(cat "$MNT/.ctl/health")"
	fi
	# every item, delete, rename and attribute as before: nothing damaged served
	run t4dx_tree_state
	assert_success
	if [[ $output != "$want" ]]; then
		diff <(echo "$want") <(echo "$output") | head -n 20
		fail "the store differs after the rebuild (diff above: want, got)"
	fi
	# and it stays so: the rebuild is durable, the quarantined file kept
	t4dx_remount -o "config=$full"
	run t4dx_tree_state
	assert_output "$want"
	assert_file_exists "$DATA/quarantine/$base"
	assert_not_live "$T4DX_TMP/damaged.copy"
	# the store works
	printf 'new\n' >"$ITEMS/new"
	run cat "$ITEMS/new"
	assert_output new
}

@test "a damaged block that no archive covers: only its own items are lost, the segment's whole blocks are kept, health says degraded" {
	local cfg ref=$T4DX_TMP/ref i
	# no vectors: a damaged vector part costs only vectors (test_seg),
	# and the damage here must hit content
	cfg=$(t4dx_config_file '{"wal":{"archive_max_bytes":0},"health":{"verify_at_start":true},
		"vector":{"embedder":"off"}}')
	mkdir "$ref"
	t4dx_start -o "config=$cfg"
	for ((i = 0; i < 120; i++)); do
		head -c 6000 /dev/urandom | base64 >"$ref/f$i"
		cp "$ref/f$i" "$ITEMS/f$i"
	done
	echo flush >"$MNT/.ctl/compact"
	t4dx_stop
	local segs
	mapfile -t segs < <(seg_files)
	((${#segs[@]} == 1)) || fail "${#segs[@]} segments: ${segs[*]}"
	[[ -z $(find "$DATA/wal/archive" -type f -size +0) ]] || fail "the archive keeps files"
	damage "${segs[0]}" >/dev/null
	t4dx_start -o "config=$cfg"
	# what is there is exact; a block's worth is missing, no more
	local kept=0
	for ((i = 0; i < 120; i++)); do
		[[ -e $ITEMS/f$i ]] || continue
		cmp -s "$ref/f$i" "$ITEMS/f$i" || fail "f$i differs after the rebuild"
		kept=$((kept + 1))
	done
	echo "# $kept of 120 kept"
	((kept >= 90 && kept < 120)) || fail "$kept of 120 items kept"
	t4dx_ctl_test health '.status == "degraded" and .recovery.rebuild_missing_before > 0 and
		.recovery.segments_quarantined == 1' ||
		fail "health after a rebuild that lost items: $(cat "$MNT/.ctl/health")"
	# the item count follows
	t4dx_ctl_test stats ".items == $kept" || fail "stats: $(cat "$MNT/.ctl/stats")"
}

@test "the newest segment damaged: its items come back too, and reading never serves the damaged bytes" {
	t4dx_start
	write_history
	local want
	want=$(t4dx_tree_state) || fail "tree state"
	t4dx_stop
	local segs victim base
	mapfile -t segs < <(seg_files)
	victim=${segs[-1]}
	base=${victim##*/}
	echo "# damaged $base at $(damage "$victim")"
	t4dx_start -o "config=$(full_cfg)"
	assert_file_exists "$DATA/quarantine/$base"
	run jq -e --arg b "$base" 'any(.recovery.quarantined[]; . == $b or endswith("/" + $b))' \
		"$MNT/.ctl/health"
	assert_success
	# every c item reads back exactly
	local i
	for ((i = 0; i < 100; i++)); do
		run cat "$ITEMS/c/c$i"
		assert_success
		assert_output "$(t4dx_content "c$i")"
	done
	run t4dx_tree_state
	assert_output "$want"
}

@test "a damaged block and a start that reads footers only: the store opens, the health slice marks the segment, the next start rebuilds it, nothing lost" {
	t4dx_start
	write_history
	local want
	want=$(t4dx_tree_state) || fail "tree state"
	t4dx_stop
	local segs victim base
	mapfile -t segs < <(seg_files)
	victim=${segs[1]}
	base=${victim##*/}
	echo "# damaged $base at $(damage "$victim")"
	cp "$victim" "$T4DX_TMP/damaged.copy"
	# a health tick every 0.1 s: the slices reach the damage at once
	local fast
	fast=$(t4dx_config_file '{"health":{"interval_s":0.1}}')
	t4dx_start -o "config=$fast"
	# the start read footers only: nothing quarantined, the store serves
	t4dx_ctl_test health '.recovery.segments_quarantined == 0' ||
		fail "the start quarantined: $(cat "$MNT/.ctl/health")"
	printf 'during\n' >"$ITEMS/during"
	# the health slice finds the block: an alert and a durable marker
	t4dx_wait_for 30 test -e "$victim.damaged" ||
		fail "no marker after 30 s: $(cat "$MNT/.ctl/alerts")"
	run grep -F "$base is damaged" "$MNT/.ctl/alerts"
	assert_success
	t4dx_stop
	assert_file_exists "$victim.damaged"
	# the next start reads it whole: quarantined, rebuilt, marker gone
	t4dx_start
	assert_file_exists "$DATA/quarantine/$base"
	t4dx_assert_same_bytes "$T4DX_TMP/damaged.copy" "$DATA/quarantine/$base"
	assert_file_not_exists "$victim.damaged"
	run jq -e --arg b "$base" 'any(.recovery.quarantined[]; . == $b or endswith("/" + $b))' \
		"$MNT/.ctl/health"
	assert_success
	run cat "$ITEMS/during"
	assert_output during
	rm "$ITEMS/during"
	run t4dx_tree_state
	if [[ $output != "$want" ]]; then
		diff <(echo "$want") <(echo "$output") | head -n 20
		fail "the store differs after the rebuild (diff above: want, got)"
	fi
}

@test "a damaged block found by a read: EIO, never the damaged bytes; the read leaves the marker the next start acts on" {
	local cfg
	# no vectors: a damaged vector part costs only vectors (test_seg),
	# and the damage here must hit content
	cfg=$(t4dx_config_file '{"vector":{"embedder":"off"}}')
	t4dx_start -o "config=$cfg"
	write_history
	local want
	want=$(t4dx_tree_state) || fail "tree state"
	t4dx_stop
	local segs victim base
	mapfile -t segs < <(seg_files)
	victim=${segs[0]}
	base=${victim##*/}
	echo "# damaged $base at $(damage "$victim" late)"
	# (no health tick in this test: interval 30 s)
	t4dx_start
	local i eio=0
	for ((i = 0; i < 100; i++)); do
		[[ $i -ge 50 && $i -lt 55 ]] && continue        # deleted
		[[ $i == 60 ]] && continue                      # renamed
		((i >= 10)) || continue                         # rewritten
		if ! out=$(cat "$ITEMS/a/a$i" 2>&1); then
			[[ $out == *"Input/output error"* ]] || fail "a$i: $out"
			eio=$((eio + 1))
		fi
	done
	echo "# $eio reads answered EIO"
	((eio > 0)) || fail "no read met the damaged block"
	assert_file_exists "$victim.damaged"
	t4dx_stop
	t4dx_start -o "config=$cfg"
	assert_file_exists "$DATA/quarantine/$base"
	assert_file_not_exists "$victim.damaged"
	run t4dx_tree_state
	assert_output "$want"
}

@test "the block holding items/ itself damaged, a start that reads footers only: the daemon opens the store again and mounts, rebuilt" {
	# without the embedder, the first block of the first segment is
	# the one that holds items/
	local cfg
	cfg=$(t4dx_config_file '{"vector":{"embedder":"off"}}')
	t4dx_start -o "config=$cfg"
	write_history
	local want
	want=$(t4dx_tree_state) || fail "tree state"
	t4dx_stop
	local segs victim base
	mapfile -t segs < <(seg_files)
	victim=${segs[0]}
	base=${victim##*/}
	echo "# damaged $base at $(damage "$victim")"
	t4dx_start -o "config=$cfg"
	grep -q 'items/ cannot be read: opening' "$T4DX_LOG" ||
		fail "the block with items/ was not hit: $(cat "$T4DX_LOG")"
	assert_file_exists "$DATA/quarantine/$base"
	assert_file_not_exists "$victim.damaged"
	run t4dx_tree_state
	assert_output "$want"
}

@test "stray files in DATA_DIR and seg/ are logged and left alone; the daemon starts and works" {
	t4dx_start
	printf 'before\n' >"$ITEMS/before"
	t4dx_stop
	printf 'notes of the admin\n' >"$DATA/junk.txt"
	head -c 5000 /dev/urandom >"$DATA/seg/notaseg.t4s"
	printf 'hello\n' >"$DATA/seg/README"
	cp "$DATA/junk.txt" "$T4DX_TMP/junk.copy"
	cp "$DATA/seg/notaseg.t4s" "$T4DX_TMP/notaseg.copy"

	t4dx_start
	run cat "$ITEMS/before"
	assert_output before
	printf 'after\n' >"$ITEMS/after"
	echo flush >"$MNT/.ctl/compact"
	run cat "$ITEMS/after"
	assert_output after
	# logged by name (daemon log or .ctl/alerts)
	local n
	for n in junk.txt notaseg.t4s README; do
		grep -qF "$n" "$T4DX_LOG" "$MNT/.ctl/alerts" ||
			fail "$n is named neither in the daemon log nor in .ctl/alerts: $(cat "$T4DX_LOG" "$MNT/.ctl/alerts")"
	done
	t4dx_remount
	run cat "$ITEMS/before" "$ITEMS/after"
	assert_output $'before\nafter'
	t4dx_stop
	# still there, unchanged, not moved to quarantine
	t4dx_assert_same_bytes "$T4DX_TMP/junk.copy" "$DATA/junk.txt"
	t4dx_assert_same_bytes "$T4DX_TMP/notaseg.copy" "$DATA/seg/notaseg.t4s"
	assert_file_exists "$DATA/seg/README"
	run ls "$DATA/quarantine"
	assert_output ''
}

@test "WAL damage in an older file: wal-dump names it and exits 1; the start moves the damaged bytes and later files to quarantine/" {
	local cfg
	cfg=$(t4dx_config_file '{"wal":{"max_file_bytes":4096}}')
	t4dx_start -o "config=$cfg"
	local i
	for ((i = 0; i < 30; i++)); do t4dx_content "w$i" >"$ITEMS/w$i"; done
	t4dx_kill9
	local files=("$DATA"/wal/*.jsonl)
	((${#files[@]} >= 3)) || fail "only ${#files[@]} WAL files"
	local f=${files[0]} size off byte
	size=$(stat -c %s "$f")
	off=$((size / 2))
	byte=$(od -An -tu1 -j "$off" -N1 "$f")
	printf "\\$(printf '%03o' $((byte ^ 1)))" | dd of="$f" bs=1 seek="$off" conv=notrunc status=none
	run "$T4DX" wal-dump "$DATA"
	assert_failure 1
	assert_output --partial "$f: damaged at byte"
	assert_output --partial "later file(s) not read"
	t4dx_start -o "config=$cfg"
	# the damaged bytes were copied before the cut, the later files moved
	run compgen -G "$DATA/quarantine/wal-$(basename "$f").at-*"
	assert_success
	run compgen -G "$DATA/quarantine/wal-*.jsonl"
	assert_success
	# acknowledged changes were dropped: health says so until a restart
	# (from hostile use: it said "ok")
	t4dx_ctl_test health '.status == "degraded" and .recovery.wal_files_quarantined > 0' ||
		fail "health after WAL files were dropped: $(cat "$MNT/.ctl/health")"
	run "$T4DX" wal-dump "$DATA"
	assert_success
	t4dx_stop
}

@test "the oldest live WAL file removed: the start names the missing records in an alert and in health, which says degraded" {
	local cfg
	cfg=$(t4dx_config_file '{"wal":{"max_file_bytes":4096}}')
	t4dx_start -o "config=$cfg"
	t4dx_content kept >"$ITEMS/kept"
	t4dx_ctl_echo compact flush
	local i
	for ((i = 0; i < 30; i++)); do t4dx_content "w$i" >"$ITEMS/w$i"; done
	t4dx_kill9
	local files=("$DATA"/wal/*.jsonl)
	((${#files[@]} >= 3)) || fail "only ${#files[@]} WAL files"
	rm -- "${files[0]}"
	# (before the start, which cuts the log after reporting the hole)
	local flushed
	flushed=$(jq .flushed_lsn "$DATA/MANIFEST")
	t4dx_start -o "config=$cfg"
	run jq -e --argjson f "$flushed" '.status == "degraded" and
		.recovery.wal_gap[0] == $f + 1 and .recovery.wal_gap[1] >= $f + 1' \
		"$MNT/.ctl/health"
	assert_success
	grep -q "CRIT WAL records $((flushed + 1)) to [0-9]* are missing" "$MNT/.ctl/alerts" ||
		fail "no alert: $(cat "$MNT/.ctl/alerts")"
	# what the segments and the later files hold is there
	assert_equal "$(cat "$ITEMS/kept")" "$(t4dx_content kept)"
	assert_equal "$(cat "$ITEMS/w29")" "$(t4dx_content w29)"
	run "$T4DX" status "$MNT"
	assert_failure 1
	t4dx_stop
}

# a memory of about 1 KB, so that a few fill a 4 KB log file
_big() {
	t4dx_content "$1"
	printf '%0900d\n' 0
}

@test "a WAL file removed from the middle of the log: the hole is reported, the later files are replayed, no LSN is given out twice" {
	local cfg
	# without the embedder: its records would fall into the files too
	cfg=$(t4dx_config_file '{"wal":{"max_file_bytes":4096,"checkpoint_bytes":1073741824},
		"vector":{"embedder":"off"}}')
	t4dx_start -o "config=$cfg"
	local i
	for ((i = 0; i < 30; i++)); do _big "w$i" >"$ITEMS/w$i"; done
	t4dx_kill9
	local files=("$DATA"/wal/*.jsonl)
	((${#files[@]} >= 5)) || fail "only ${#files[@]} WAL files"
	local gone=${files[2]} from to
	from=$(jq -s 'first | .lsn' "$gone")
	to=$(($(jq -s 'first | .lsn' "${files[3]}") - 1))
	local lost
	lost=$(jq -r 'select(.op == "put") | .name' "$gone")
	[[ -n $lost ]] || fail "the removed file held no put"
	rm -- "$gone"
	# the offline tools see what a start replays, and name the hole
	run "$T4DX" verify "$DATA"
	assert_failure 1
	assert_output --partial "records $from to $to are missing"
	run "$T4DX" wal-dump "$DATA"
	assert_failure 1
	assert_output --partial "w29"
	t4dx_start -o "config=$cfg"
	run jq -e --argjson a "$from" --argjson b "$to" '.status == "degraded" and
		.recovery.wal_gap == [$a, $b]' "$MNT/.ctl/health"
	assert_success
	grep -q "CRIT WAL records $from to $to are missing" "$MNT/.ctl/alerts" ||
		fail "no alert: $(cat "$MNT/.ctl/alerts")"
	# every item of the files after the hole is there, none of the hole's
	local n=0
	for ((i = 0; i < 30; i++)); do
		if grep -qx "w$i" <<<"$lost"; then
			assert_not_exist "$ITEMS/w$i"
		else
			assert_equal "$(cat "$ITEMS/w$i")" "$(_big "w$i")"
			n=$((n + 1))
		fi
	done
	((n >= 20)) || fail "only $n items"
	run compgen -G "$DATA/quarantine/wal-*"
	assert_failure
	# new records are numbered after the highest LSN of any file
	local top
	top=$("$T4DX" wal-dump --archive "$DATA" | jq -s 'map(.lsn) | max')
	t4dx_content new >"$ITEMS/new"
	t4dx_stop
	run jq -e --argjson t "$top" 'select(.name == "new") | .lsn > $t' \
		<("$T4DX" wal-dump --archive "$DATA")
	assert_success
	# the start cut the log: the next one finds no new hole
	t4dx_start -o "config=$cfg"
	run jq -e '.status == "ok" and .recovery.wal_gap == [0, 0]' \
		"$MNT/.ctl/health"
	assert_success
	assert_equal "$(cat "$ITEMS/w29")" "$(_big w29)"
	assert_equal "$(cat "$ITEMS/new")" "$(t4dx_content new)"
	t4dx_stop
}
