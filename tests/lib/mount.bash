# tests/lib/mount.bash - shared helpers for the bats suites that mount a real
# t4dxfs.  Load it from a suite with:
#
#     load ../lib/mount
#
# Every test gets a private directory (mktemp -d) holding data/ (DATA_DIR),
# mnt/ (the mount point) and the daemon logs.  The teardown defined here runs
# whatever happens to the test (bats calls it from its EXIT trap, and a TERM
# or HUP is turned into an exit so that trap runs): it unmounts everything
# under the private directory, kills every process this test started that is
# still alive, and only then removes the directory.  A test never leaves a
# mount or a daemon behind.
#
# Variables set by t4dx_setup (read them, do not assign them):
#   T4DX_TMP   the private directory        DATA   DATA_DIR ($T4DX_TMP/data)
#   MNT        the mount point               ITEMS  $MNT/items
#   T4DXFS     the daemon binary             T4DX   the t4dx command-line tool
# Set by t4dx_start:
#   T4DX_PID   pid of the foreground daemon  T4DX_LOG  its stdout+stderr
#
# Waiting is always for a condition with a deadline (t4dx_wait_for), never a
# bare sleep.  Background processes close fd 3 (bats waits for fd 3 to close
# before it reports a test) and are registered with t4dx_track so that the
# teardown can kill them.

load /usr/lib/bats/bats-support/load
load /usr/lib/bats/bats-assert/load
load /usr/lib/bats/bats-file/load

: "${T4DX_BUILDDIR:=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)}"
: "${T4DX_SRCDIR:=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)}"
T4DXFS=$T4DX_BUILDDIR/fs/t4dxfs
T4DX=$T4DX_BUILDDIR/tools/t4dx

# Seconds allowed for a mount to become ready, and for a daemon to exit
# after its unmount (which flushes the memtable to a segment).
: "${T4DX_MOUNT_TIMEOUT:=15}"
: "${T4DX_EXIT_TIMEOUT:=60}"

# ---- small utilities ---------------------------------------------------

# Microseconds since the epoch, without a fork.
_t4dx_now_us() {
	local t=${EPOCHREALTIME//[!0-9]/}
	printf '%s\n' "$((10#$t))"
}

# t4dx_wait_for SECONDS CMD [ARG...]
# Run CMD until it succeeds, at most SECONDS (an integer) long.  Returns 0 as
# soon as CMD succeeds, 1 if the deadline passes first.
t4dx_wait_for() {
	local secs=$1
	shift
	local deadline=$(($(_t4dx_now_us) + secs * 1000000))
	until "$@"; do
		if (($(_t4dx_now_us) >= deadline)); then
			return 1
		fi
		sleep 0.02
	done
	return 0
}

# True while pid exists and is not a zombie.  (kill -0 succeeds on a zombie,
# and a child of this shell stays a zombie until it is waited for.)
t4dx_alive() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ ${stat:0:1} != Z ]]
}

t4dx_dead() {
	! t4dx_alive "$1"
}

# Remember a pid (a daemon, a background writer) so that the teardown kills
# it if the test leaves it running.
t4dx_track() {
	T4DX_PIDS+=("$@")
}

