#!/usr/bin/env bats
# bounds.bats - what a daemon that runs for weeks keeps bounded (issue 10):
# the live WAL and so the replay of a restart (wal.checkpoint_bytes), and
# the WAL archive (wal.archive_max_bytes).

load ../lib/mount

setup() {
	t4dx_setup
}

# stat_le KEY MAX: .ctl/stats KEY is at most MAX
stat_le() {
	local v
	v=$(jq -r ".$1" "$MNT/.ctl/stats") || return 1
	((v <= $2))
}

# replayed: the WAL records the last start replayed, from its log line
replayed() {
	sed -n 's/.*: \([0-9]*\) WAL records replayed.*/\1/p' "$T4DX_LOG"
}

@test "rewriting one file keeps the live WAL near wal.checkpoint_bytes, and a restart after SIGKILL replays no more" {
	local cfg
	cfg=$(t4dx_config_file '{"wal":{"checkpoint_bytes":1048576,
		"archive_max_bytes":2097152}}')
	t4dx_start -o "config=$cfg"
	head -c 200000 /dev/urandom >"$T4DX_TMP/blob"
	local i
	# 40 versions of one 200 KB file: about 10 MB of log; the memtable
	# holds one version, far below its own limits
	for ((i = 0; i < 40; i++)); do
		cp "$T4DX_TMP/blob" "$ITEMS/blob"
		printf '%02d' "$i" | dd of="$ITEMS/blob" conv=notrunc status=none
	done
	# a flush runs in the background once the log passes 1 MB
	t4dx_wait_for 30 stat_le wal_bytes 1400000 ||
		fail "live WAL stays at $(jq .wal_bytes "$MNT/.ctl/stats") bytes"
	run jq -r '.segments > 0 and .archive_bytes <= 2097152' "$MNT/.ctl/stats"
	assert_output true
	t4dx_kill9
	t4dx_start -o "config=$cfg"
	local n
	n=$(replayed)
	((n < 20)) || fail "the restart replayed $n records"
	printf '39' >"$T4DX_TMP/want"
	tail -c +3 "$T4DX_TMP/blob" >>"$T4DX_TMP/want"
	cmp "$T4DX_TMP/want" "$ITEMS/blob"
	t4dx_stop
}

@test "a restart that replays more than wal.checkpoint_bytes cuts it into a segment at once, after the mount is ready" {
	local big small
	# written with a checkpoint too large to be reached ...
	# (without the embedder: its marks for the random files, logged
	# after the flush, would sit in the memtable)
	big=$(t4dx_config_file '{"wal":{"checkpoint_bytes":1073741824},"vector":{"embedder":"off"}}')
	small=$(t4dx_config_file '{"wal":{"checkpoint_bytes":1048576},"vector":{"embedder":"off"}}')
	t4dx_start -o "config=$big"
	head -c 300000 /dev/urandom >"$T4DX_TMP/blob"
	local i
	for ((i = 0; i < 10; i++)); do
		cp "$T4DX_TMP/blob" "$ITEMS/blob$i"
	done
	t4dx_kill9
	# ... and started with a small one: the replay is flushed
	t4dx_start -o "config=$small"
	grep -q 'being flushed to a segment' "$T4DX_LOG" ||
		fail "no flush after the replay: $(cat "$T4DX_LOG")"
	# the flusher's first task, not the open's: it ends soon after
	t4dx_wait_ctl 30 stats '.memtable_items == 0 and .segments > 0'
	t4dx_kill9
	t4dx_start -o "config=$small"
	# (a health probe may have logged a record meanwhile)
	local n
	n=$(replayed)
	((n <= 2)) || fail "the second restart replayed $n records"
	for ((i = 0; i < 10; i++)); do
		cmp "$T4DX_TMP/blob" "$ITEMS/blob$i"
	done
	t4dx_stop
}

# write_before N, write_after N: items/bI "before I" (I < N) and aI
# "after I"; assert_before_after: 3 of the first and 6 of the second are
# there.
write_before() {
	local i
	for ((i = 0; i < $1; i++)); do printf 'before %d\n' "$i" >"$ITEMS/b$i"; done
}
write_after() {
	local i
	for ((i = 0; i < $1; i++)); do printf 'after %d\n' "$i" >"$ITEMS/a$i"; done
}
assert_before_after() {
	local i
	for ((i = 0; i < 3; i++)); do
		run cat "$ITEMS/b$i"
		assert_output "before $i"
	done
	for ((i = 0; i < 6; i++)); do
		run cat "$ITEMS/a$i"
		assert_output "after $i"
	done
}

# new_log_begun: the alert that the lost log's changes are saved
new_log_begun() {
	grep -q 'removed while mounted (Stale file handle); every change up to record [0-9]* is saved in a segment and a new log begins' "$MNT/.ctl/alerts"
}

