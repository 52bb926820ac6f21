#!/usr/bin/env bats
# lock.bats - the daemon's life cycle (DESIGN.md sections 3 and 8): one
# daemon per DATA_DIR (LOCK), refusal with the holder's pid, a stale mount
# after SIGKILL, start without -f returning only once the mount is ready,
# bad arguments, clean exits on unmount, SIGTERM and SIGINT.
#
# Starts that are expected to fail, and starts without -f, go through
# t4dx_run_daemon: output to a file (a daemon that wrongly stays attached to
# a pipe cannot hang the test) and a timeout.

load ../lib/mount

# assert_names_pid PID: the output names PID (as a whole number).
assert_names_pid() {
	assert_output --regexp "(^|[^0-9])$1([^0-9]|$)"
}

# The guidance expected when the mount point is a dead FUSE mount.
STALE_HINT='fusermount3? +-u|umount'

@test "an empty DATA_DIR gets LOCK, MANIFEST, wal/, wal/archive/, seg/, quarantine/" {
	t4dx_start
	printf 'x\n' >"$ITEMS/x"
	assert_file_exists "$DATA/LOCK"
	assert_dir_exists "$DATA/wal"
	assert_dir_exists "$DATA/wal/archive"
	assert_dir_exists "$DATA/seg"
	assert_dir_exists "$DATA/quarantine"
	run bash -c 'ls "$1"/wal/*.jsonl' _ "$DATA"
	assert_success
	assert_output --regexp '/[0-9]{20}\.jsonl$'
	# LOCK is flock'ed while the daemon runs, and free afterwards
	run flock -n "$DATA/LOCK" true
	assert_failure
	t4dx_stop
	run flock -n "$DATA/LOCK" true
	assert_success
	# the MANIFEST names the segment written at unmount
	assert_file_exists "$DATA/MANIFEST"
	run jq -e 'type == "object"' "$DATA/MANIFEST"
	assert_success
}

@test "a second daemon on the same DATA_DIR is refused, naming the first one's pid" {
	t4dx_start
	printf 'first\n' >"$ITEMS/f"
	mkdir "$T4DX_TMP/mnt2"
	t4dx_run_daemon "$DATA" "$T4DX_TMP/mnt2"
	assert_failure
	refute [ "$status" -eq 124 ]
	assert_names_pid "$T4DX_PID"
	run t4dx_is_mounted "$T4DX_TMP/mnt2"
	assert_failure
	# in the foreground too
	t4dx_run_daemon -f "$DATA" "$T4DX_TMP/mnt2"
	assert_failure
	refute [ "$status" -eq 124 ]
	assert_names_pid "$T4DX_PID"
	# the first daemon is unharmed
	printf 'still\n' >"$ITEMS/g"
	run cat "$ITEMS/f" "$ITEMS/g"
	assert_output $'first\nstill'
	t4dx_stop
}

@test "a daemon started without -f is named by its own pid when a second start is refused" {
	t4dx_run_daemon "$DATA" "$MNT"
	assert_success
	local pid
	pid=$(t4dx_daemon_pid)
	[[ $pid =~ ^[0-9]+$ ]] || fail "cannot find the daemon's pid (got '$pid')"
	mkdir "$T4DX_TMP/mnt2"
	t4dx_run_daemon "$DATA" "$T4DX_TMP/mnt2"
	assert_failure
	assert_names_pid "$pid"
	fusermount3 -u "$MNT"
	t4dx_wait_for 30 t4dx_dead "$pid" || fail "daemon $pid still running after unmount"
}

@test "without -f, t4dxfs returns only when the mount is ready" {
	local round pid
	for round in 1 2 3; do
		t4dx_run_daemon "$DATA" "$MNT"
		assert_success
		# no waiting: usable the moment the command returned
		t4dx_is_mounted "$MNT" || fail "round $round: not mounted when t4dxfs returned"
		run ls "$MNT/items"
		assert_success
		printf 'round %d\n' "$round" >"$ITEMS/r$round"
		run cat "$ITEMS/r1"
		assert_output 'round 1'
		pid=$(t4dx_daemon_pid)
		fusermount3 -u "$MNT"
		t4dx_wait_for 30 t4dx_dead "$pid" || fail "daemon $pid still running after unmount"
	done
	run compgen -G "$DATA/seg/*.t4s"
	assert_success
}

