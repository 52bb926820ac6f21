#!/usr/bin/env bats
# edges.bats - edges that real programs reach: names that are not UTF-8
# in results.json and alerts, a re-embed round that a retried failure
# must not undo, write buffers of files written side by side, times
# outside the range of int64 nanoseconds.

load ../lib/mount

setup() {
	t4dx_setup
}

@test "results.json of an item whose name is not UTF-8 is valid JSON, the name in path_b64; t4dx search shows it" {
	t4dx_start
	mkdir "$ITEMS/odd"
	printf 'zebra quagga okapi\n' >"$ITEMS/odd/$(printf 'bad\xffname')"
	printf 'zebra quagga okapi giraffe\n' >"$ITEMS/odd/fine"
	t4dx_wait_ctl 30 stats '.vectors.busy == false'
	local q="$MNT/search/zebra quagga okapi?k=2"
	# RFC 8259: JSON text is UTF-8; a strict parser (Python's) rejects
	# any other byte, jq turns it into U+FFFD and the name is lost
	run python3 -c '
import json, sys, base64
r = json.loads(open(sys.argv[1], "rb").read().decode("utf-8"))
for x in r["results"]:
    p = x["path"].encode() if "path" in x else base64.b64decode(x["path_b64"])
    print(repr(p))' "$q/results.json"
	assert_success
	assert_output "b'odd/bad\\xffname'
b'odd/fine'"
	run "$T4DX" search "$MNT" "zebra quagga okapi" -k 2
	assert_success
	assert_line --index 0 --partial 'odd/bad\xffname  zebra quagga okapi'
	assert_line --index 1 --partial 'odd/fine  zebra quagga okapi giraffe'
}

# cmd_config MODE [ARG...]: a configuration with vector.dim 4 and the
# embedder program tests/embed-cmd.sh MODE ARG....
cmd_config() {
	t4dx_config_file "$(jq -cn --arg sh "$T4DX_SRCDIR/tests/embed-cmd.sh" \
		'$ARGS.positional as $a | {vector: {dim: 4, embedder: "command",
		timeout_s: 10, command: (["bash", $sh] + $a)}}' --args "$@")"
}

@test "command: a redo the program failed on once, then answered, is over: EMBEDDER names the program and the next start asks nothing" {
	local cfg
	cfg=$(cmd_config answer 4)
	t4dx_start -o "config=$cfg"
	printf 'hello\n' >"$ITEMS/a"
	printf 'world wide\n' >"$ITEMS/b"
	t4dx_wait_ctl 30 stats '.vectors.busy == false and .vectors.embedded == 2'
	grep -q '"answer"' "$DATA/EMBEDDER" || fail "EMBEDDER: $(cat "$DATA/EMBEDDER")"
	# another program: every file is embedded again; it crashes on its
	# first request, then answers everything (the file goes back to the
	# queue and gets its vector after the back-off)
	cfg=$(cmd_config crash-once "$T4DX_TMP/crashed" 4)
	t4dx_remount -o "config=$cfg"
	t4dx_wait_ctl 30 stats '.vectors.busy == false and .vectors.failed == 1 and .vectors.program_starts == 2'
	# the redo is done: every file has the program's vector
	run jq -c '.vectors | [.failed, .no_vector]' "$MNT/.ctl/stats"
	assert_output '[1,0]'
	t4dx_wait_for 10 grep -q crash-once "$DATA/EMBEDDER" ||
		fail "the redo never ended: EMBEDDER still $(cat "$DATA/EMBEDDER")"
	# so a restart with the same program sends nothing
	t4dx_remount -o "config=$cfg"
	sleep 1
	t4dx_wait_ctl 30 stats '.vectors.busy == false'
	run jq -c '.vectors | [.embedded, .failed, .program_starts]' "$MNT/.ctl/stats"
	assert_output '[0,0,0]'
}

@test "two files written side by side whose bytes fit limits.write_buffer_bytes together are both stored (no ENOSPC from one's unused room)" {
	# 24 MiB each, 48 of the 50 MiB that all uncommitted writes may hold
	t4dx_start -o "config=$(t4dx_config_file '{"limits":
		{"max_item_bytes":25165824,"write_buffer_bytes":52428800}}')"
	run python3 -c '
import os, sys
a = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
b = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT, 0o644)
for i in range(24):
    os.write(a, bytes([65 + i % 26]) * (1 << 20))
    os.write(b, bytes([97 + i % 26]) * (1 << 20))
os.close(a)
os.close(b)' "$ITEMS/a" "$ITEMS/b"
	assert_success
	run stat -c %s "$ITEMS/a" "$ITEMS/b"
	assert_output $'25165824\n25165824'
	run t4dx_stat_field write_buffer_bytes
	assert_output 0
}

@test "command: the alert of a content given up names the file's path, not only its name" {
	# with notes/a and drafts/a, the name alone cannot tell which
	t4dx_start -o "config=$(cmd_config poison 4)"
	mkdir "$ITEMS/notes" "$ITEMS/drafts"
	printf 'fine words\n' >"$ITEMS/notes/a"
	printf 'poison words\n' >"$ITEMS/drafts/a"
	t4dx_feed_until 8 grep -q 'failed 3 times' "$MNT/.ctl/alerts" ||
		fail "never given up: $(cat "$MNT/.ctl/alerts")"
	run grep 'failed 3 times' "$MNT/.ctl/alerts"
	assert_output --partial '"drafts/a"'
}

@test "command: a content given up in a file whose name is not UTF-8: the alert escapes it, and t4dx status --json stays valid JSON" {
	t4dx_start -o "config=$(cmd_config poison 4)"
	printf 'fine words\n' >"$ITEMS/ok"
	printf 'poison words\n' >"$ITEMS/$(printf 'bad\xffname')"
	t4dx_feed_until 8 grep -q 'failed 3 times' "$MNT/.ctl/alerts" ||
		fail "never given up: $(cat "$MNT/.ctl/alerts")"
	run grep 'failed 3 times' "$MNT/.ctl/alerts"
	assert_output --partial '"bad\xffname"'
	run bash -c '"$1" status "$2" --json | python3 -c "
import json, sys
s = json.loads(sys.stdin.buffer.read().decode(\"utf-8\"))
print(len(s[\"alerts\"]) > 0)"' _ "$T4DX" "$MNT"
	assert_success
	assert_output True
}

@test "a time past what nanoseconds since 1970 hold (after 2262, before 1677) is clamped to the nearest one, not wrapped around" {
	t4dx_start
	printf 'x\n' >"$ITEMS/f"
	mkdir "$ITEMS/d"
	touch -d '2300-01-01 00:00:00 UTC' "$ITEMS/f"
	touch -h -d '1600-01-01 00:00:00 UTC' "$ITEMS/d"
	# ext4 keeps these; a store of int64 nanoseconds can keep its ends
	# (as the kernel clamps a time to what a filesystem holds)
	run stat -c '%.9Y' "$ITEMS/f" "$ITEMS/d"
	assert_output $'9223372036.854775807\n-9223372036.854775808'
	run "$T4DX" sync "$MNT"
	assert_success
	t4dx_kill9
	t4dx_start
	run stat -c '%.9Y' "$ITEMS/f" "$ITEMS/d"
	assert_output $'9223372036.854775807\n-9223372036.854775808'
}
