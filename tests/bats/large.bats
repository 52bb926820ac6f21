#!/usr/bin/env bats
# large.bats - files near limits.max_item_bytes through a real t4dxfs
# (issue 14): written with dd bs=1M they reach the daemon in requests as
# large as the kernel sends (max_write 1 MiB), read back byte-identical,
# after a clean remount and after SIGKILL once closed; a write past the
# limit fails with EFBIG and the file keeps what it had; an item above
# the former ceiling (256 MiB - 1) goes through the WAL and a segment.
#
# The limit is set to an odd size a little above 40 MiB (the last request
# is partial) with a write buffer budget of exactly that size: the
# largest file must fit a budget no larger than itself.

load ../lib/mount

LIMIT=$((40 * 1048576 + 12345))

setup() {
	t4dx_setup
	CFG=$(t4dx_config_file "{\"limits\":{\"max_item_bytes\":$LIMIT,
		\"write_buffer_bytes\":$LIMIT},\"vector\":{\"embedder\":\"off\"}}")
	# text in lines (the WAL's escaped JSON text) and binary bytes (its
	# base64): the two encodings of a content
	head -c $((LIMIT * 3 / 4 + 3)) /dev/urandom | base64 -w 76 |
		head -c "$LIMIT" >"$T4DX_TMP/text"
	head -c $((8 * 1048576 + 1)) /dev/urandom >"$T4DX_TMP/bin"
}

# ops_total OP: requests of type OP the daemon has answered so far.
ops_total() {
	awk -v k="t4dx_ops_total{op=\"$1\"}" '$1 == k { print $2 }' "$MNT/.ctl/metrics"
}

# The largest WRITE the kernel sends: 1 MiB (256 pages), unless the
# fs.fuse.max_pages_limit sysctl of this machine allows fewer pages.
max_write() {
	local pages=256 lim
	if lim=$(cat /proc/sys/fs/fuse/max_pages_limit 2>/dev/null) &&
		((lim < pages)); then
		pages=$lim
	fi
	echo $((pages * 4096))
}

@test "a file of the largest size: 1 MiB WRITE requests, byte-identical after remount and after SIGKILL" {
	t4dx_start -o "config=$CFG"
	local w0 w1 most
	w0=$(ops_total write)
	dd if="$T4DX_TMP/text" of="$ITEMS/text" bs=1M status=none
	w1=$(ops_total write)
	# every dd write of 1 MiB is one request, not several smaller ones
	most=$(((LIMIT + $(max_write) - 1) / $(max_write)))
	((w1 - w0 <= most)) ||
		fail "$((w1 - w0)) WRITE requests for $LIMIT bytes (at most $most expected)"
	dd if="$T4DX_TMP/bin" of="$ITEMS/bin" bs=1M status=none
	run stat -c %s "$ITEMS/text" "$ITEMS/bin"
	assert_output "$LIMIT"$'\n'$((8 * 1048576 + 1))
	t4dx_assert_same_bytes "$T4DX_TMP/text" "$ITEMS/text"
	t4dx_assert_same_bytes "$T4DX_TMP/bin" "$ITEMS/bin"

	t4dx_remount -o "config=$CFG"
	t4dx_assert_same_bytes "$T4DX_TMP/text" "$ITEMS/text"
	t4dx_assert_same_bytes "$T4DX_TMP/bin" "$ITEMS/bin"

	# rewritten in place (the same bytes backwards by halves), closed,
	# then the daemon killed: the replay of the WAL alone has them
	local half=$((LIMIT / 2))
	{
		tail -c +$((half + 1)) "$T4DX_TMP/text"
		head -c "$half" "$T4DX_TMP/text"
	} >"$T4DX_TMP/text2"
	dd if="$T4DX_TMP/text2" of="$ITEMS/text" bs=1M conv=notrunc status=none
	cat "$T4DX_TMP/bin" >>"$ITEMS/bin"
	cat "$T4DX_TMP/bin" "$T4DX_TMP/bin" >"$T4DX_TMP/bin2"
	t4dx_kill9
	t4dx_start -o "config=$CFG"
	t4dx_assert_same_bytes "$T4DX_TMP/text2" "$ITEMS/text"
	t4dx_assert_same_bytes "$T4DX_TMP/bin2" "$ITEMS/bin"
	# and once more from the segment a clean stop writes
	t4dx_remount -o "config=$CFG"
	t4dx_assert_same_bytes "$T4DX_TMP/text2" "$ITEMS/text"
	t4dx_assert_same_bytes "$T4DX_TMP/bin2" "$ITEMS/bin"
}