@test "without -f, t4dxfs does not keep the caller's stdout and stderr open" {
	# $(...) returns only when every writer of the pipe has closed it
	run timeout 20 bash -c 'out=$("$@" 2>&1 3>&-); echo "returned: $out"' _ \
		"$T4DXFS" "$DATA" "$MNT"
	assert_success
	assert_output --partial 'returned:'
	t4dx_is_mounted "$MNT"
	local pid
	pid=$(t4dx_daemon_pid)
	fusermount3 -u "$MNT"
	t4dx_wait_for 30 t4dx_dead "$pid" || fail "daemon $pid still running after unmount"
}

@test "a DATA_DIR that is a regular file is refused with a message" {
	printf 'not a directory\n' >"$T4DX_TMP/file"
	t4dx_run_daemon "$T4DX_TMP/file" "$MNT"
	assert_failure
	refute [ "$status" -eq 124 ]
	assert_output --regexp "$T4DX_TMP/file|Not a directory"
	run t4dx_is_mounted "$MNT"
	assert_failure
	run cat "$T4DX_TMP/file"
	assert_output 'not a directory'
	t4dx_run_daemon -f "$T4DX_TMP/file" "$MNT"
	assert_failure
	refute [ "$status" -eq 124 ]
	refute_output ''
}

@test "a missing mount point is refused with a message" {
	t4dx_run_daemon "$DATA" "$T4DX_TMP/no-such-dir"
	assert_failure
	refute [ "$status" -eq 124 ]
	refute_output ''
}

@test "a dead mount left by SIGKILL makes the next start fail with fusermount3 -u guidance" {
	t4dx_start
	printf 'survivor\n' >"$ITEMS/s"
	t4dx_kill9 --keep-mount
	run ls "$MNT"
	assert_failure
	assert_output --partial 'Transport endpoint is not connected'

	t4dx_run_daemon "$DATA" "$MNT"
	assert_failure
	refute [ "$status" -eq 124 ]
	assert_output --regexp "$STALE_HINT"
	t4dx_run_daemon -f "$DATA" "$MNT"
	assert_failure
	refute [ "$status" -eq 124 ]
	assert_output --regexp "$STALE_HINT"

	# following the advice works, and nothing acknowledged was lost
	fusermount3 -u -z "$MNT"
	t4dx_start
	run cat "$ITEMS/s"
	assert_output 'survivor'
}

# stop_by SIGNAL: the daemon exits 0 on SIGNAL, unmounted, with a segment,
# and the data is there on the next start.
stop_by() {
	t4dx_start
	local i
	for i in 1 2 3; do printf 'item %d\n' "$i" >"$ITEMS/i$i"; done
	kill "-$1" "$T4DX_PID"
	_t4dx_reap "$T4DX_PID" || fail "t4dxfs still running ${T4DX_EXIT_TIMEOUT}s after SIG$1"
	T4DX_PID=
	[[ $T4DX_STATUS == 0 ]] ||
		fail "t4dxfs exited with status $T4DX_STATUS on SIG$1: $(cat "$T4DX_LOG")"
	run t4dx_is_mounted "$MNT"
	assert_failure
	run compgen -G "$DATA/seg/*.t4s"
	assert_success
	run flock -n "$DATA/LOCK" true
	assert_success
	t4dx_start
	run cat "$ITEMS/i1" "$ITEMS/i2" "$ITEMS/i3"
	assert_output $'item 1\nitem 2\nitem 3'
}

@test "SIGTERM unmounts cleanly, exits 0 and leaves a segment" {
	stop_by TERM
}

@test "SIGINT unmounts cleanly, exits 0 and leaves a segment" {
	stop_by INT
}

@test "fusermount3 -u ends a foreground daemon with status 0" {
	t4dx_start
	printf 'x\n' >"$ITEMS/x"
	t4dx_stop
	run compgen -G "$DATA/seg/*.t4s"
	assert_success
}

@test "a DATA_DIR that does not exist is refused unless -o create, which makes it private" {
	local d=$T4DX_TMP/new-store
	t4dx_run_daemon -f "$d" "$MNT"
	assert_failure
	refute [ "$status" -eq 124 ]
	assert_output --partial 'does not exist'
	assert_output --partial '-o create'
	assert [ ! -e "$d" ]
	run t4dx_is_mounted "$MNT"
	assert_failure
	DATA=$d t4dx_start -o create
	run stat -c %a "$d"
	assert_output 700
	printf 'x\n' >"$ITEMS/x"
	t4dx_stop
}

