#!/usr/bin/env bats
# durability.bats - what close() acknowledged survives (DESIGN.md sections
# 2 and 3): many concurrent writers, SIGKILL in the middle of writing, WAL
# files cut or damaged at a random offset (point-in-time recovery), the WAL
# record format, and segments written at unmount.
#
# A writer acknowledges a file only after the command that wrote it exited 0,
# i.e. after its close() succeeded: cp reports a failed close.  (bash does not
# check close() of a redirection, so `printf > f && ack` is used only where
# nothing may fail.)  Random choices are printed, so a failure shows them.

load ../lib/mount

setup() {
	t4dx_setup
	t4dx_start
}

# The operations a data record can have (the health probe is not one).
DATA_OPS='["put","delete","rename","mkdir","rmdir","update_fields"]'

# data_records FILE: the data records of a wal-dump, compact JSON.  The
# embedder's vector updates are left out: they are derived from content,
# and a restart that dropped one logs it again for the same content.
data_records() {
	jq -c --argjson ops "$DATA_OPS" 'select((.op as $o | $ops | index([$o]))
		and (.op != "update_fields" or .vec_src != "embed"))' "$1"
}

# verify_acked DIR ACKED [torn]: every name listed in file ACKED is in DIR
# with its t4dx_content.  With "torn": every other item in DIR holds its
# t4dx_content or is empty (a commit is all or nothing).
verify_acked() {
	local dir=$1 acked=$2 torn=${3:-} n bad=0
	LC_ALL=C sort -u "$acked" >"$T4DX_TMP/acked.sorted"
	find "$dir" -mindepth 1 -maxdepth 1 -printf '%f\n' | LC_ALL=C sort >"$T4DX_TMP/present"
	local missing
	missing=$(LC_ALL=C comm -23 "$T4DX_TMP/acked.sorted" "$T4DX_TMP/present")
	[[ -z $missing ]] ||
		fail "acknowledged but missing after restart ($(wc -l <<<"$missing")): $(head -n 5 <<<"$missing")"
	local want got
	want=$(_contents_of "$T4DX_TMP/acked.sorted" | sha256sum)
	got=$(cd "$dir" && xargs -d '\n' cat -- <"$T4DX_TMP/acked.sorted" | sha256sum)
	if [[ $want != "$got" ]]; then
		while IFS= read -r n; do
			if [[ $(cat "$dir/$n"; echo .) != "$(t4dx_content "$n"; echo .)" ]]; then
				echo "content differs: $n: $(od -c "$dir/$n" | head -n 3)"
				bad=$((bad + 1))
				((bad < 5)) || break
			fi
		done <"$T4DX_TMP/acked.sorted"
		fail "acknowledged items differ after restart"
	fi
	[[ $torn == torn ]] || return 0
	while IFS= read -r n; do
		local size
		size=$(stat -c %s "$dir/$n")
		if [[ $size != 0 ]]; then
			[[ $(cat "$dir/$n"; echo .) == "$(t4dx_content "$n"; echo .)" ]] ||
				fail "unacknowledged item $n is torn: $(od -c "$dir/$n" | head -n 3)"
		fi
	done < <(LC_ALL=C comm -13 "$T4DX_TMP/acked.sorted" "$T4DX_TMP/present")
}

# _writer_mode: in a background writer subshell, drop the bats tracing
# traps (they run for every command and slow the loops down a lot) and
# errexit (the loops check what they need).
_writer_mode() {
	trap - DEBUG ERR
	set +eET
}

# _contents_of NAMES: t4dx_content of every name in file NAMES, in order.
_contents_of() {
	_writer_mode
	local n
	while IFS= read -r n; do t4dx_content "$n"; done <"$1"
}

# assert_lsns_increase FILE: the lsn of every record is larger than the one
# before it.
assert_lsns_increase() {
	run jq -s -e '[.[].lsn] as $l | $l == ($l | unique) and ($l | length) > 0' "$1"
	assert_success
}