@test "dd past limits.max_item_bytes fails with 'File too large' and loses nothing" {
	t4dx_start -o "config=$CFG"
	dd if="$T4DX_TMP/text" of="$ITEMS/f" bs=1M status=none
	head -c $((LIMIT + 1)) /dev/urandom >"$T4DX_TMP/over"

	# over an existing file (dd's O_TRUNC open, then 41 MiB of writes)
	run dd if="$T4DX_TMP/over" of="$ITEMS/f" bs=1M status=none
	assert_failure
	assert_output --partial 'File too large'
	t4dx_assert_same_bytes "$T4DX_TMP/text" "$ITEMS/f"
	# one byte appended to a file of the largest size
	run dd if=/dev/zero of="$ITEMS/f" bs=1 count=1 oflag=append conv=notrunc status=none
	assert_failure
	assert_output --partial 'File too large'
	t4dx_assert_same_bytes "$T4DX_TMP/text" "$ITEMS/f"
	# a new file: created, but none of the refused bytes
	run dd if="$T4DX_TMP/over" of="$ITEMS/g" bs=1M status=none
	assert_failure
	assert_output --partial 'File too large'
	run stat -c %s "$ITEMS/g"
	assert_output 0

	# the budget is free again: the largest file still goes in
	dd if="$T4DX_TMP/text" of="$ITEMS/h" bs=1M status=none
	t4dx_assert_same_bytes "$T4DX_TMP/text" "$ITEMS/h"

	t4dx_kill9
	t4dx_start -o "config=$CFG"
	t4dx_assert_same_bytes "$T4DX_TMP/text" "$ITEMS/f"
	t4dx_assert_same_bytes "$T4DX_TMP/text" "$ITEMS/h"
	run stat -c %s "$ITEMS/g"
	assert_output 0
}

@test "an item above the former 256 MiB ceiling: 260 MiB of text survives SIGKILL and a remount" {
	local cfg n=$((260 * 1048576))
	cfg=$(t4dx_config_file '{"limits":{"max_item_bytes":1073741824,
		"write_buffer_bytes":1073741824},"vector":{"embedder":"off"}}')
	t4dx_start -o "config=$cfg"
	head -c $((n * 3 / 4 + 3)) /dev/urandom | base64 -w 76 | head -c "$n" >"$T4DX_TMP/big"
	dd if="$T4DX_TMP/big" of="$ITEMS/big" bs=1M status=none
	t4dx_kill9
	# the replay reads the 260 MiB record back from the WAL, before the
	# mount: 14-16 s in a sanitizer build under CI's load, past the
	# default bound of 15
	T4DX_MOUNT_TIMEOUT=120 t4dx_start -o "config=$cfg"
	t4dx_assert_same_bytes "$T4DX_TMP/big" "$ITEMS/big"
	# and, after the clean stop, from its segment
	t4dx_remount -o "config=$cfg"
	t4dx_assert_same_bytes "$T4DX_TMP/big" "$ITEMS/big"
}

@test "a crash in the middle of a large record's write: t4dx verify calls it the torn end of a write, not damage" {
	# a close of a large file writes its record for seconds (17 s for
	# 1 GiB here): a crash then leaves a torn record longer than 64 MiB
	local cfg n=$((100 * 1048576)) wal size cut
	cfg=$(t4dx_config_file '{"limits":{"max_item_bytes":1073741824,
		"write_buffer_bytes":1073741824},"vector":{"embedder":"off"}}')
	t4dx_start -o "config=$cfg"
	printf 'small\n' >"$ITEMS/small"
	head -c $((n * 3 / 4 + 3)) /dev/urandom | base64 -w 76 | head -c "$n" >"$T4DX_TMP/big"
	dd if="$T4DX_TMP/big" of="$ITEMS/big" bs=1M status=none
	t4dx_kill9
	# the log as a crash 90 MiB into the big record's write leaves it
	wal=$(t4dx_last_wal)
	size=$(stat -c %s "$wal")
	cut=$((size - n + 90 * 1048576))
	truncate -s "$cut" "$wal"
	run "$T4DX" verify "$DATA"
	assert_success
	assert_line --regexp "^note: $wal: offset [0-9]+: the last [0-9]+ bytes are the torn end of a write"
	# and the start cuts it: the small file kept, the big one as its
	# create left it (its content was never acknowledged)
	t4dx_start -o "config=$cfg"
	run cat "$ITEMS/small"
	assert_output small
	run stat -c %s "$ITEMS/big"
	assert_output 0
}