@test "the data directory and everything in it is private: directories 0700, files 0600" {
	t4dx_start
	mkdir "$ITEMS/ns"
	printf 'secret\n' >"$ITEMS/ns/x"
	echo flush >"$MNT/.ctl/compact"
	printf 'more\n' >"$ITEMS/ns/y"
	t4dx_kill9
	t4dx_start
	t4dx_stop
	run find "$DATA" -mindepth 1 \( -type d ! -perm 700 -o -type f ! -perm 600 \) -printf '%m %p\n'
	assert_output ''
	run find "$DATA" -mindepth 1 -type f
	assert_success
	refute_output ''
}

@test "a DATA_DIR open to group or others gets a warning at start" {
	chmod 755 "$DATA"
	t4dx_start
	grep -q "warning: $DATA is open to group or others" "$T4DX_LOG" ||
		fail "no warning: $(cat "$T4DX_LOG")"
	t4dx_stop
	chmod 700 "$DATA"
	t4dx_start
	run grep -c warning "$T4DX_LOG"
	assert_output 0
	t4dx_stop
}

@test "a bad -o option is refused before the store is opened" {
	t4dx_run_daemon -f -o no_such_option "$DATA" "$MNT"
	assert_failure
	refute [ "$status" -eq 124 ]
	assert_output --partial 'no_such_option'
	# nothing was opened: no LOCK, no log, no MANIFEST
	run find "$DATA" -mindepth 1
	assert_output ''
}

@test "-o create makes DATA_DIR only once every option is accepted" {
	local d=$T4DX_TMP/new-store cfg
	t4dx_run_daemon -f -o create,no_such_option "$d" "$MNT"
	assert_failure
	refute [ "$status" -eq 124 ]
	assert_output --partial 'no_such_option'
	assert [ ! -e "$d" ]
	cfg=$(t4dx_config_file '{"limits":{"no_such_key":1}}')
	t4dx_run_daemon -f -o "create,config=$cfg" "$d" "$MNT"
	assert_failure
	refute [ "$status" -eq 124 ]
	assert_output --partial 'no_such_key'
	assert [ ! -e "$d" ]
	# given by a relative path, with a trailing slash, it is made there
	cd "$T4DX_TMP"
	DATA=new-store/ t4dx_start -o create
	run stat -c %a "$d"
	assert_output 700
	grep -q "opened $d:" "$T4DX_LOG" || fail "$(cat "$T4DX_LOG")"
	t4dx_stop
}

@test "mounting over a non-empty directory warns that its files are hidden" {
	printf 'x\n' >"$MNT/hidden"
	t4dx_start
	grep -q "warning: mountpoint $MNT is not empty" "$T4DX_LOG" ||
		fail "no warning: $(cat "$T4DX_LOG")"
	t4dx_stop
	rm "$MNT/hidden"
	t4dx_start
	run grep -c 'not empty' "$T4DX_LOG"
	assert_output 0
	t4dx_stop
}

@test "a DATA_DIR inside its own mountpoint, or the mountpoint inside DATA_DIR, is refused" {
	t4dx_run_daemon -f -o create "$MNT" "$MNT"
	assert_failure
	refute [ "$status" -eq 124 ]
	assert_output --partial 'one inside the other'
	t4dx_run_daemon -f -o create "$MNT/store" "$MNT"
	assert_failure
	assert_output --partial 'one inside the other'
	mkdir "$DATA/mnt"
	t4dx_run_daemon -f "$DATA" "$DATA/mnt"
	assert_failure
	assert_output --partial 'one inside the other'
	run t4dx_is_mounted "$MNT"
	assert_failure
	rmdir "$DATA/mnt"
}

@test "a directory holding other files and no store is not made a store without -o create" {
	local d=$T4DX_TMP/not-a-store
	mkdir -m 700 "$d"
	printf 'mine\n' >"$d/notes"
	t4dx_run_daemon -f "$d" "$MNT"
	assert_failure
	refute [ "$status" -eq 124 ]
	assert_output --partial 'is not a t4dx store'
	run ls -A "$d"
	assert_output notes
	DATA=$d t4dx_start -o create
	printf 'x\n' >"$ITEMS/x"
	t4dx_stop
	# a store now: mounts without -o create
	DATA=$d t4dx_start
	run cat "$ITEMS/x"
	assert_output x
	t4dx_stop
}

# The line of /proc/self/mountinfo for MNT.
mnt_info() {
	awk -v m="$MNT" '$5 == m' /proc/self/mountinfo
}

