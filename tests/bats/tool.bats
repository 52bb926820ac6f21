#!/usr/bin/env bats
# tool.bats - the t4dx command-line tool on a real mount and a real data
# directory: status and compact through MOUNT/.ctl, verify, ls and dump
# straight from DATA_DIR.  For each: its output, its exit code (0 fine, 1
# problems found, 2 usage or cannot run), its one-line errors (missing
# directory, not a store or mount, a daemon holding the lock, damaged
# files), and that the offline commands change nothing in DATA_DIR.

load ../lib/mount

bats_require_minimum_version 1.5.0

setup() {
	t4dx_setup
}

teardown() {
	t4dx_teardown
}

# data_state: every file and directory of DATA with its size, mtime and
# content hash, sorted (the LOCK's content is left out: a daemon writes
# its pid there when it starts).
data_state() {
	(
		cd "$DATA" || exit 1
		find . -printf '%y %p %s %T@\n'
		find . -type f ! -name LOCK -exec sha256sum {} +
	) | LC_ALL=C sort
}

# fill N: items/n/fI (I = 1..N) with t4dx_content, and items/n/bin, 4 KiB
# of every byte value, through the mount.
fill() {
	mkdir -p "$ITEMS/n"
	local i
	for ((i = 1; i <= $1; i++)); do
		t4dx_content "$i" >"$ITEMS/n/f$i"
	done
	for ((i = 0; i < 16; i++)); do
		printf "$(printf '\\%03o' $(seq 0 255))"
	done >"$ITEMS/n/bin"
	cp "$ITEMS/n/bin" "$T4DX_TMP/bin.orig"
}