# The mount points listed in /proc/mounts at or below DIR, deepest first.
# /proc/mounts escapes space, tab, newline and backslash as \ooo.
_t4dx_mounts_under() {
	local dir=$1 dev mp rest
	while read -r dev mp rest; do
		mp=$(printf '%b' "$mp")
		if [[ $mp == "$dir" || $mp == "$dir"/* ]]; then
			printf '%s\n' "$mp"
		fi
	done </proc/mounts | sort -r
}

# t4dx_is_mounted DIR: DIR is a mount point in /proc/mounts (no FUSE call).
t4dx_is_mounted() {
	local dir=$1 dev mp rest
	while read -r dev mp rest; do
		[[ $(printf '%b' "$mp") == "$dir" ]] && return 0
	done </proc/mounts
	return 1
}

# Pids of the processes whose command line mentions STRING (our private
# directory, so only processes this test started), except this shell.
_t4dx_pids_mentioning() {
	local s=$1 p cmd
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		[[ $p == "$$" || $p == "$BASHPID" ]] && continue
		cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") || continue
		[[ $cmd == *"$s"* ]] && printf '%s\n' "$p"
	done
	return 0
}

# t4dx_daemon_pid [DATA_DIR]: pid of the live t4dxfs serving DATA_DIR (for a
# daemon started without -f, which forks away).  Prints nothing if none.
t4dx_daemon_pid() {
	local data=${1:-$DATA} p cmd
	for p in $(_t4dx_pids_mentioning "$data"); do
		cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") || continue
		if [[ $cmd == *t4dxfs* ]] && t4dx_alive "$p"; then
			printf '%s\n' "$p"
		fi
	done
}

# Print the daemon logs of this test (for failure messages): whole if
# short, else the first 120 lines (where a sanitizer report starts) and the
# last 30.
t4dx_logs() {
	local f n
	for f in "$T4DX_TMP"/t4dxfs.*.log; do
		[[ -e $f ]] || continue
		printf -- '--- %s\n' "${f##*/}"
		n=$(wc -l <"$f")
		if ((n <= 150)); then
			cat "$f"
		else
			head -n 120 "$f"
			printf -- '--- [%d lines cut]\n' "$((n - 150))"
			tail -n 30 "$f"
		fi
	done
}

# ---- setup, start, stop -----------------------------------------------

# t4dx_setup: skip without FUSE, make the private directory.  Call it from
# setup().
t4dx_setup() {
	[[ -c /dev/fuse ]] || skip "/dev/fuse is missing"
	command -v fusermount3 >/dev/null || skip "fusermount3 is missing"
	[[ -x $T4DXFS ]] || fail "t4dxfs not found at $T4DXFS (set T4DX_BUILDDIR)"

	t4dx_sweep_orphans "${TMPDIR:-/tmp}"
	T4DX_TMP=$(mktemp -d "${TMPDIR:-/tmp}/t4dx-test.XXXXXXXX")
	T4DX_TMP=$(cd "$T4DX_TMP" && pwd -P)
	# the test's shell owns the directory (see t4dx_sweep_orphans)
	echo "$BASHPID" >"$T4DX_TMP/owner"
	DATA=$T4DX_TMP/data
	MNT=$T4DX_TMP/mnt
	ITEMS=$MNT/items
	T4DX_PIDS=()
	T4DX_PID=
	T4DX_LOG=
	T4DX_NSTART=0
	mkdir -m 700 "$DATA"
	mkdir "$MNT"
	# A TERM or HUP (make check interrupted, CI timeout) exits the test shell
	# so that bats' EXIT trap runs the teardown.
	trap 'exit 143' TERM
	trap 'exit 129' HUP
}

# t4dx_start [t4dxfs option...]
# Start `t4dxfs -f [option...] $DATA $MNT` in the background (SIGINT at its
# default, as in a terminal), output to a new log file, and wait until the
# mount is ready: listed in /proc/mounts and items/ visible.  Fails with the
# log if the daemon exits first or the deadline passes.
t4dx_start() {
	if t4dx_is_mounted "$MNT"; then
		fail "t4dx_start: $MNT is still mounted"
		return 1
	fi
	T4DX_NSTART=$((T4DX_NSTART + 1))
	T4DX_LOG=$T4DX_TMP/t4dxfs.$T4DX_NSTART.log
	# TMPDIR: where rescue files go by default (not the shared /var/tmp);
	# T4DX_START_TMPDIR, if set, instead of T4DX_TMP
	env --default-signal=INT TMPDIR="${T4DX_START_TMPDIR:-$T4DX_TMP}" \
		"$T4DXFS" -f "$@" "$DATA" "$MNT" \
		</dev/null >"$T4DX_LOG" 2>&1 3>&- &
	T4DX_PID=$!
	t4dx_track "$T4DX_PID"

	local deadline=$(($(_t4dx_now_us) + T4DX_MOUNT_TIMEOUT * 1000000)) rc=0
	while :; do
		if t4dx_is_mounted "$MNT" && [[ -d $ITEMS ]]; then
			return 0
		fi
		if t4dx_dead "$T4DX_PID"; then
			wait "$T4DX_PID" || rc=$?
			fail "t4dxfs exited with status $rc before the mount was ready
$(cat "$T4DX_LOG")"
			return 1
		fi
		if (($(_t4dx_now_us) >= deadline)); then
			fail "t4dxfs (pid $T4DX_PID) not mounted after ${T4DX_MOUNT_TIMEOUT}s
$(cat "$T4DX_LOG")"
			return 1
		fi
		sleep 0.02
	done
}

# _t4dx_reap PID: wait (bounded) until PID has exited and collect its
# status into T4DX_STATUS.  Returns 1 on timeout.
_t4dx_reap() {
	local pid=$1
	T4DX_STATUS=
	t4dx_wait_for "$T4DX_EXIT_TIMEOUT" t4dx_dead "$pid" || return 1
	T4DX_STATUS=0
	wait "$pid" 2>/dev/null || T4DX_STATUS=$?
	return 0
}

# t4dx_stop: unmount with fusermount3 -u (retrying a few seconds while the
# mount is busy), wait for the daemon to exit and assert it exited 0.
t4dx_stop() {
	local pid=${T4DX_PID:?t4dx_stop: no daemon started}
	if ! t4dx_wait_for 10 fusermount3 -u "$MNT" 2>/dev/null; then
		fail "fusermount3 -u $MNT kept failing: $(fusermount3 -u "$MNT" 2>&1)"
		return 1
	fi
	if ! _t4dx_reap "$pid"; then
		fail "t4dxfs (pid $pid) still running ${T4DX_EXIT_TIMEOUT}s after unmount
$(cat "$T4DX_LOG")"
		return 1
	fi
	T4DX_PID=
	if [[ $T4DX_STATUS != 0 ]]; then
		fail "t4dxfs exited with status $T4DX_STATUS after unmount
$(cat "$T4DX_LOG")"
		return 1
	fi
	if t4dx_is_mounted "$MNT"; then
		fail "$MNT still mounted after t4dxfs exited"
		return 1
	fi
}

# t4dx_remount [t4dxfs option...]: t4dx_stop, then t4dx_start.
t4dx_remount() {
	t4dx_stop && t4dx_start "$@"
}

# t4dx_kill9 [--keep-mount]: SIGKILL the daemon, reap it, and lazily
# unmount the dead mount ("Transport endpoint is not connected") so the next
# start can use it; with --keep-mount leave the dead mount in place.
t4dx_kill9() {
	local pid=${T4DX_PID:?t4dx_kill9: no daemon started}
	kill -KILL "$pid" 2>/dev/null || true
	# A blocking wait right away (SIGKILL cannot be ignored): had the shell
	# reaped the child on its own, it would print a "Killed" job notice.
	T4DX_STATUS=0
	{ wait "$pid"; } 2>/dev/null || T4DX_STATUS=$?
	T4DX_PID=
	if [[ ${1:-} != --keep-mount ]] && t4dx_is_mounted "$MNT"; then
		fusermount3 -u -z "$MNT"
	fi
}

# t4dx_wait_children SECONDS PID...: wait (bounded) for background children
# of this shell, e.g. writer loops.  Returns 1 if one is still running at
# the deadline or one exited non-zero; T4DX_FAILED lists "pid:status" of
# those that did not exit 0.
_t4dx_all_dead() {
	local p
	for p in "$@"; do t4dx_alive "$p" && return 1; done
	return 0
}

t4dx_wait_children() {
	local secs=$1 pid st
	shift
	T4DX_FAILED=()
	if ! t4dx_wait_for "$secs" _t4dx_all_dead "$@"; then
		T4DX_FAILED=(timeout)
		return 1
	fi
	for pid in "$@"; do
		st=0
		wait "$pid" 2>/dev/null || st=$?
		[[ $st == 0 ]] || T4DX_FAILED+=("$pid:$st")
	done
	((${#T4DX_FAILED[@]} == 0))
}

# t4dx_run_daemon ARG...: run `t4dxfs ARG...` (normally without -f) like
# bats' run, setting status and output, but with output to a file rather
# than a pipe, so that a daemon that forks away and keeps the caller's
# stdout open cannot hang the test; bounded by timeout (status 124).
t4dx_run_daemon() {
	local out=$T4DX_TMP/run-daemon.out
	status=0
	timeout 30 "$T4DXFS" "$@" </dev/null >"$out" 2>&1 3>&- || status=$?
	output=$(cat "$out")
	mapfile -t lines <"$out"
	printf '%s\n' "$output"
}

# ---- teardown ----------------------------------------------------------

_t4dx_unmount_all() {
	local m
	while read -r m; do
		[[ -n $m ]] || continue
		timeout 10 fusermount3 -u "$m" 2>/dev/null ||
			fusermount3 -u -z "$m" 2>/dev/null ||
			umount -l "$m" 2>/dev/null || true
	done < <(_t4dx_mounts_under "$T4DX_TMP")
}

# t4dx_sweep_orphans DIR: a test whose shell was killed outright (SIGKILL:
# no trap runs) leaves its T4DX_TMP behind, with its mounts (FUSE, a
# tmpfs DATA_DIR) and maybe its daemon.  The next setup cleans up every
# DIR/t4dx-test.* whose owner (the pid t4dx_setup wrote) is gone: unmount
# what is mounted below it, end the processes that name it, remove it.
# A directory of a live test, or without an owner file, is left alone.
t4dx_sweep_orphans() {
	local d owner pid T4DX_TMP
	for d in "$1"/t4dx-test.*; do
		# Another test's sweep may remove DIR at any moment.  A failed
		# redirection must stay in an if: bats fails the test on one inside
		# $(<FILE) even after `|| continue`.
		if ! read -r owner 2>/dev/null <"$d/owner"; then
			continue
		fi
		[[ $owner =~ ^[0-9]+$ ]] || continue
		kill -0 "$owner" 2>/dev/null && continue
		T4DX_TMP=$(cd "$d" && pwd -P) || continue
		for pid in $(_t4dx_pids_mentioning "$T4DX_TMP"); do
			kill -KILL "$pid" 2>/dev/null || true
		done
		_t4dx_unmount_all
		if [[ -z $(_t4dx_mounts_under "$T4DX_TMP") ]]; then
			rm -rf "$T4DX_TMP" 2>/dev/null || true
		fi
	done
	return 0
}

# t4dx_teardown: unmount, kill and remove whatever this test left.  Safe to
# call more than once, and when t4dx_setup skipped or failed.
t4dx_teardown() {
	[[ -n ${T4DX_TMP:-} && -d $T4DX_TMP ]] || return 0
	cd / || true
	if [[ -z ${BATS_TEST_COMPLETED:-} ]]; then
		# the test failed: show what the daemon said
		t4dx_logs || true
	fi
	_t4dx_unmount_all

	local pid pids
	pids=$(printf '%s\n' "${T4DX_PIDS[@]}" $(_t4dx_pids_mentioning "$T4DX_TMP") |
		sort -u)
	for pid in $pids; do
		t4dx_alive "$pid" && kill -TERM "$pid" 2>/dev/null
	done
	for pid in $pids; do
		if ! t4dx_wait_for 5 t4dx_dead "$pid"; then
			kill -KILL "$pid" 2>/dev/null
			t4dx_wait_for 5 t4dx_dead "$pid" || true
		fi
	done
	# reap our own children quietly (not-our-children make wait fail)
	for pid in $pids; do
		wait "$pid" 2>/dev/null || true
	done
	# a daemon killed above leaves a dead mount behind
	_t4dx_unmount_all

	if [[ -n $(_t4dx_mounts_under "$T4DX_TMP") ]]; then
		echo "t4dx_teardown: still mounted, keeping $T4DX_TMP:" >&2
		_t4dx_mounts_under "$T4DX_TMP" >&2
		return 1
	fi
	rm -rf "$T4DX_TMP"
	T4DX_TMP=
	trap - TERM HUP
	return 0
}

setup() {
	t4dx_setup
}

teardown() {
	t4dx_teardown
}

# ---- reading the mount and the data directory --------------------------

# t4dx_stat_field FIELD: print FIELD of MNT/.ctl/stats (jq path, e.g. items).
t4dx_stat_field() {
	jq -er ".$1" "$MNT/.ctl/stats"
}

# t4dx_wal_dump [DATA_DIR]: `t4dx wal-dump`, one JSON record a line.
t4dx_wal_dump() {
	"$T4DX" wal-dump "${1:-$DATA}"
}

# The last (newest) WAL file of DATA_DIR.
t4dx_last_wal() {
	local f last=
	for f in "${1:-$DATA}"/wal/*.jsonl; do
		[[ -e $f ]] && last=$f
	done
	[[ -n $last ]] || return 1
	printf '%s\n' "$last"
}

# t4dx_content NAME: the deterministic content the suites write for NAME
# (so that a checksum of many files can be recomputed without keeping them).
t4dx_content() {
	printf 'memory %s: the quick brown fox jumps over the lazy dog\n' "$1"
}

# t4dx_assert_same_bytes FILE1 FILE2: cmp, with a readable failure.
t4dx_assert_same_bytes() {
	local out
	if ! out=$(cmp -- "$1" "$2" 2>&1); then
		fail "contents differ: $out"
		return 1
	fi
}

# ---- control files (MNT/.ctl) and compaction ----------------------------

# t4dx_ctl_get NAME FILTER: print jq FILTER (raw) of the JSON in
# MNT/.ctl/NAME.  Fails if the file cannot be read or is not JSON.
t4dx_ctl_get() {
	jq -r "$2" "$MNT/.ctl/$1"
}

# t4dx_ctl_echo NAME WORD: `echo WORD > MNT/.ctl/NAME`, as a user types it
# (one write of "WORD\n"); the shell's message on failure, e.g. "echo: write
# error: Invalid argument".  Use with run.
t4dx_ctl_echo() {
	echo "$2" >"$MNT/.ctl/$1"
}

# t4dx_ctl_write_file NAME FILE: write the bytes of FILE to MNT/.ctl/NAME
# in one write(2) (cat's buffer is far larger than any payload here; bash's
# own printf may split at newlines).  Use with run.
t4dx_ctl_write_file() {
	cat -- "$2" >"$MNT/.ctl/$1"
}

# t4dx_ends_with_newline FILE: FILE is not empty and its last byte is '\n'.
t4dx_ends_with_newline() {
	[[ $(tail -c 1 -- "$1" | od -An -tx1 | tr -d ' ') == 0a ]]
}

# t4dx_xattr NAME FILE: print the value of user.t4dx.NAME of FILE.
t4dx_xattr() {
	getfattr --absolute-names --only-values -n "user.t4dx.$1" -- "$2"
}

# t4dx_num_eq GOT WANT [TOLERANCE]: GOT is a plain decimal number within
# TOLERANCE (default 1e-9) of WANT.  Prints why not and returns 1.
t4dx_num_eq() {
	if ! [[ $1 =~ ^[+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?$ ]]; then
		echo "'$1' is not a plain number (expected $2)"
		return 1
	fi
	if ! awk -v a="$1" -v b="$2" -v t="${3:-1e-9}" \
		'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t + 0) }'; then
		echo "got $1, expected $2"
		return 1
	fi
}

# t4dx_config_file JSON: write JSON to a new file in T4DX_TMP and print
# its path (for -o config=PATH).
t4dx_config_file() {
	local f
	f=$(mktemp "$T4DX_TMP/config.XXXXXX.json")
	printf '%s\n' "$1" >"$f"
	printf '%s\n' "$f"
}

# t4dx_manifest_seg_ids [DATA_DIR]: the ids of the live segments listed in
# MANIFEST, one a line (nothing if there is no MANIFEST yet).
t4dx_manifest_seg_ids() {
	local m=${1:-$DATA}/MANIFEST
	[[ -e $m ]] || return 0
	jq -r '.segments[].id' "$m"
}

# t4dx_unlisted_segments [DATA_DIR]: print the seg/*.t4s files whose id the
# MANIFEST does not list (a flush or compaction not installed yet); true
# if there is one.
t4dx_unlisted_segments() {
	local data=${1:-$DATA} f base id found=1
	local -A live=()
	for id in $(t4dx_manifest_seg_ids "$data"); do live[$id]=1; done
	for f in "$data"/seg/*.t4s; do
		[[ -e $f ]] || continue
		base=${f##*/}
		[[ $base =~ ^[0-9]{20}\.t4s$ ]] || continue
		id=$((10#${base%.t4s}))
		if [[ -z ${live[$id]:-} ]]; then
			printf '%s\n' "$f"
			found=0
		fi
	done
	return $found
}

# t4dx_tree_state [DIR]: one line per entry below DIR (default ITEMS),
# sorted: type, path, and for files the sha256 of the content and the
# kappa and importance attributes.  Two states compare with assert_equal.
t4dx_tree_state() {
	local dir=${1:-$ITEMS} p sum k i
	(
		cd "$dir" || exit 1
		find . -mindepth 1 -type d -printf 'd %p\n'
		find . -mindepth 1 -type f -printf '%p\0' |
			while IFS= read -r -d '' p; do
				sum=$(sha256sum <"$p") || exit 1
				k=$(t4dx_xattr kappa "$p") || exit 1
				i=$(t4dx_xattr importance "$p") || exit 1
				printf 'f %s %s kappa=%s importance=%s\n' \
					"$p" "${sum%% *}" "$k" "$i"
			done
	) | LC_ALL=C sort
	return "${PIPESTATUS[0]}"
}

# ---- conditions on the control files -----------------------------------

# t4dx_ctl_test NAME FILTER: jq -e FILTER on MNT/.ctl/NAME is true (quiet;
# false also when the file cannot be read).  For t4dx_wait_for.
t4dx_ctl_test() {
	jq -e "$2" "$MNT/.ctl/$1" >/dev/null 2>&1
}

# t4dx_feed_until N CMD...: until CMD succeeds, write fresh notes into
# items/ (feed1, feed2, ... at most N), each once the last was embedded:
# a content the command program always fails on is given up only while
# the program answers others between its tries.  Then CMD within 30 s.
t4dx_feed_until() {
	local n=$1 i e
	shift
	for ((i = 1; i <= n; i++)); do
		"$@" && return 0
		e=$(jq '.vectors.embedded' "$MNT/.ctl/stats")
		printf 'a fresh note %s\n' "$i" >"$ITEMS/feed$i"
		t4dx_wait_ctl 30 stats ".vectors.embedded > $e" || return 1
	done
	t4dx_wait_for 30 "$@"
}

# t4dx_wait_ctl SECONDS NAME FILTER: wait until t4dx_ctl_test NAME FILTER
# holds; on timeout fail, showing the file.
t4dx_wait_ctl() {
	if ! t4dx_wait_for "$1" t4dx_ctl_test "$2" "$3"; then
		fail "after $1 s, .ctl/$2 still not $3: $(cat "$MNT/.ctl/$2" 2>&1)"
		return 1
	fi
}

# t4dx_recovered: the store is back to normal by itself: breaker CLOSED,
# level 0, mode normal, nothing unpersisted.
t4dx_recovered() {
	t4dx_ctl_test breaker '.state == "CLOSED"' &&
		t4dx_ctl_test health '.level == 0 and .mode == "normal" and .unpersisted == 0'
}

# t4dx_wait_recovered SECONDS: wait for t4dx_recovered; fail showing
# breaker and health if it does not happen in time.
t4dx_wait_recovered() {
	if ! t4dx_wait_for "$1" t4dx_recovered; then
		fail "not recovered after $1 s: breaker $(cat "$MNT/.ctl/breaker" 2>&1) health $(cat "$MNT/.ctl/health" 2>&1)"
		return 1
	fi
}

# t4dx_data_ops_since LSN: the op of every data record (not health
# probes) in the WAL with an lsn above LSN, one a line.  The records that
# move the times of items/ itself (one follows each create, unlink and
# rename in it) and the embedder's vectors and marks of content without
# one (logged in the background after a close) are left out: they are not
# the records a test counts.
t4dx_data_ops_since() {
	# (stderr: a live WAL may end in a write in progress, which wal-dump
	# notes as a torn end; the records before it are what counts)
	t4dx_wal_dump 2>/dev/null | jq -r --argjson lsn "$1" \
		'select(.lsn > $lsn and (.op as $o |
			["put","delete","rename","mkdir","rmdir","update_fields"] |
			index([$o])) and
			(.op != "update_fields" or
			 (.parent != 0 and .vec_src != "embed" and
			  .vec_src != "tried"))) | .op'
}

# ---- acknowledged writes ------------------------------------------------
#
# A fault test keeps REF, a directory holding what the store acknowledged:
# t4dx_ack_put copies a file into items/ with cp (which reports a failed
# close(), unlike a shell redirection) and, only if cp exits 0, keeps the
# same bytes as REF/NAME.  t4dx_assert_acked compares the store with REF.

# t4dx_ack_put REF NAME [CONTENT]: write CONTENT (default: t4dx_content
# NAME) to ITEMS/NAME.  Returns cp's status; cp's message is in T4DX_ACK_ERR.
t4dx_ack_put() {
	local ref=$1 name=$2 src
	src=$T4DX_TMP/ack-src
	if (($# > 2)); then
		printf '%s' "$3" >"$src"
	else
		t4dx_content "$name" >"$src"
	fi
	T4DX_ACK_ERR=
	if ! T4DX_ACK_ERR=$(cp -- "$src" "$ITEMS/$name" 2>&1); then
		return 1
	fi
	mkdir -p -- "$(dirname -- "$ref/$name")"
	cp -- "$src" "$ref/$name"
}

# t4dx_assert_acked REF [DIR [MAYBE]]: every file below REF is in DIR
# (default ITEMS) with the same bytes, and DIR holds no other file except
# those named (relative path, one a line) in file MAYBE (writes that failed
# and so may or may not have happened).  Fails listing the first problems.
t4dx_assert_acked() {
	local ref=$1 dir=${2:-$ITEMS} maybe=${3:-/dev/null} p probs=() n=0
	while IFS= read -r -d '' p; do
		n=$((n + 1))
		if [[ ! -f $dir/$p ]]; then
			probs+=("acknowledged but missing: $p")
		elif ! cmp -s -- "$ref/$p" "$dir/$p"; then
			probs+=("acknowledged but different: $p: $(head -c 80 -- "$dir/$p" | od -An -c | head -n 2)")
		fi
	done < <(cd "$ref" && find . -type f -printf '%P\0')
	while IFS= read -r -d '' p; do
		[[ -e $ref/$p ]] && continue
		grep -qxF -- "$p" "$maybe" && continue
		probs+=("never acknowledged but present: $p")
	done < <(cd "$dir" && find . -type f -printf '%P\0')
	if ((${#probs[@]} > 0)); then
		fail "$((${#probs[@]})) problems with $n acknowledged files in $dir:
$(printf '%s\n' "${probs[@]}" | head -n 12)"
		return 1
	fi
}

# t4dx_assert_refused_empty MAYBE [DIR]: each name listed in file MAYBE
# (writes whose cp failed) is absent from DIR (default ITEMS) or empty: a
# refused write never shows its content (its open(O_CREAT) may have made
# the file).
t4dx_assert_refused_empty() {
	local maybe=$1 dir=${2:-$ITEMS} p probs=()
	while IFS= read -r p; do
		[[ -n $p ]] || continue
		if [[ -e $dir/$p && -s $dir/$p ]]; then
			probs+=("$p: $(head -c 60 -- "$dir/$p" | od -An -c | head -n 1)")
		fi
	done <"$maybe"
	if ((${#probs[@]} > 0)); then
		fail "refused writes that show content in $dir:
$(printf '  %s\n' "${probs[@]}" | head -n 12)"
		return 1
	fi
}

# ---- faults: a small tmpfs as DATA_DIR, libfiu ---------------------------

# t4dx_mount_tmpfs DIR SIZE: mount a tmpfs of SIZE bytes (8m, say) on DIR,
# which must be inside T4DX_TMP (skip if not root).  Suites that use it
# call t4dx_teardown_faults from their teardown, which unmounts it after
# the FUSE mount and the daemon are gone.
t4dx_mount_tmpfs() {
	[[ $EUID == 0 ]] || skip "mounting a tmpfs needs root"
	[[ $1 == "$T4DX_TMP"/* ]] || fail "t4dx_mount_tmpfs: $1 is not inside $T4DX_TMP"
	mount -t tmpfs -o "size=$2,mode=0700" tmpfs "$1" ||
		fail "cannot mount a tmpfs on $1"
	T4DX_TMPFS+=("$1")
}

# t4dx_fill DIR: fill the file system of DIR with DIR/ballast (64 KiB
# writes until one fails with ENOSPC); fails if it did not fill up.
t4dx_fill() {
	local out
	out=$(dd if=/dev/zero of="$1/ballast" bs=64k 2>&1) &&
		fail "t4dx_fill: dd to $1/ballast did not fail: $out"
	[[ $out == *"No space left on device"* ]] ||
		fail "t4dx_fill: dd to $1/ballast: $out"
	local avail
	avail=$(df --output=avail "$1" | tail -n 1)
	[[ $avail =~ ^\ *[0-9]+$ ]] || fail "t4dx_fill: df says '$avail'"
	((avail == 0)) || fail "t4dx_fill: $1 still has $avail KiB free"
}

# t4dx_teardown_faults: the teardown of the fault suites.  Unmount MNT
# first and let the daemon exit (bounded; then TERM, KILL) while its
# DATA_DIR is still mounted; then unmount every tmpfs of the test; then
# t4dx_teardown.
t4dx_teardown_faults() {
	[[ -n ${T4DX_TMP:-} && -d $T4DX_TMP ]] || return 0
	local pid d
	if t4dx_is_mounted "$MNT"; then
		timeout 10 fusermount3 -u "$MNT" 2>/dev/null ||
			fusermount3 -u -z "$MNT" 2>/dev/null || true
	fi
	for pid in "${T4DX_PIDS[@]}"; do
		t4dx_wait_for 20 t4dx_dead "$pid" && continue
		kill -TERM "$pid" 2>/dev/null
		t4dx_wait_for 5 t4dx_dead "$pid" && continue
		kill -KILL "$pid" 2>/dev/null
		t4dx_wait_for 5 t4dx_dead "$pid" || true
	done
	for d in "${T4DX_TMPFS[@]}"; do
		t4dx_is_mounted "$d" || continue
		umount "$d" 2>/dev/null || umount -l "$d" || true
	done
	T4DX_TMPFS=()
	t4dx_teardown
}

# t4dx_start_slowsync FLAG [t4dxfs option...]: t4dx_start with
# tests/slowsync.so preloaded: while FLAG exists, each fdatasync of the
# daemon takes T4DX_SLOWSYNC_MS (default 1000) and marks FLAG.started and
# FLAG.ended (see tests/slowsync.c).
t4dx_start_slowsync() {
	local flag=$1 so=$T4DX_BUILDDIR/tests/slowsync.so pre asan
	shift
	[[ -e $so ]] || skip "tests/slowsync.so is not built"
	pre=$so
	# a sanitizer's runtime must come first in a preload list
	asan=$(ldd "$T4DXFS" 2>/dev/null | awk '/libasan/ { print $3 }')
	[[ -z $asan ]] || pre="$asan $so"
	LD_PRELOAD=$pre T4DX_SLOWSYNC=$flag t4dx_start "$@"
}

# t4dx_have_fiu: fiu-run, fiu-ctrl and the POSIX preload library exist.
t4dx_have_fiu() {
	command -v fiu-run >/dev/null && command -v fiu-ctrl >/dev/null &&
		[[ -e /usr/lib/fiu/fiu_posix_preload.so || -e /usr/local/lib/fiu/fiu_posix_preload.so ]]
}

# t4dx_start_fiu [t4dxfs option...]: t4dx_start with the daemon under
# `fiu-run -x` (libfiu's POSIX preload), controlled through FIFOs in
# T4DX_TMP.  T4DX_PID is the daemon itself (fiu-run execs it).
t4dx_start_fiu() {
	# libfiu's preloaded library and AddressSanitizer's runtime cannot
	# share a process (the daemon crashes at start)
	if ldd "$T4DXFS" 2>/dev/null | grep -q libasan; then
		skip "libfiu's preload cannot run in a sanitizer build"
	fi
	local wrap=$T4DX_TMP/t4dxfs-fiu
	cat >"$wrap" <<WRAP
#!/bin/sh
exec fiu-run -x -f "$T4DX_TMP/fiu" "$T4DXFS" "\$@"
WRAP
	chmod +x "$wrap"
	local T4DXFS=$wrap
	t4dx_start "$@"
}

# t4dx_fiu COMMAND...: send libfiu remote-control commands to the daemon
# started by t4dx_start_fiu, e.g. 'enable name=posix/io/sync/*,failinfo=5'
# (failinfo is the errno; without it libfiu picks a random one).  Fails if
# the daemon does not answer in 10 s or refuses a command.
t4dx_fiu() {
	local c args=() out
	for c in "$@"; do args+=(-c "$c"); done
	if ! out=$(timeout 10 fiu-ctrl -f "$T4DX_TMP/fiu" "${args[@]}" "$T4DX_PID" 2>&1) ||
		[[ -n $out ]]; then
		fail "fiu-ctrl $* to pid $T4DX_PID failed: $out"
		return 1
	fi
}

# The configuration when no config file is given (DESIGN.md section 8).
T4DX_DEFAULT_CONFIG='{"breaker":{"failure_threshold":5,"success_threshold":2,"reset_timeout_s":60},
 "wal":{"max_file_bytes":67108864,"archive_max_bytes":268435456,"checkpoint_bytes":67108864,"commit_interval_ms":10},
 "memtable":{"max_bytes":67108864,"max_items":10000},
 "fallback":{"max_items":1000,"cache_bytes":67108864,"max_queue":10000,"max_queue_bytes":67108864,"drain_batch":100,"policy":"queue","rescue_dir":"","rescue_fallback":true},
 "health":{"interval_s":30,"timeout_s":5,"alert_threshold":3,"verify_bytes":8388608,"verify_at_start":false},
 "compaction":{"nrem_kappa_boost":0.05,"prune_min_kappa":0.05,"prune_max_importance":0.1,"prune_max_age_s":0},
 "limits":{"max_item_bytes":16777216,"write_buffer_bytes":268435456},
 "vector":{"dim":256,"embedder":"builtin","command":[],"timeout_s":10,"start_timeout_s":60,"defer_s":30,"index_m":32,"ef_construction":100,"ef_search":256,"index_min_items":1000,"min_recall":0.99}}'