@test "a comma or a backslash in DATA_DIR is part of the mount's name and adds no mount option" {
	local d info src opts
	for d in "$T4DX_TMP/store,allow_other,fsname=x" \
		"$T4DX_TMP/back\\slash,ro"; do
		mkdir -m 700 "$d"
		DATA=$d t4dx_start
		info=$(mnt_info)
		[[ -n $info ]] || fail "no line in mountinfo for $MNT"
		# after " - ": type, source, the superblock's options
		src=$(awk '{ for (i = 1; i <= NF; i++) if ($i == "-") print $(i + 2) }' <<<"$info")
		# mountinfo writes a backslash as \134
		assert_equal "$src" "t4dx:${d//\\/\\134}"
		opts=$(awk '{ print $6 ","  $NF }' <<<"$info")
		[[ ,$opts, != *,allow_other,* && ,$opts, != *,ro,* ]] ||
			fail "options injected through the path: $info"
		printf 'kept\n' >"$ITEMS/x"
		t4dx_stop
		assert_file_exists "$d/MANIFEST"
		DATA=$d t4dx_start
		run cat "$ITEMS/x"
		assert_output kept
		t4dx_stop
	done
}

@test "without -f, a missing syslog socket (the log is the last copy of what no rescue file takes) is warned about at start" {
	run timeout 20 "$T4DXFS" "$DATA" "$MNT"
	assert_success
	local pid
	pid=$(t4dx_daemon_pid)
	if [[ -S /dev/log ]]; then
		refute_output --partial 'no syslog socket'
	else
		assert_output --partial 'warning: no syslog socket (/dev/log)'
	fi
	fusermount3 -u "$MNT"
	t4dx_wait_for 30 t4dx_dead "$pid" || fail "daemon $pid still running after unmount"
}

# t4dx_mounts_at DIR: how many lines of /proc/self/mountinfo mount DIR.
t4dx_mounts_at() {
	awk -v m="$1" '$5 == m' /proc/self/mountinfo | wc -l
}

@test "a second t4dxfs on a live t4dx mount is refused and the first is untouched; the same DATA_DIR elsewhere is the lock's refusal" {
	t4dx_start
	printf 'first\n' >"$ITEMS/f"
	mkdir -m 700 "$T4DX_TMP/data2"
	# another store on the same mount point: with and without -f
	local fg
	for fg in -f ''; do
		t4dx_run_daemon $fg "$T4DX_TMP/data2" "$MNT"
		assert_failure
		refute [ "$status" -eq 124 ]
		assert_output --partial "$MNT is already a t4dx mount (of $DATA)"
		assert_output --partial "fusermount3 -u $MNT"
		refute_output --partial 'in use by process'
		run t4dx_mounts_at "$MNT"
		assert_output 1
	done
	# nothing of a store was made in data2
	run find "$T4DX_TMP/data2" -mindepth 1
	assert_output ''
	# the same store on another mount point: the lock refuses it, naming
	# the holder, and says nothing of a mount
	mkdir "$T4DX_TMP/mnt2"
	t4dx_run_daemon -f "$DATA" "$T4DX_TMP/mnt2"
	assert_failure
	assert_output --partial 'in use by process'
	refute_output --partial 'already a t4dx mount'
	# the first mount still serves
	printf 'still\n' >"$ITEMS/g"
	run cat "$ITEMS/f" "$ITEMS/g"
	assert_output $'first\nstill'
	t4dx_stop
	# once unmounted, the mount point takes another store
	DATA=$T4DX_TMP/data2 t4dx_start
	run ls -A "$ITEMS"
	assert_output ''
	t4dx_stop
}

@test "-f, -h, -V inside a -o list are refused, naming them, and mount nothing" {
	local list
	# without -f on the command line: a -f taken from the list would keep
	# the daemon in the foreground until the timeout
	for list in 'ro,-f' '-f' 'ro,-h' '--help' '-V,ro' '--version' 'ro,\-f' \
		'\055f'; do
		t4dx_run_daemon -o "$list" "$DATA" "$MNT"
		assert_failure
		refute [ "$status" -eq 124 ]
		assert_output --partial 'is not a mount option'
		refute_output --partial 'usage:'
		refute_output --partial 't4dxfs 0'
		run t4dx_is_mounted "$MNT"
		assert_failure
	done
	# nothing was opened
	run find "$DATA" -mindepth 1
	assert_output ''
	# on their own they still work
	run timeout 10 "$T4DXFS" -V
	assert_success
	assert_output --regexp '^t4dxfs '
}