# flip FILE OFFSET: change the byte at OFFSET (xor 0x55), whatever it is.
flip() {
	local byte
	byte=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf "\\$(printf '%03o' $((byte ^ 0x55)))" |
		dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# damaged_store N: a stopped store with fill N in one segment, SEG, with
# a byte changed inside its first block (the header is 16 bytes).
damaged_store() {
	t4dx_start
	fill "$1"
	t4dx_stop
	SEG=$(ls "$DATA"/seg/*.t4s)
	flip "$SEG" 40
}

# stopped_store_for_nobody: a stopped store of fill 1 whose test
# directory user nobody may pass through (skips when the build itself is
# out of nobody's reach); as_nobody CMD...: run CMD as nobody.
stopped_store_for_nobody() {
	t4dx_start
	fill 1
	t4dx_stop
	as_nobody "$T4DX" --version >/dev/null 2>&1 ||
		skip "the build is not reachable by user nobody"
	chmod 711 "$T4DX_TMP"
}
as_nobody() {
	setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
}

# one_line: output is a single line starting "t4dx: CMD: ".
assert_one_line_error() {
	[[ ${#lines[@]} == 1 ]] || fail "expected one line, got: $output"
	[[ ${lines[0]} == "t4dx: $1: "* ]] || fail "not a t4dx $1 error: $output"
}

# ---- usage ------------------------------------------------------------------

@test "t4dx: help lists every command; each command has --help; unknown commands and options are usage errors (2)" {
	local help c
	help=$("$T4DX" help) || fail "t4dx help failed"
	for c in status verify compact sync ls dump wal-dump; do
		grep -q "^  $c " <<<"$help" || fail "$c is not in: $help"
		run "$T4DX" "$c" --help
		assert_success
		assert_line --index 0 --partial "usage: t4dx $c"
		assert_output --partial "Exit status"
	done
	run "$T4DX" frobnicate
	assert_equal "$status" 2
	run "$T4DX" verify --frob "$DATA"
	assert_equal "$status" 2
	assert_line --index 0 "t4dx: verify: unknown option '--frob'"
	run "$T4DX" ls
	assert_equal "$status" 2
	run "$T4DX" compact "$MNT" sideways
	assert_equal "$status" 2
	assert_line --index 0 --partial "unknown kind 'sideways'"
	run "$T4DX" --version
	assert_success
	assert_output --regexp '^t4dx [0-9]'
}

# ---- status -------------------------------------------------------------------

@test "status: one screen of a healthy mount, exit 0; --json holds every control file" {
	t4dx_start
	fill 3
	# the embedder's vectors of them durable too (it logs them without
	# waiting, then waits once its queue is empty)
	t4dx_wait_ctl 30 stats '.vectors.busy == false'
	t4dx_wait_ctl 30 health '.queue_depth == 0 and .queue_vectors == 0'
	run "$T4DX" status "$MNT"
	assert_success
	assert_line --index 0 "t4dx at $MNT: ok"
	assert_line --regexp '^state +level 0 \(normal\), breaker CLOSED$'
	assert_line --regexp '^store +5 items; '
	assert_line --regexp '^queue +0 records waiting'
	assert_line --regexp '^compaction +flush '
	run "$T4DX" status --json "$MNT"
	assert_success
	jq -e --arg m "$MNT" '.mount == $m and .health.status == "ok" and
		.breaker.state == "CLOSED" and .stats.items == 5 and
		(.compact | has("nrem")) and (.alerts | type == "array")' \
		<<<"$output" >/dev/null || fail "bad --json: $output"
}

# s12: "records waiting" left out the embedder's vectors in the queue
# (health's queue_vectors).  The control files of a real mount, copied
# and given a queue that a failing disk would leave.
@test "status: the queue line shows users' records and the embedder's vectors apart" {
	t4dx_start
	fill 1
	local fake=$T4DX_TMP/fake f
	mkdir -p "$fake/.ctl"
	for f in health breaker stats compact alerts; do
		cp "$MNT/.ctl/$f" "$fake/.ctl/$f"
	done
	jq '.queue_depth = 3 | .queue_vectors = 7 | .unpersisted = 3' \
		"$MNT/.ctl/health" >"$fake/.ctl/health"
	run "$T4DX" status "$fake"
	assert_line --regexp '^queue +3 records waiting \(and 7 vectors of the embedder\), 3 changes not yet durable$'
}

@test "status: an open breaker is degraded, exit 1, and shows in the text and the JSON" {
	t4dx_start
	t4dx_ctl_echo breaker open
	run "$T4DX" status "$MNT"
	assert_equal "$status" 1
	assert_line --index 0 "t4dx at $MNT: degraded"
	assert_line --regexp '^state +level 1 \(read-only\), breaker OPEN$'
	# in the alerts block (a start warning, such as a rescue directory
	# in memory, may come first)
	assert_line --regexp '^(alerts)? +[0-9TZ:.-]+ WARN breaker CLOSED -> OPEN'
	run "$T4DX" status --json "$MNT"
	assert_equal "$status" 1
	jq -e '.health.status == "degraded" and .breaker.state == "OPEN"' \
		<<<"$output" >/dev/null || fail "bad --json: $output"
}

@test "status: a control character in a configured path reaches neither .ctl/alerts nor the terminal raw" {
	local cfg
	cfg=$(t4dx_config_file '{"fallback":{"rescue_dir":"/nonexistent/\u001b[31mred\u0007"}}')
	t4dx_start -o "config=$cfg"
	run grep -c $'\x1b' "$MNT/.ctl/alerts"
	assert_output 0
	run grep -F 'rescue files: fallback.rescue_dir /nonexistent/\x1b[31mred\x07 is not a directory' "$MNT/.ctl/alerts"
	assert_success
	# health keeps the path as it is, in JSON (escaped there)
	run jq -r '.rescue.dir' "$MNT/.ctl/health"
	assert_output $'/nonexistent/\x1b[31mred\x07'
	run "$T4DX" status "$MNT"
	[[ $output != *[$'\x01'-$'\x09'$'\x0b'-$'\x1f'$'\x7f']* ]] || fail "a control byte in: $output"
	assert_line --regexp '^rescue +/nonexistent/\\x1b\[31mred\\x07: fallback.rescue_dir /nonexistent/\\x1b\[31mred\\x07 is not a directory$'
	assert_output --partial 'rescue files: fallback.rescue_dir /nonexistent/\x1b[31mred\x07'
}

@test "status: a C1 control (CSI, U+009B) in a configured path reaches .ctl/alerts escaped, other UTF-8 as it is" {
	local cfg
	cfg=$(t4dx_config_file '{"fallback":{"rescue_dir":"/nonexistent/\u009b31mred-\u00e9t\u00e9"}}')
	t4dx_start -o "config=$cfg"
	run grep -c $'\xc2\x9b' "$MNT/.ctl/alerts"
	assert_output 0
	run grep -F 'fallback.rescue_dir /nonexistent/\xc2\x9b31mred-été is not a directory' "$MNT/.ctl/alerts"
	assert_success
}

@test "an error that echoes a path given on the command line prints its control bytes escaped" {
	t4dx_start
	t4dx_stop
	run "$T4DX" ls "$DATA" $'nope\x1b[2J'
	assert_failure
	[[ $output != *$'\x1b'* ]] || fail "ESC printed raw: $output"
	assert_output --partial 'nope\x1b[2J: no such item or directory'
}

@test "status: a directory that is not a t4dx mount, or none at all, is exit 2 with one line" {
	run "$T4DX" status "$T4DX_TMP"
	assert_equal "$status" 2
	assert_one_line_error status
	assert_output --partial "is not a t4dx mount"
	run "$T4DX" status "$T4DX_TMP/nowhere"
	assert_equal "$status" 2
	assert_one_line_error status
	assert_output --partial "No such file or directory"
}

# ---- compact ------------------------------------------------------------------

@test "compact: nrem runs through .ctl/compact and prints its result; rem is a failure (1)" {
	t4dx_start
	fill 5
	local runs
	runs=$(t4dx_ctl_get compact .nrem.runs)
	run "$T4DX" compact "$MNT" nrem
	assert_success
	assert_output --regexp '^nrem: ok in [0-9.]+ s: [0-9]+ -> 8 items'
	assert_equal "$(t4dx_ctl_get compact .nrem.runs)" "$((runs + 1))"
	assert_equal "$(t4dx_ctl_get compact .nrem.last.result)" ok
	run "$T4DX" compact --json "$MNT" flush
	assert_success
	jq -e '.kind == "flush" and .result == "ok" and .last.result == "ok"' \
		<<<"$output" >/dev/null || fail "bad --json: $output"
	run "$T4DX" compact "$MNT" rem
	assert_equal "$status" 1
	assert_one_line_error compact
	assert_output --partial "not available yet"
	run "$T4DX" compact "$T4DX_TMP" nrem
	assert_equal "$status" 2
	assert_output --partial "is not a t4dx mount"
}

# run_compact_bg KIND: `t4dx compact --progress MNT KIND` in the
# background, output to files; sets BG_PID.
run_compact_bg() {
	"$T4DX" compact --progress "$MNT" "$1" >"$T4DX_TMP/c.out" \
		2>"$T4DX_TMP/c.err" 3>&- &
	BG_PID=$!
	t4dx_track "$BG_PID"
}

@test "compact: the daemon publishes a run's progress in .ctl/compact, the tool shows it, and a second run is refused (1)" {
	T4DX_TEST_COMPACT_PAUSE=3
	export T4DX_TEST_COMPACT_PAUSE
	t4dx_start
	unset T4DX_TEST_COMPACT_PAUSE
	fill 20
	t4dx_ctl_test compact '.running == null and .progress == null' ||
		fail "no run yet, but: $(cat "$MNT/.ctl/compact")"
	run_compact_bg nrem
	# paused after its merge: every key is done
	t4dx_wait_ctl 10 compact '.running == "nrem" and .progress.done >= 23
		and .progress.done <= .progress.total'
	run "$T4DX" compact "$MNT" prune
	assert_equal "$status" 1
	assert_output --partial "another compaction is running"
	t4dx_wait_children 30 "$BG_PID" || fail "t4dx compact: ${T4DX_FAILED[*]}
$(cat "$T4DX_TMP/c.err")"
	grep -q 'nrem \[#*\.*\] *[0-9]*% [0-9]* / [0-9]*' "$T4DX_TMP/c.err" ||
		fail "no progress line: $(od -c "$T4DX_TMP/c.err" | head)"
	grep -q '^nrem: ok' "$T4DX_TMP/c.out" || fail "$(cat "$T4DX_TMP/c.out")"
	t4dx_ctl_test compact '.running == null and .progress == null' ||
		fail "run over, but: $(cat "$MNT/.ctl/compact")"
}

# ---- verify -------------------------------------------------------------------

@test "verify: a clean store is exit 0 and changes nothing; a daemon holding it is exit 2 unless --force-readonly" {
	t4dx_start
	fill 5
	t4dx_ctl_echo compact nrem
	t4dx_content more >"$ITEMS/n/more"      # in the WAL only
	run "$T4DX" verify "$DATA"
	assert_equal "$status" 2
	assert_one_line_error verify
	assert_output --regexp "in use by process $T4DX_PID .*--force-readonly"
	run "$T4DX" verify --force-readonly "$DATA"
	assert_success
	assert_output --partial ": no damage"
	t4dx_stop
	local before
	before=$(data_state)
	run "$T4DX" verify "$DATA"
	assert_success
	assert_output --regexp '^.*: [12] segments \([0-9]+ blocks, [0-9]+ entries, [0-9]+ index files\), [0-9]+ WAL records up to LSN [0-9]+, 0 rescue files; .* read: no damage$'
	run "$T4DX" verify --json "$DATA"
	assert_success
	jq -e '.ok and .manifest_ok and (.problems | length) == 0 and
		.segments >= 1 and .wal_records > 0' <<<"$output" >/dev/null ||
		fail "bad --json: $output"
	assert_equal "$(data_state)" "$before"
}

# s12: verify read no index file.  A store whose segment has an index
# (vector.index_min_items 1): counted when sound; a flipped byte in it is
# a note named by file (nothing is lost: the vectors are in the segment),
# exit 0; removed, no damage; an index without its segment a note.
@test "verify: a segment's index file is checked: counted when sound, damaged a note, an orphan a note" {
	local cfg idx
	cfg=$(t4dx_config_file '{"vector": {"index_min_items": 1}}')
	t4dx_start -o "config=$cfg"
	fill 5
	t4dx_wait_ctl 30 stats '.vectors.busy == false'
	t4dx_ctl_echo compact flush
	t4dx_stop
	idx=$(ls "$DATA"/seg/*.hnsw | tail -n 1)
	[[ -f $idx ]] || fail "no index file in $DATA/seg"
	run "$T4DX" verify --json "$DATA"
	assert_success
	jq -e '.ok and .index_files >= 1' <<<"$output" >/dev/null ||
		fail "bad --json: $output"
	printf 'X' | dd of="$idx" bs=1 seek=$(($(stat -c %s "$idx") / 2)) conv=notrunc status=none
	run "$T4DX" verify "$DATA"
	assert_success
	assert_line --regexp "^note: $idx: vector index is damaged: fails its checksum or length check"
	run "$T4DX" verify --json "$DATA"
	assert_success
	jq -e '.ok and .index_files == 0' <<<"$output" >/dev/null ||
		fail "damaged index counted as sound: $output"
	rm "$idx"
	run "$T4DX" verify "$DATA"
	assert_success
	: >"$DATA/seg/99999999999999999999.hnsw"
	run "$T4DX" verify --json "$DATA"
	assert_success
	jq -e '[.notes[].what] | any(test("an index without its segment"))' <<<"$output" >/dev/null ||
		fail "no note of the orphan index: $output"
	rm "$DATA/seg/99999999999999999999.hnsw"
}

@test "verify: a flipped byte in a segment is named by file and offset, exit 1, and nothing moves" {
	damaged_store 5
	local before
	before=$(data_state)
	run "$T4DX" verify "$DATA"
	assert_equal "$status" 1
	assert_line --index 0 --regexp "^$SEG: offset [0-9]+: block 0 of [0-9]+: fails its CRC"
	assert_line --partial ": DAMAGED"
	run "$T4DX" verify --json "$DATA"
	assert_equal "$status" 1
	jq -e --arg f "$SEG" '.ok == false and .problems[0].file == $f and
		(.problems[0].offset | type == "number")' <<<"$output" >/dev/null ||
		fail "bad --json: $output"
	assert_equal "$(data_state)" "$before"
}

@test "verify: a damaged WAL record and a WAL file removed from the middle are found, exit 1" {
	local cfg
	cfg=$(t4dx_config_file '{"wal": {"max_file_bytes": 4096}}')
	t4dx_start -o config="$cfg"
	fill 12
	t4dx_kill9
	local files=("$DATA"/wal/*.jsonl)
	((${#files[@]} >= 3)) || fail "expected several WAL files: ${files[*]}"
	# the file before the last: one byte of its first record (records
	# follow it: damage, not the torn end of a crashed write)
	local last=${files[-2]} off
	off=$(grep -bo '"op"' "$last" | head -n 1 | cut -d: -f1)
	[[ -n $off ]] || fail "no record in $last"
	printf 'X' | dd of="$last" bs=1 seek="$off" conv=notrunc status=none
	run "$T4DX" verify "$DATA"
	assert_equal "$status" 1
	assert_line --regexp "^$last: offset [0-9]+: a record fails its CRC or does not parse"
	run "$T4DX" wal-dump "$DATA"
	assert_equal "$status" 1
	# a file in the middle of the live log goes away
	rm -- "${files[1]}"
	run "$T4DX" verify "$DATA"
	assert_equal "$status" 1
	assert_line --regexp "^$DATA/wal: records [0-9]+ to [0-9]+ are missing \\([0-9]+ records; a log file was removed\\?\\)"
}

@test "verify: what is not a store, or is missing, is exit 2 with one line" {
	run "$T4DX" verify "$T4DX_TMP/nowhere"
	assert_equal "$status" 2
	assert_one_line_error verify
	mkdir "$T4DX_TMP/empty"
	run "$T4DX" verify "$T4DX_TMP/empty"
	assert_equal "$status" 2
	assert_one_line_error verify
	assert_output --partial "is not a t4dx data directory"
	run "$T4DX" verify /etc/passwd
	assert_equal "$status" 2
	assert_output --partial "Not a directory"
}

@test "verify: --progress draws a bar of bytes on stderr; without a terminal there is none" {
	t4dx_start
	fill 30
	t4dx_stop
	"$T4DX" verify --progress "$DATA" >"$T4DX_TMP/v.out" 2>"$T4DX_TMP/v.err" ||
		fail "verify failed: $(cat "$T4DX_TMP/v.out" "$T4DX_TMP/v.err")"
	grep -q 'verify \[[#.]*\] *[0-9]*% .*B / .*B' "$T4DX_TMP/v.err" ||
		fail "no progress bar: $(od -c "$T4DX_TMP/v.err" | head)"
	"$T4DX" verify "$DATA" >"$T4DX_TMP/v.out" 2>"$T4DX_TMP/v.err"
	[[ ! -s $T4DX_TMP/v.err ]] || fail "stderr not empty: $(cat "$T4DX_TMP/v.err")"
}

# ---- ls and dump ---------------------------------------------------------------

@test "ls and dump: read a stopped store's items, byte for byte, changing nothing" {
	t4dx_start
	fill 3
	mkdir "$ITEMS/n/sub"
	t4dx_stop
	local before
	before=$(data_state)
	run "$T4DX" ls "$DATA"
	assert_success
	assert_output "n/"
	run "$T4DX" ls "$DATA" n
	assert_success
	assert_output "$(printf '%s\n' bin f1 f2 f3 sub/)"
	run "$T4DX" ls -l "$DATA" /n/
	assert_success
	assert_line --regexp '^-rw-r--r-- +4096 [0-9-]+ [0-9:]+ bin$'
	assert_line --regexp '^drwxr-xr-x +0 [0-9-]+ [0-9:]+ sub/$'
	run "$T4DX" ls --json "$DATA" n
	assert_success
	jq -e 'length == 5 and .[0].name == "bin" and .[0].size == 4096 and
		.[4].type == "directory"' <<<"$output" >/dev/null ||
		fail "bad --json: $output"
	"$T4DX" dump "$DATA" n/bin >"$T4DX_TMP/bin.out"
	t4dx_assert_same_bytes "$T4DX_TMP/bin.orig" "$T4DX_TMP/bin.out"
	run "$T4DX" dump "$DATA" n/f2
	assert_success
	assert_output "$(t4dx_content 2)"
	run "$T4DX" dump --json "$DATA" n/f2
	assert_success
	jq -e --arg c "$(t4dx_content 2)"$'\n' '.content == $c and .size ==
		($c | length) and .memory_type == "episodic" and .path == "n/f2"' \
		<<<"$output" >/dev/null || fail "bad --json: $output"
	"$T4DX" dump --json "$DATA" n/bin | jq -r .content_base64 | base64 -d \
		>"$T4DX_TMP/bin.b64"
	t4dx_assert_same_bytes "$T4DX_TMP/bin.orig" "$T4DX_TMP/bin.b64"
	assert_equal "$(data_state)" "$before"
}

@test "ls and dump: after SIGKILL they see the WAL's records and cut nothing, not even a torn tail" {
	t4dx_start
	fill 2
	t4dx_content late >"$ITEMS/n/late"
	t4dx_kill9
	# a torn record after the last one
	local wal
	wal=$(t4dx_last_wal)
	printf '{"lsn":999999,"op":"put","na' >>"$wal"
	local before
	before=$(data_state)
	run "$T4DX" verify "$DATA"
	assert_success
	assert_line --regexp "^note: $wal: offset [0-9]+: the last [0-9]+ bytes are the torn end of a write"
	run "$T4DX" ls "$DATA" n
	assert_success
	assert_line late
	run "$T4DX" dump "$DATA" n/late
	assert_success
	assert_output "$(t4dx_content late)"
	assert_equal "$(data_state)" "$before"
}

@test "ls and dump: a damaged segment's items are rebuilt in memory from the WAL; the segment stays where it is" {
	damaged_store 4
	local before
	before=$(data_state)
	run --separate-stderr "$T4DX" ls "$DATA" n
	assert_failure 1
	assert_output "$(printf '%s\n' bin f1 f2 f3 f4)"
	[[ $stderr == "t4dx: ls: warning: $DATA is damaged; 1 damaged segment(s) rebuilt from the WAL; what is shown may be incomplete"* ]] ||
		fail "stderr: $stderr"
	run --separate-stderr "$T4DX" dump "$DATA" n/f3
	assert_failure 1
	assert_output "$(t4dx_content 3)"
	assert_equal "$(data_state)" "$before"
	assert_file_exists "$SEG"
}

@test "ls and dump: names with newlines, tabs and backslashes stay one line; names that are not UTF-8 are name_base64 in JSON; .. and file/ resolve as paths do" {
	t4dx_start
	mkdir -p "$ITEMS/d/e"
	echo x >"$ITEMS/d/"$'two\nlines'
	echo y >"$ITEMS/d/"$'tab\there\\'
	echo z >"$ITEMS/d/"$'\xff\xfe'
	echo f >"$ITEMS/d/e/f"
	t4dx_stop
	run "$T4DX" ls "$DATA" d
	assert_success
	# bytes that are not UTF-8 as \xHH, as the other control bytes
	assert_output "$(printf '%s\n' 'e/' 'tab\there\\' 'two\nlines' '\xff\xfe')"
	run "$T4DX" ls --json "$DATA" d
	assert_success
	jq -e 'map(.name_base64 // empty) == ["//4="] and
		(map(.name // empty) | index("two\nlines") != null)' <<<"$output" >/dev/null ||
		fail "bad --json: $output"
	run "$T4DX" dump "$DATA" d/e/../e/./f
	assert_success
	assert_output f
	run "$T4DX" ls "$DATA" ../../d/e
	assert_success
	assert_output f
	run "$T4DX" dump "$DATA" d/e/f/
	assert_failure 1
	assert_output --partial "Not a directory"
}

@test "ls: UTF-8 names print as they are; stray bytes, C1, bidi and other control characters never reach the terminal raw" {
	t4dx_start
	mkdir "$ITEMS/d"
	local n
	for n in 'café' '日本語' '🙂 smile' $'a\xffb' $'\xc3' $'esc\x1b[31m' $'csi\xc2\x9b2J' \
		$'del\x7f' $'\xed\xa0\x80sur' $'\xc0\xafover' $'rlo\xe2\x80\xaegnp.sh' \
		$'lri\xe2\x81\xa6x' 'hy‐phen'; do
		echo x >"$ITEMS/d/$n"
	done
	t4dx_stop
	run "$T4DX" ls "$DATA" d
	assert_success
	# in the store's order: byte-wise, as the raw names sort
	assert_output "$(printf '%s\n' 'a\xffb' 'café' 'csi\xc2\x9b2J' 'del\x7f' \
		'esc\x1b[31m' 'hy‐phen' 'lri\xe2\x81\xa6x' 'rlo\xe2\x80\xaegnp.sh' \
		'\xc0\xafover' '\xc3' '日本語' '\xed\xa0\x80sur' '🙂 smile')"
	run "$T4DX" ls -l "$DATA" d
	assert_success
	[[ $output != *[$'\x01'-$'\x09'$'\x0b'-$'\x1f'$'\x7f']* ]] || fail "a control byte in: $output"
	assert_line --partial ' a\xffb'
}

@test "verify: a MANIFEST lost while segments remain is damage (1); archive files removed below the segments' end are a note (0)" {
	local cfg
	cfg=$(t4dx_config_file '{"wal": {"max_file_bytes": 4096}}')
	t4dx_start -o config="$cfg"
	fill 12
	t4dx_stop
	local arch=("$DATA"/wal/archive/*.jsonl)
	((${#arch[@]} >= 3)) || fail "expected several archived files"
	rm -- "${arch[1]}"
	run "$T4DX" verify "$DATA"
	assert_success
	assert_line --regexp "^note: $DATA/wal: records [0-9]+ to [0-9]+ are not in the archive"
	mv "$DATA/MANIFEST" "$T4DX_TMP/MANIFEST.away"
	run "$T4DX" verify "$DATA"
	assert_failure 1
	assert_line --regexp "^$DATA/MANIFEST: missing, but seg/ holds 1 segment file\(s\)"
}

@test "verify: a FIFO or another user's file named as a rescue file is noted, not read (no hang)" {
	t4dx_start
	fill 1
	t4dx_stop
	mkfifo "$DATA/rescue-00000000000000000001.jsonl"
	run timeout 20 "$T4DX" verify "$DATA"
	assert_success
	assert_line "note: $DATA/rescue-00000000000000000001.jsonl: not a regular file: a start does not replay it"
	rm "$DATA/rescue-00000000000000000001.jsonl"
	echo junk >"$DATA/rescue-00000000000000000002.jsonl"
	chown 65534 "$DATA/rescue-00000000000000000002.jsonl"
	run "$T4DX" verify "$DATA"
	assert_success
	assert_line "note: $DATA/rescue-00000000000000000002.jsonl: not this user's file: a start does not replay it"
}

@test "verify, ls: a store this user may not read is exit 2 with the real reason" {
	stopped_store_for_nobody
	run as_nobody "$T4DX" verify "$DATA"
	assert_equal "$status" 2
	assert_output "t4dx: verify: $DATA: Permission denied"
	chmod 755 "$DATA"
	run as_nobody "$T4DX" ls "$DATA"
	assert_equal "$status" 2
	assert_output --regexp "^t4dx: ls: cannot read $DATA/(wal|seg|MANIFEST): Permission denied$"
}

@test "t4dxfs waits for a t4dx reader's shared lock instead of refusing to start" {
	t4dx_start
	fill 1
	t4dx_stop
	# what verify, ls and dump hold while they read, for about a second
	flock -s "$DATA/LOCK" sleep 1 3>&- &
	t4dx_track $!
	t4dx_wait_for 10 bash -c '! flock -n -x "$1" true' _ "$DATA/LOCK" ||
		fail "the reader never took its lock"
	t4dx_start
	assert_equal "$(cat "$ITEMS/n/f1")" "$(t4dx_content 1)"
}

@test "status: a mount whose daemon died is exit 1 with one line" {
	t4dx_start
	t4dx_kill9 --keep-mount
	run "$T4DX" status "$MNT"
	assert_failure 1
	assert_one_line_error status
	assert_output --partial "the daemon of this mount is gone"
}

@test "ls and dump: a missing item is exit 1, a directory to dump is exit 1, a held or foreign directory is exit 2" {
	t4dx_start
	fill 1
	# the log quiet (the embedder's records in): a read without the
	# lock may meet a record being appended, which is not what this
	# test is about
	t4dx_wait_ctl 30 stats '.vectors.busy == false and .wal_pending == 0'
	run "$T4DX" ls "$DATA"
	assert_equal "$status" 2
	assert_one_line_error ls
	assert_output --partial "in use by process $T4DX_PID"
	run "$T4DX" ls --force-readonly "$DATA" n
	assert_success
	assert_line f1
	t4dx_stop
	run "$T4DX" ls "$DATA" n/nothing
	assert_equal "$status" 1
	assert_one_line_error ls
	assert_output --partial "no such item"
	refute_output --partial 'leave out'
	# a path that repeats items/ is told so, by ls and by dump
	run "$T4DX" ls "$DATA" items/n
	assert_equal "$status" 1
	assert_one_line_error ls
	assert_output --partial 'items/n: no such item or directory (a path is taken inside items/: leave out the leading "items/")'
	run "$T4DX" dump "$DATA" /items/n/f1
	assert_equal "$status" 1
	assert_output --partial 'leave out the leading "items/"'
	run "$T4DX" dump "$DATA" n
	assert_equal "$status" 1
	assert_output --partial "is a directory"
	run "$T4DX" dump "$DATA" n/f1/x
	assert_equal "$status" 1
	assert_output --partial "Not a directory"
	run "$T4DX" dump "$T4DX_TMP" n/f1
	assert_equal "$status" 2
	assert_output --partial "is not a t4dx data directory"
}

@test "t4dxfs: the rebuild of a damaged segment at start reports its progress" {
	damaged_store 4
	t4dx_start
	grep -q '^t4dxfs: rebuilding segment [0-9]* from the WAL:   0% (0 of [0-9]* bytes read)$' "$T4DX_LOG" ||
		fail "no start line: $(cat "$T4DX_LOG")"
	grep -q '^t4dxfs: rebuilding segment [0-9]* from the WAL: 100% ([0-9]* of [0-9]* bytes read)$' "$T4DX_LOG" ||
		fail "no end line: $(cat "$T4DX_LOG")"
	assert_equal "$(cat "$ITEMS/n/f4")" "$(t4dx_content 4)"
	t4dx_stop
	run "$T4DX" verify "$DATA"
	assert_success
	assert_line --regexp "^note: $DATA/quarantine: 1 file\(s\), [0-9]+ bytes, set aside by earlier recoveries$"
}

@test "verify: rescue files of the store are read line by line; a bad line is damage, exit 1" {
	t4dx_start
	fill 1
	t4dx_stop
	# two records as a rescue holds them (WAL lines), then a bad one
	local r=$DATA/rescue-00000000000000000900.jsonl
	"$T4DX" wal-dump --archive "$DATA" | tail -n 2 >"$r"
	local good
	good=$(stat -c %s "$r")
	echo '{"lsn":901,"op":"put","crc":1}' >>"$r"
	run "$T4DX" verify "$DATA"
	assert_equal "$status" 1
	assert_line "$r: offset $good: a record fails its CRC or does not parse"
	assert_line --regexp "^note: $DATA: 1 rescue file\\(s\\) with 2 records"
	# a file of another name is not this store's
	mv "$r" "$DATA/rescue-x.jsonl"
	run "$T4DX" verify "$DATA"
	assert_success
}

@test "verify: every damaged block of a segment is named, and a damaged MANIFEST does not stop the segments from being read" {
	t4dx_start
	local i
	mkdir "$ITEMS/r"
	for ((i = 0; i < 30; i++)); do
		head -c 100000 /dev/urandom >"$ITEMS/r/f$i"
	done
	t4dx_stop
	local size
	SEG=$(ls "$DATA"/seg/*.t4s)
	size=$(stat -c %s "$SEG")
	# three blocks far apart (random content does not compress: a
	# block is about 64 KiB or one item)
	for off in $((size / 5)) $((size / 2)) $((size * 4 / 5)); do
		flip "$SEG" "$off"
	done
	run "$T4DX" verify "$DATA"
	assert_failure 1
	local n
	n=$(grep -c "^$SEG: offset [0-9]*: block [0-9]* of [0-9]*: fails its CRC" <<<"$output")
	((n == 3)) || fail "expected 3 damaged blocks named: $output"
	echo garbage >"$DATA/MANIFEST"
	run "$T4DX" verify "$DATA"
	assert_failure 1
	assert_line "$DATA/MANIFEST: fails its CRC or does not parse"
	n=$(grep -c "^$SEG: offset [0-9]*: block [0-9]* of [0-9]*: fails its CRC" <<<"$output")
	((n == 3)) || fail "the segment was not read without a MANIFEST: $output"
}

@test "verify: a file of the store this user may not read is exit 2, not damage" {
	stopped_store_for_nobody
	chmod -R a+rX "$DATA"
	local wal
	wal=$(ls "$DATA"/wal/archive/*.jsonl | head -n 1)
	chmod 600 "$wal"
	run as_nobody "$T4DX" verify "$DATA"
	assert_equal "$status" 2
	assert_line --regexp "^t4dx: verify: cannot read $DATA/wal: Permission denied$"
}

# complete WORD...: COMPREPLY of the t4dx completion for the command line
# WORD... (the last word is the one being completed), one a line.
complete_t4dx() {
	PATH=$T4DX_BUILDDIR/tools:$PATH bash -c '
		source "$1/contrib/bash-completion/t4dx"
		shift
		COMP_WORDS=("$@")
		COMP_CWORD=$(($# - 1))
		COMPREPLY=()
		_t4dx
		printf "%s\n" "${COMPREPLY[@]}"' _ "$T4DX_SRCDIR" "$@"
}

@test "completion: store paths come from t4dx ls, unescaped, also while a daemon holds the store and for a word typed with a backslash" {
	t4dx_start
	mkdir "$ITEMS/dir one"
	echo a >"$ITEMS/dir one/x'y"
	echo b >"$ITEMS/"$'tab\there'
	run complete_t4dx t4dx dump "$DATA" d
	assert_output "dir one/"
	run complete_t4dx t4dx dump "$DATA" 'dir\ one/'
	assert_output "dir one/x'y"
	run complete_t4dx t4dx dump "$DATA" t
	assert_output $'tab\there'
	t4dx_stop
}