@test "10,000 items from 4 concurrent writers are all there after remount" {
	mkdir "$ITEMS/bulk"
	local w pids=()
	for w in 0 1 2 3; do
		(
			_writer_mode
			for ((i = 0; i < 2500; i++)); do
				t4dx_content "w$w-$i" >"$ITEMS/bulk/w$w-$i" || exit 1
			done
		) 3>&- &
		pids+=($!)
	done
	t4dx_track "${pids[@]}"
	t4dx_wait_children 150 "${pids[@]}" ||
		fail "writers failed: ${T4DX_FAILED[*]}"

	{
		_writer_mode
		for w in 0 1 2 3; do
			for ((i = 0; i < 2500; i++)); do printf 'w%d-%d\n' "$w" "$i"; done
		done
	} | LC_ALL=C sort >"$T4DX_TMP/names"
	local want
	want=$(_contents_of "$T4DX_TMP/names" | sha256sum)

	t4dx_remount
	# readdir order is bytewise order, so the listing equals the sorted names
	find "$ITEMS/bulk" -mindepth 1 -maxdepth 1 -printf '%f\n' >"$T4DX_TMP/listed"
	run wc -l <"$T4DX_TMP/listed"
	assert_output 10000
	run cmp "$T4DX_TMP/names" "$T4DX_TMP/listed"
	assert_success
	run bash -c 'cd "$1" && xargs -d "\n" cat -- <"$2" | sha256sum' _ \
		"$ITEMS/bulk" "$T4DX_TMP/names"
	assert_success
	assert_output "$want"
}

@test "SIGKILL during 8 concurrent writers loses no acknowledged item (5 rounds)" {
	local src=$T4DX_TMP/src
	mkdir "$src"
	local round n w pids
	for round in 1 2 3 4 5; do
		# kill after the n-th acknowledged file, n varied per round
		n=$((1 + (round - 1) * (round - 1) * 40 + RANDOM % 20))
		echo "# round $round: SIGKILL after $n acknowledged files"
		mkdir "$ITEMS/r$round"
		pids=()
		for w in 0 1 2 3 4 5 6 7; do
			(
				_writer_mode
				i=0
				while :; do
					name=r$round-w$w-$i
					t4dx_content "$name" >"$src/$name"
					cp "$src/$name" "$ITEMS/r$round/$name" 2>/dev/null || exit 0
					printf '%s\n' "$name" >>"$T4DX_TMP/ack.$round.$w"
					i=$((i + 1))
				done
			) 3>&- &
			pids+=($!)
		done
		t4dx_track "${pids[@]}"
		acks_reached() {
			local c
			c=$(cat "$T4DX_TMP/ack.$round".* 2>/dev/null | wc -l)
			((c >= n))
		}
		t4dx_wait_for 60 acks_reached || fail "writers did not reach $n acknowledged files"
		t4dx_kill9
		t4dx_wait_children 60 "${pids[@]}" || fail "writers did not stop: ${T4DX_FAILED[*]}"
		cat "$T4DX_TMP/ack.$round".* >"$T4DX_TMP/acked.$round"
		echo "# round $round: $(wc -l <"$T4DX_TMP/acked.$round") acknowledged"

		t4dx_start
		local r
		for ((r = 1; r <= round; r++)); do
			verify_acked "$ITEMS/r$r" "$T4DX_TMP/acked.$r" torn
		done
	done
	# LSNs keep increasing across all the crashes and restarts
	printf 'after\n' >"$ITEMS/after-crashes"
	t4dx_wal_dump >"$T4DX_TMP/dump"
	assert_lsns_increase "$T4DX_TMP/dump"
	# and a clean unmount (flush to a segment) keeps everything
	t4dx_remount
	for ((r = 1; r <= 5; r++)); do
		verify_acked "$ITEMS/r$r" "$T4DX_TMP/acked.$r" torn
	done
}

