#!/usr/bin/env bats
# hostile2.bats - what a new user's real programs found (session 12,
# hostile use of bulk loads, large files and search; issues 13 and 14).

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