@test "an empty element of a -o list is refused with a message that says so" {
	local list
	for list in 'ro,,allow_other' 'ro,' ',ro' ''; do
		t4dx_run_daemon -f -o "$list" "$DATA" "$MNT"
		assert_failure
		refute [ "$status" -eq 124 ]
		assert_output --partial 'an empty option'
		run t4dx_is_mounted "$MNT"
		assert_failure
	done
	# a comma escaped in a value is no separator
	local cfg=$T4DX_TMP/a,b.json
	printf '{}\n' >"$cfg"
	t4dx_start -o "config=${cfg//,/\\,}"
	t4dx_stop
}

@test "fsname= and subtype= are t4dxfs's own: a user's is refused, naming it" {
	local opt
	for opt in fsname=mine subtype=other 'ro,fsname=t4dx:/elsewhere'; do
		t4dx_run_daemon -f -o "$opt" "$DATA" "$MNT"
		assert_failure
		refute [ "$status" -eq 124 ]
		assert_output --regexp '-o (fsname|subtype) is not yours to set'
		run t4dx_is_mounted "$MNT"
		assert_failure
	done
}

@test "max_read= is refused before the mount, not answered by a mount that dies after start-up said ready" {
	local opt
	for opt in max_read=4096 'ro,max_read=65536'; do
		t4dx_run_daemon -f -o "$opt" "$DATA" "$MNT"
		assert_failure
		refute [ "$status" -eq 124 ]
		assert_output --partial '-o max_read is not supported'
		run t4dx_is_mounted "$MNT"
		assert_failure
	done
}

@test "config= given twice: the last counts, and the first string is freed" {
	local a b
	a=$(t4dx_config_file '{"breaker":{"failure_threshold":3}}')
	b=$(t4dx_config_file '{"breaker":{"failure_threshold":7}}')
	t4dx_start -o "config=$a" -o "config=$b"
	run jq -e '.breaker.failure_threshold == 7' "$MNT/.ctl/config"
	assert_success
	t4dx_stop
	# a leak checker sees the first string (a start that stops early, at
	# a missing DATA_DIR): LeakSanitizer in a sanitizer build, else
	# valgrind if installed
	local -a run_it=()
	if ! ldd "$T4DXFS" | grep -q libasan; then
		command -v valgrind >/dev/null ||
			skip "no leak checker (valgrind, or a sanitizer build)"
		run_it=(valgrind -q --leak-check=full --errors-for-leak-kinds=definite
			--error-exitcode=99)
	fi
	run timeout 120 "${run_it[@]}" "$T4DXFS" -f -o "config=$a" -o "config=$b" \
		-o "config=$a" "$T4DX_TMP/missing" "$MNT"
	assert_equal "$status" 1
	assert_output --partial 'does not exist'
}

@test "a start waits a moment for a LOCK holder on its way out, as after umount, longer for one that says it is closing; one that stays is refused" {
	t4dx_start
	printf 'kept\n' >"$ITEMS/k"
	t4dx_stop
	# umount returns before the daemon has closed the store: a holder
	# that lets go within a second stands for that daemon
	(
		flock -x 9
		: >"$T4DX_TMP/held"
		sleep 1
	) 9<"$DATA/LOCK" &
	local holder=$!
	t4dx_track "$holder"
	t4dx_wait_for 10 test -e "$T4DX_TMP/held" || fail "the holder never took LOCK"
	t4dx_start
	run cat "$ITEMS/k"
	assert_output kept
	t4dx_stop
	wait "$holder"
	# a daemon that has begun to close says so in LOCK, and is waited
	# for longer: its last flush or merge may take a while
	(
		flock -x 9
		truncate -s 0 "$DATA/LOCK"
		printf '%s closing\n' "$BASHPID" >&9
		: >"$T4DX_TMP/held1"
		sleep 4
	) 9<>"$DATA/LOCK" &
	holder=$!
	t4dx_track "$holder"
	t4dx_wait_for 10 test -e "$T4DX_TMP/held1" || fail "the holder never took LOCK"
	t4dx_start
	run cat "$ITEMS/k"
	assert_output kept
	t4dx_stop
	wait "$holder"
	# a holder that does not let go is refused after the wait
	(
		flock -x 9
		truncate -s 0 "$DATA/LOCK"
		printf '%s\n' "$BASHPID" >&9
		: >"$T4DX_TMP/held2"
		exec sleep 60
	) 9<>"$DATA/LOCK" &
	holder=$!
	t4dx_track "$holder"
	t4dx_wait_for 10 test -e "$T4DX_TMP/held2" || fail "the holder never took LOCK"
	t4dx_run_daemon -f "$DATA" "$MNT"
	assert_failure
	assert_output --partial 'in use by process'
	kill "$holder"
	wait "$holder" || true
}