@test "deletes, renames and overwrites acknowledged before SIGKILL are kept" {
	local i
	for i in 1 2 3 4 5; do
		cp <(t4dx_content "k$i") "$ITEMS/k$i"
	done
	rm "$ITEMS/k1"
	mv "$ITEMS/k2" "$ITEMS/k2-renamed"
	mv "$ITEMS/k3" "$ITEMS/k4"
	cp <(printf 'new version\n') "$ITEMS/k5"
	mkdir "$ITEMS/dir"
	mkdir "$ITEMS/gone-dir"
	rmdir "$ITEMS/gone-dir"
	t4dx_kill9
	t4dx_start
	run find "$ITEMS" -mindepth 1 -printf '%f\n'
	assert_output "$(printf '%s\n' dir k2-renamed k4 k5)"
	run cat "$ITEMS/k2-renamed"
	assert_output "$(t4dx_content k2)"
	run cat "$ITEMS/k4"
	assert_output "$(t4dx_content k3)"
	run cat "$ITEMS/k5"
	assert_output 'new version'
}

@test "a new file still open: a rename, chmod or xattr of it survives SIGKILL" {
	# A created file gets its first WAL record only at its first flush, so
	# what is acknowledged about it before that must write the file too.
	# flock creates each file and holds it open, with tail, without any
	# close (a shell redirection dups and closes: a flush, a commit)
	local lsn f pids=()
	lsn=$(t4dx_stat_field wal_lsn)
	: >"$T4DX_TMP/hold"
	for f in open-a open-b open-c open-d; do
		flock "$ITEMS/$f" tail -f "$T4DX_TMP/hold" &
		pids+=($!)
	done
	t4dx_track "${pids[@]}"
	for f in open-a open-b open-c open-d; do
		t4dx_wait_for 10 test -e "$ITEMS/$f" || fail "$f was not created"
	done
	mv "$ITEMS/open-a" "$ITEMS/moved"
	chmod 600 "$ITEMS/open-b"
	setfattr -n user.t4dx.kappa -v 0.25 "$ITEMS/open-c"
	# chmod and setxattr do not wait for the disk, and change a new file
	# without a record of their own: its put carries them
	run t4dx_data_ops_since "$lsn"
	assert_output "$(printf '%s\n' put rename)"
	# the fsync a user needs for them (coreutils sync FILE) stores the
	# files, with their mode and attributes
	sync "$ITEMS/open-b" "$ITEMS/open-c"
	run t4dx_data_ops_since "$lsn"
	assert_output "$(printf '%s\n' put rename put put)"
	t4dx_kill9
	pkill -f -- "tail -f $T4DX_TMP/hold"
	t4dx_wait_children 10 "${pids[@]}" || true
	t4dx_start
	run find "$ITEMS" -mindepth 1 -printf '%f %s %m\n'
	# open-d was never acknowledged: it may be there or not
	assert_output --regexp "^moved 0 644
open-b 0 600
open-c 0 644(
open-d 0 644)?$"
	run t4dx_xattr kappa "$ITEMS/open-c"
	assert_output 0.25
}

@test "a new file is stored at its creator's close, also after an O_TRUNC open of it" {
	# A creates the file and holds it (flock, no close); B opens it with
	# O_TRUNC and keeps it open, which makes the buffer wait for the last
	# close; A's close must still store the new file.
	local lsn holder
	lsn=$(t4dx_stat_field wal_lsn)
	: >"$T4DX_TMP/hold"
	flock "$ITEMS/new" tail -f "$T4DX_TMP/hold" &
	holder=$!
	t4dx_track "$holder"
	t4dx_wait_for 10 test -e "$ITEMS/new" || fail "new was not created"
	exec 4>"$ITEMS/new"
	pkill -f -- "tail -f $T4DX_TMP/hold"
	t4dx_wait_children 10 "$holder" || true
	run t4dx_data_ops_since "$lsn"
	exec 4>&-
	assert_output put
}