@test "limits.max_item_bytes lowered below an item's size: the item is kept whole, and a write to it fails with EFBIG at the write" {
	local big small
	big=$(t4dx_config_file '{"limits":{"max_item_bytes":41943040,
		"write_buffer_bytes":41943040},"vector":{"embedder":"off"}}')
	small=$(t4dx_config_file '{"limits":{"max_item_bytes":1048576},
		"vector":{"embedder":"off"}}')
	t4dx_start -o "config=$big"
	head -c 15000000 /dev/urandom | base64 -w 76 | head -c 20000000 >"$T4DX_TMP/f"
	cp "$T4DX_TMP/f" "$ITEMS/f"
	t4dx_kill9
	t4dx_start -o "config=$small"
	t4dx_assert_same_bytes "$T4DX_TMP/f" "$ITEMS/f"
	# metadata changes and a rename still work
	chmod 600 "$ITEMS/f"
	touch "$ITEMS/f"
	mv "$ITEMS/f" "$ITEMS/g"
	# one byte at offset 0: the file would stay past the limit, so the
	# write itself says so (README: "fails with EFBIG at the write"),
	# not a close after a write that seemed to succeed
	run python3 -c '
import errno, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
try:
    os.write(fd, b"x")
except OSError as e:
    print("write:", errno.errorcode[e.errno])
try:
    os.close(fd)
except OSError as e:
    print("close:", errno.errorcode[e.errno])
' "$ITEMS/g"
	# nothing changed, so the close has nothing to refuse
	assert_output "write: EFBIG"
	t4dx_assert_same_bytes "$T4DX_TMP/f" "$ITEMS/g"
	# cut below the limit through the same handle, it takes writes
	python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
os.ftruncate(fd, 1000)
os.write(fd, b"x")
os.close(fd)
' "$ITEMS/g"
	head -c 1000 "$T4DX_TMP/f" | { printf x; tail -c +2; } >"$T4DX_TMP/f2"
	t4dx_assert_same_bytes "$T4DX_TMP/f2" "$ITEMS/g"
	t4dx_kill9
	t4dx_start -o "config=$small"
	t4dx_assert_same_bytes "$T4DX_TMP/f2" "$ITEMS/g"
}

@test "nrem of a large item rewritten between flushes holds one version of it in memory, not one per segment" {
	local cfg n=$((64 * 1048576)) h
	cfg=$(t4dx_config_file '{"limits":{"max_item_bytes":1073741824,
		"write_buffer_bytes":1073741824},"vector":{"embedder":"off"}}')
	t4dx_start -o "config=$cfg"
	head -c "$n" /dev/urandom >"$T4DX_TMP/big"
	for i in 1 2 3 4; do
		dd if="$T4DX_TMP/big" of="$ITEMS/big" bs=1M status=none
		until echo flush 2>/dev/null >"$MNT/.ctl/compact"; do sleep 0.2; done
	done
	# a fresh daemon: its peak so far is the start's
	t4dx_remount -o "config=$cfg"
	until echo nrem 2>/dev/null >"$MNT/.ctl/compact"; do sleep 0.2; done
	h=$(awk '/VmHWM/ { print $2 }' "/proc/$(t4dx_daemon_pid)/status")
	# one version read and written (64 MiB), and room for the rest
	((h < 2 * n / 1024)) || fail "VmHWM ${h} kB for an nrem of 4 versions of $((n >> 20)) MiB"
	t4dx_assert_same_bytes "$T4DX_TMP/big" "$ITEMS/big"
}

@test "readers of a large item in a segment share one copy of its content" {
	local cfg n=$((64 * 1048576)) r
	cfg=$(t4dx_config_file '{"limits":{"max_item_bytes":1073741824,
		"write_buffer_bytes":1073741824},"vector":{"embedder":"off"}}')
	t4dx_start -o "config=$cfg"
	head -c "$n" /dev/urandom >"$T4DX_TMP/big"
	dd if="$T4DX_TMP/big" of="$ITEMS/big" bs=1M status=none
	t4dx_remount -o "config=$cfg"     # the item is in a segment now
	exec 5<"$ITEMS/big" 6<"$ITEMS/big" 7<"$ITEMS/big" 8<"$ITEMS/big"
	r=$(awk '/VmRSS/ { print $2 }' "/proc/$(t4dx_daemon_pid)/status")
	exec 5<&- 6<&- 7<&- 8<&-
	((r < 2 * n / 1024)) || fail "VmRSS ${r} kB with 4 readers of $((n >> 20)) MiB"
}