@test "a WAL removed behind the daemon's back is noticed (ESTALE), its changes go to a segment at once and a new log begins: a crash after loses nothing" {
	t4dx_start
	local i
	write_before 3
	rm -rf "$DATA/wal"
	write_after 6
	t4dx_wait_for 20 new_log_begun ||
		fail "no new log: $(cat "$MNT/.ctl/alerts")"
	t4dx_wait_ctl 20 health '.unpersisted == 0 and .status == "ok"'
	assert_equal "$(t4dx_ctl_get breaker .state)" CLOSED
	printf 'later\n' >"$ITEMS/later"
	compgen -G "$DATA/wal/*.jsonl" >/dev/null || fail "no new WAL file: $(ls -la "$DATA/wal")"
	t4dx_kill9
	t4dx_start
	assert_before_after
	run cat "$ITEMS/later"
	assert_output later
	run "$T4DX" verify --force-readonly "$DATA"
	assert_success
	t4dx_stop
}

@test "a WAL removed while a segment cannot be written either: nothing is acknowledged as durable, and the unmount saves it all" {
	t4dx_start
	local i
	write_before 3
	# seg/ made unusable for new segments: a file in its place
	mv "$DATA/seg" "$DATA/seg.away"
	touch "$DATA/seg"
	rm -rf "$DATA/wal"
	write_after 6
	run jq -e '.unpersisted > 0 and .status != "ok"' "$MNT/.ctl/health"
	assert_success
	grep -q 'removed while mounted, and what it held could not be saved' "$MNT/.ctl/alerts" ||
		fail "no alert: $(cat "$MNT/.ctl/alerts")"
	# fdatasync may not say 0
	run sync -d "$ITEMS/a0"
	assert_failure
	rm -f "$DATA/seg"
	mv "$DATA/seg.away" "$DATA/seg"
	t4dx_stop
	t4dx_start
	assert_before_after
	t4dx_stop
}

@test "fsync after the WAL was removed says EIO for what only the removed log held, then 0 once the flusher saved it in a segment" {
	t4dx_start
	printf 'A\n' >"$ITEMS/A"
	sync -d "$ITEMS/A"
	rm -rf "$DATA/wal"
	# nothing was written since: no group has seen the removal yet (the
	# failed fsync itself sets the save going, so a second one may
	# already find A in a segment)
	run sync -d "$ITEMS/A"
	assert_failure
	t4dx_wait_for 20 new_log_begun ||
		fail "no new log: $(cat "$MNT/.ctl/alerts")"
	sync -d "$ITEMS/A"
	t4dx_kill9
	t4dx_start
	run cat "$ITEMS/A"
	assert_output A
	t4dx_stop
}

@test "a WAL removed while no segment can be written until after the unmount: the rescue file holds the changes the removed log held too" {
	t4dx_start
	write_before 3
	mv "$DATA/seg" "$DATA/seg.away"
	touch "$DATA/seg"
	rm -rf "$DATA/wal"
	write_after 6
	t4dx_wait_for 10 grep -q 'could not be saved' "$MNT/.ctl/alerts" ||
		fail "no alert: $(cat "$MNT/.ctl/alerts")"
	t4dx_stop
	# the unmount could not cut a segment: everything the memtable
	# held, durable in the removed log or not, is in the rescue file
	run compgen -G "$DATA/rescue-*.jsonl"
	assert_success
	local rescue=$output
	run jq -r 'select(.op == "put") | .name' "$rescue"
	assert_line b0
	assert_line a5
	grep -q 'changes held in memory only (the log was removed) saved in' "$T4DX_LOG" ||
		fail "no message: $(cat "$T4DX_LOG")"
	rm -f "$DATA/seg"
	mv "$DATA/seg.away" "$DATA/seg"
	t4dx_start
	assert_before_after
	t4dx_stop
	t4dx_start
	assert_before_after
	t4dx_stop
}

# health_runs_at_least N: the segment check ran N times, all of them ok
seg_runs_ok() {
	t4dx_ctl_test health ".checks.segments.runs >= $1 and .checks.segments.ok"
}

@test "the health check reads a segment a slice per tick (health.verify_bytes) and still finds damage in it" {
	local cfg
	cfg=$(t4dx_config_file '{"health":{"interval_s":0.02,"verify_bytes":4096}}')
	t4dx_start -o "config=$cfg"
	local i
	for ((i = 0; i < 40; i++)); do
		head -c 20000 /dev/urandom >"$ITEMS/r$i"
	done
	echo flush >"$MNT/.ctl/compact"
	local seg runs
	seg=$(compgen -G "$DATA/seg/*.t4s")
	# 800 KB that do not compress: many slices of about 4 KiB, each
	# tick one, all of them fine
	runs=$(jq .checks.segments.runs "$MNT/.ctl/health")
	t4dx_wait_for 60 seg_runs_ok $((runs + 20)) ||
		fail "segment checks: $(jq -c .checks.segments "$MNT/.ctl/health")"
	run jq -e '.status == "ok"' "$MNT/.ctl/health"
	assert_success
	# a byte in the middle of the segment flipped: some slice finds it
	local off byte
	off=$(($(stat -c %s "$seg") / 2))
	byte=$(od -An -tu1 -j "$off" -N1 "$seg")
	printf "\\x$(printf %02x $((byte ^ 0x40)))" |
		dd of="$seg" bs=1 seek="$off" conv=notrunc status=none
	t4dx_wait_for 60 t4dx_ctl_test health '.checks.segments.ok == false' ||
		fail "damage not found: $(jq -c .checks.segments "$MNT/.ctl/health")"
	grep -q "$(basename "$seg") is damaged" "$T4DX_LOG" ||
		fail "no alert: $(cat "$T4DX_LOG")"
	# and the marker the next start acts on
	assert_file_exists "$seg.damaged"
	t4dx_stop
}