@test "a new file written and closed is one put record" {
	local lsn
	lsn=$(t4dx_stat_field wal_lsn)
	cp <(printf 'one record\n') "$ITEMS/one"
	: >"$ITEMS/empty"
	run t4dx_data_ops_since "$lsn"
	assert_output "$(printf '%s\n' put put)"
	t4dx_kill9
	t4dx_start
	run cat "$ITEMS/one"
	assert_output 'one record'
	run stat -c %s "$ITEMS/empty"
	assert_output 0
}

@test "unmount writes a segment and items come back from it" {
	local i
	mkdir "$ITEMS/ns"
	for ((i = 0; i < 50; i++)); do
		t4dx_content "seg-$i" >"$ITEMS/ns/seg-$i"
	done
	# the embedder waits for writes to pause: let it log its vectors,
	# or the restart embeds them again into the memtable
	t4dx_wait_ctl 30 stats '.vectors.busy == false'
	t4dx_stop
	run compgen -G "$DATA/seg/*.t4s"
	assert_success
	run jq -e 'type == "object"' "$DATA/MANIFEST"
	assert_success
	# what the segment holds is no longer in the live WAL (archived)
	local f
	for f in "$DATA"/wal/*.jsonl; do
		[[ -e $f ]] || continue
		run jq -c 'select(.op == "put")' "$f"
		assert_output ''
	done
	t4dx_start
	run t4dx_stat_field memtable_items
	assert_output 0
	local segs
	segs=$(t4dx_stat_field segments)
	((segs >= 1)) || fail "segments is $segs"
	for ((i = 0; i < 50; i++)); do printf 'seg-%d\n' "$i"; done >"$T4DX_TMP/acked"
	verify_acked "$ITEMS/ns" "$T4DX_TMP/acked"
}

@test "items from segments and from the WAL combine after SIGKILL" {
	local i
	for ((i = 0; i < 20; i++)); do t4dx_content "a$i" >"$ITEMS/a$i"; done
	t4dx_remount # the a-items are now in a segment
	for ((i = 0; i < 20; i++)); do t4dx_content "b$i" >"$ITEMS/b$i"; done
	rm "$ITEMS/a0"
	mv "$ITEMS/a1" "$ITEMS/b-from-a1"
	cp <(printf 'overwritten\n') "$ITEMS/a2"
	t4dx_kill9
	t4dx_start
	{
		for ((i = 3; i < 20; i++)); do printf 'a%d\n' "$i"; done
		for ((i = 0; i < 20; i++)); do printf 'b%d\n' "$i"; done
	} >"$T4DX_TMP/acked"
	verify_acked "$ITEMS" "$T4DX_TMP/acked"
	assert_file_not_exists "$ITEMS/a0"
	assert_file_not_exists "$ITEMS/a1"
	run cat "$ITEMS/b-from-a1"
	assert_output "$(t4dx_content a1)"
	run cat "$ITEMS/a2"
	assert_output 'overwritten'
}

@test "WAL records are JSON lines: lsn, op, crc last and valid, file named by first lsn" {
	local i
	mkdir "$ITEMS/d"
	for ((i = 0; i < 10; i++)); do printf 'record %d\n' "$i" >"$ITEMS/d/f$i"; done
	printf '\xff\xfe binary \x00\n' >"$ITEMS/d/bin"
	setfattr -n user.t4dx.kappa -v 0.5 "$ITEMS/d/f0"
	mv "$ITEMS/d/f1" "$ITEMS/d/g1"
	rm "$ITEMS/d/f2"
	mkdir "$ITEMS/e"
	rmdir "$ITEMS/e"
	t4dx_kill9

	local f base line first prefix want crc ops
	for f in "$DATA"/wal/*.jsonl; do
		base=${f##*/}
		[[ $base =~ ^[0-9]{20}\.jsonl$ ]] || fail "WAL file name $base"
		[[ -s $f ]] || continue
		run jq -e -s 'all(type == "object" and (.lsn | type) == "number" and
			(.op | type) == "string" and (keys_unsorted | last) == "crc")' "$f"
		assert_success
		# padding: empty lines may follow the records, never precede one
		run awk 'NF == 0 { e = 1; next } e { exit 1 }' "$f"
		assert_success
		first=$(head -n 1 "$f" | jq .lsn)
		assert_equal "$((10#${base%.jsonl}))" "$first"
		assert_lsns_increase "$f"
		# CRC-32 (zlib) of the bytes before the comma ahead of "crc"; the gzip
		# trailer holds the same CRC-32.  (Also accepted: including the comma.)
		while IFS= read -r line; do
			[[ -n $line ]] || continue
			prefix=${line%,\"crc\":*}
			# a number, or a string of hex digits
			crc=$(jq -r 'if (.crc | type) == "number" then .crc
				else "x" + .crc end' <<<"$line")
			if [[ $crc == x* ]]; then
				crc=${crc#x}
				crc=$((16#${crc#0x}))
			fi
			want=$(printf '%s' "$prefix" | gzip -c | tail -c 8 | od -An -tu4 -N4 | tr -d ' ')
			if [[ $crc != "$want" ]]; then
				want=$(printf '%s,' "$prefix" | gzip -c | tail -c 8 | od -An -tu4 -N4 | tr -d ' ')
				[[ $crc == "$want" ]] || fail "bad crc $crc in: $line"
			fi
		done < <(head -n 40 "$f")
	done
	t4dx_wal_dump >"$T4DX_TMP/dump"
	ops=$(jq -r .op "$T4DX_TMP/dump" | LC_ALL=C sort -u | tr '\n' ' ')
	local op
	for op in put delete rename mkdir rmdir update_fields; do
		[[ " $ops" == *" $op "* ]] || fail "no $op record in wal-dump (ops: $ops)"
	done
}

# damage_wal MODE: write items wal-0..wal-39 one by one, SIGKILL, damage the
# last WAL file inside a random record (MODE cut: truncate there; MODE flip:
# change one byte there), then check what a restart keeps.
damage_wal() {
	local mode=$1 i
	for ((i = 0; i < 40; i++)); do
		t4dx_content "wal-$i" >"$ITEMS/wal-$i"
	done
	t4dx_kill9
	local wal
	wal=$(t4dx_last_wal) || fail "no WAL file in $DATA/wal"
	t4dx_wal_dump >"$T4DX_TMP/before"
	# name, lsn of its first and of its last put record (a create may
	# write a put of its own before the put at close)
	jq -r -s 'map(select(.op == "put") | {lsn, name: ([.. | strings] |
		map(select(test("^wal-[0-9]+$"))) | first)}) | group_by(.name)[] |
		[.[0].name, (map(.lsn) | min), (map(.lsn) | max)] | @tsv' \
		"$T4DX_TMP/before" >"$T4DX_TMP/put-lsn"
	run wc -l <"$T4DX_TMP/put-lsn"
	assert_output 40

	# byte offset, length and lsn of every record of the last WAL file (the
	# empty lines after them are the writer's padding), and where they end
	LC_ALL=C awk 'length($0) { print s, length($0) + 1 }
		{ s += length($0) + 1 }' s=0 "$wal" >"$T4DX_TMP/offsets"
	jq -r .lsn "$wal" >"$T4DX_TMP/lsns"
	local nlines size
	nlines=$(wc -l <"$T4DX_TMP/offsets")
	size=$(awk 'END { print $1 + $2 }' "$T4DX_TMP/offsets")
	((nlines >= 8)) || fail "only $nlines records in $wal"

	# damage line k (0-based), somewhere in its first len-1 bytes
	local k start len off keep_lsn dropped
	k=$((nlines / 4 + RANDOM % (nlines / 2)))
	read -r start len < <(sed -n "$((k + 1))p" "$T4DX_TMP/offsets")
	keep_lsn=$(sed -n "${k}p" "$T4DX_TMP/lsns")
	head -c "$start" "$wal" >"$T4DX_TMP/good-prefix"
	if [[ $mode == cut ]]; then
		off=$((start + 1 + RANDOM % (len - 2)))
		echo "# cutting $wal ($size bytes of records) at $off, inside record $k (bytes $start..$((start + len - 1)))"
		truncate -s "$off" "$wal"
		dropped=$((off - start))
	else
		off=$((start + RANDOM % (len - 1)))
		local byte mask
		byte=$(od -An -tu1 -j "$off" -N1 "$wal" | tr -d ' ')
		mask=$((1 + RANDOM % 255))
		((mask != 32)) || mask=1 # a case flip could leave a hex crc "equal"
		echo "# flipping byte $off of $wal (record $k) from $byte to $((byte ^ mask))"
		printf "\\$(printf '%03o' $((byte ^ mask)))" |
			dd of="$wal" bs=1 seek="$off" conv=notrunc status=none
		dropped=$((size - start))
	fi

	# records wholly before the damage, as the dump showed them before
	jq -c --argjson keep "$keep_lsn" 'select(.lsn <= $keep)' "$T4DX_TMP/before" \
		>"$T4DX_TMP/expected"
	# wal-dump reads the damaged log without changing it and shows what is
	# before the damage (its exit status there is not part of the contract)
	t4dx_wal_dump >"$T4DX_TMP/damaged" || true
	run diff <(jq -c . "$T4DX_TMP/damaged") "$T4DX_TMP/expected"
	assert_success

	t4dx_start
	# the daemon says how many bytes it dropped
	grep -Eqi 'drop|torn|trunc|damage|corrupt' "$T4DX_LOG" ||
		fail "t4dxfs does not report the damage: $(cat "$T4DX_LOG")"
	grep -Eq "(^|[^0-9])$dropped([^0-9]|$)" "$T4DX_LOG" ||
		fail "t4dxfs does not report $dropped dropped bytes: $(cat "$T4DX_LOG")"
	# and cut the log at the start of the damaged record: the good records
	# are untouched and no damaged byte is left (anything after them is new)
	run cmp -n "$start" "$T4DX_TMP/good-prefix" "$wal"
	assert_success
	run jq -e -s 'all(type == "object")' "$wal"
	assert_success

	t4dx_wal_dump >"$T4DX_TMP/after"
	run diff <(data_records "$T4DX_TMP/after") <(data_records "$T4DX_TMP/expected")
	assert_success

	# point-in-time recovery: items whose last put is before the damage are
	# back with their content, those whose first put is after it are gone,
	# one created before it and written after it is there and empty
	local name first_lsn last_lsn
	: >"$T4DX_TMP/acked"
	while IFS=$'\t' read -r name first_lsn last_lsn; do
		if ((last_lsn <= keep_lsn)); then
			printf '%s\n' "$name" >>"$T4DX_TMP/acked"
		elif ((first_lsn > keep_lsn)); then
			assert_file_not_exists "$ITEMS/$name"
		else
			assert_file_exists "$ITEMS/$name"
			assert_size_zero "$ITEMS/$name"
		fi
	done <"$T4DX_TMP/put-lsn"
	verify_acked "$ITEMS" "$T4DX_TMP/acked"

	# the log goes on after the repaired end: a new item survives SIGKILL
	cp <(t4dx_content after-repair) "$ITEMS/after-repair"
	t4dx_kill9
	t4dx_start
	printf 'after-repair\n' >>"$T4DX_TMP/acked"
	verify_acked "$ITEMS" "$T4DX_TMP/acked"
	t4dx_wal_dump >"$T4DX_TMP/final"
	assert_lsns_increase "$T4DX_TMP/final"
}

@test "a WAL cut at a random offset: records before it are kept, the rest dropped" {
	damage_wal cut
}

@test "a WAL byte flipped at a random offset: records before it are kept, the rest dropped" {
	damage_wal flip
}