@test "the write buffers of all open files share limits.write_buffer_bytes: past it a write fails with ENOSPC and loses nothing" {
	local cfg st=$T4DX_TMP/st
	cfg=$(t4dx_config_file '{"limits":{"max_item_bytes":1048576,
		"write_buffer_bytes":1048576}}')
	t4dx_start -o "config=$cfg"
	mkdir "$st"
	# a writer that holds 700 KB uncommitted and waits
	perl -e 'open(my $h, ">", $ARGV[0]) or die; syswrite($h, "a" x 700000) == 700000 or die;
		open(my $s, ">", $ARGV[1]); close($s); sleep 600' "$ITEMS/a" "$st/a" &
	local holder=$!
	t4dx_track "$holder"
	t4dx_wait_for 10 test -e "$st/a"
	# a second file does not fit beside it
	run perl -e 'open(my $h, ">", $ARGV[0]) or die; my $n = syswrite($h, "b" x 700000);
		print defined $n ? "wrote $n" : "$!"' "$ITEMS/b"
	# the write fails, and so does the close (nothing half-written stays)
	assert_line 'No space left on device'
	assert_line --partial 'unable to close filehandle'
	run stat -c %s "$ITEMS/b"
	assert_output 0
	# the first writer's end closes its file: that commits it and frees
	# its buffer
	kill "$holder"
	wait "$holder" || true
	# (the kernel releases the closed file a moment after the close)
	t4dx_wait_for 10 stat_le write_buffer_bytes 0
	run perl -e 'open(my $h, ">", $ARGV[0]) or die; my $n = syswrite($h, "b" x 700000);
		close($h) or die "$!"; print "wrote $n"' "$ITEMS/b"
	assert_output 'wrote 700000'
	run stat -c %s "$ITEMS/a" "$ITEMS/b"
	assert_output $'700000\n700000'
	t4dx_stop
}

@test "limits.write_buffer_bytes holds while commits fail: a big buffer whose put was refused stays counted" {
	local cfg
	cfg=$(t4dx_config_file '{"fallback":{"policy":"reject"},
		"limits":{"max_item_bytes":2097152,"write_buffer_bytes":4194304}}')
	t4dx_start -o "config=$cfg"
	local i
	for ((i = 0; i < 12; i++)); do : >"$ITEMS/f$i"; done
	# every commit is refused (EIO) while the breaker is open
	echo open >"$MNT/.ctl/breaker"
	# 12 files, each 1.5 MiB written (1 MiB or more: handed to the put
	# without a copy) and fsync'ed, all held open: 2 fit in 4 MiB.  A
	# write the buffer takes fails its fsync with EIO (the commit is
	# refused), one it has no room for with ENOSPC (at the write, or at
	# the fsync when the kernel's cache held the pages)
	run python3 - "$ITEMS" "$MNT/.ctl/stats" <<'PY'
import errno, json, os, sys
d, stats = sys.argv[1:]
fds, ok = [], 0
for i in range(12):
    fd = os.open("%s/f%d" % (d, i), os.O_WRONLY)
    fds.append(fd)
    try:
        os.write(fd, b"x" * (1536 * 1024))
        os.fsync(fd)
        sys.exit("fsync returned 0 with the breaker open")
    except OSError as e:
        if e.errno == errno.EIO:
            ok += 1
        elif e.errno != errno.ENOSPC:
            raise
print("accepted", ok)
print("write_buffer_bytes", json.load(open(stats))["write_buffer_bytes"])
for fd in fds:
    try:
        os.close(fd)
    except OSError:
        pass
PY
	assert_success
	assert_line 'accepted 2'
	local wb
	wb=$(sed -n 's/^write_buffer_bytes //p' <<<"$output")
	((wb > 3 * 1536 * 1024 / 2 && wb <= 4194304)) ||
		fail "write_buffer_bytes $wb with two 1.5 MiB buffers held"
	echo reset >"$MNT/.ctl/breaker"
	# the closed files' buffers are gone, and with them their budget
	t4dx_wait_for 10 stat_le write_buffer_bytes 0 ||
		fail "write_buffer_bytes $(jq .write_buffer_bytes "$MNT/.ctl/stats") after every file was closed"
	t4dx_stop
}

@test "limits.write_buffer_bytes below limits.max_item_bytes is refused at start" {
	local cfg
	cfg=$(t4dx_config_file '{"limits":{"max_item_bytes":2097152,
		"write_buffer_bytes":1048576}}')
	t4dx_run_daemon -f -o "config=$cfg" "$DATA" "$MNT"
	assert_failure
	assert_output --partial 'limits.write_buffer_bytes (1048576) must be at least limits.max_item_bytes (2097152)'
}
