#!/usr/bin/env bats
# searchuse.bats - search/ as its users meet it, beyond search.bats: a
# link of a query directory held across a change of the answer (its inode
# is its item's, fs/search.c), and a
# segment's vector index file damaged on disk (the search, the health
# check that rebuilds it, and `t4dx verify` on such a store); and a
# command embedder's child that left the program's process group.

load ../lib/mount

setup() {
	t4dx_setup
}

# An index for even a small segment, and a health check every 0.2 s.
SMALL_INDEX='{"vector": {"index_min_items": 1}, "health": {"interval_s": 0.2}}'

has() {
	jq -e --arg p "$2" '.results | any(.path == $p)' \
		"$MNT/search/$1/results.json" >/dev/null
}

top_is() {
	[[ $(jq -r '.results[0].path // ""' "$MNT/search/$1/results.json") == "$2" ]]
}

# write_notes: ten short notes of distinct words, each found by search.
write_notes() {
	local i
	for i in 0 1 2 3 4 5 6 7 8 9; do
		printf 'note %s about %s\n' "$i" "${WORDS[i]}" >"$ITEMS/n$i"
	done
	for i in 0 1 2 3 4 5 6 7 8 9; do
		t4dx_wait_for 30 has "${WORDS[i]}" "n$i" ||
			fail "n$i never found by '${WORDS[i]}'"
	done
}
WORDS=('green tea leaves' 'bicycle chain oil' 'telescope galaxies'
	'sourdough bread oven' 'violin sonata' 'glacier crevasse'
	'volcano lava' 'chess opening gambit' 'honeybee hive' 'lighthouse fog')

# answers: the paths and scores of one query per note, one line.
answers() {
	local i
	for i in 0 1 2 3 4 5 6 7 8 9; do
		jq -c '[.partial, [.results[] | [.path, .score]]]' \
			"$MNT/search/${WORDS[i]}?k=3/results.json"
	done
}

@test "a link held open reads as the item it named, never as another that took its rank" {
	t4dx_start
	printf 'zebra giraffe savanna\n' >"$ITEMS/za"
	printf 'zebra lion\n' >"$ITEMS/zb"
	local q="$MNT/search/zebra giraffe savanna?k=2"
	t4dx_wait_for 30 top_is 'zebra giraffe savanna?k=2' za ||
		fail "za never first: $(cat "$q/results.json")"
	t4dx_wait_for 30 has 'zebra giraffe savanna?k=2' zb || fail "zb not found"
	# A process holds the link 1-za (as one does between its lookup and
	# the readlink that follows, or a cwd, or an O_PATH descriptor);
	# meanwhile za changes and zb takes rank 1, which a listing from
	# another process computes.  The held link must still read as za's
	# (or be gone: ENOENT, ESTALE), never as zb's, which its name does
	# not name: `cat 1-za` would print zb.
	run python3 -c '
import os, sys, time
q = sys.argv[1]
fd = os.open(q + "/1-za", os.O_PATH | os.O_NOFOLLOW)
before = os.readlink("", dir_fd=fd)
with open(sys.argv[2], "w") as f:
    f.write("completely unrelated words here\n")
deadline = time.time() + 30
while sorted(os.listdir(q))[0] != "1-zb":
    if time.time() > deadline:
        sys.exit("zb never took rank 1: %s" % os.listdir(q))
    time.sleep(0.02)
try:
    after = os.readlink("", dir_fd=fd)
except OSError as e:
    after = "error %d" % e.errno
print(before)
print(after)
' "$q" "$ITEMS/za"
	assert_success
	assert_line --index 0 '../../items/za'
	refute_line --index 1 '../../items/zb'
}

@test "a damaged or missing vector index: the same answers, an alert, a rebuild, and t4dx verify notes it" {
	t4dx_start -o "config=$(t4dx_config_file "$SMALL_INDEX")"
	write_notes
	t4dx_ctl_echo compact flush
	local ix=("$DATA"/seg/*.hnsw)
	[[ -e ${ix[0]} && ${#ix[@]} == 1 ]] || fail "no single index file: ${ix[*]}"
	local want
	want=$(answers)
	t4dx_stop

	# damaged while unmounted: the answers are the same (the segment is
	# read whole), an alert says so, the health check writes it again
	cp "${ix[0]}" "$T4DX_TMP/good.hnsw"
	printf 'XXXXXXXXXXXXXXXX' | dd of="${ix[0]}" bs=1 seek=200 conv=notrunc 2>/dev/null
	run "$T4DX" verify "$DATA"
	assert_success                  # nothing is lost: a note, not damage
	assert_output --partial "${ix[0]}: vector index is damaged"
	run "$T4DX" verify --json "$DATA"
	assert_success
	jq -e --arg f "${ix[0]}" '.ok and (.notes | any(.file == $f and
		(.what | test("vector index is damaged"))))' <<<"$output" ||
		fail "no note of the damaged index: $output"

	t4dx_start -o "config=$(t4dx_config_file "$SMALL_INDEX")"
	assert_equal "$(answers)" "$want"
	t4dx_wait_for 30 grep -q 'vector index .* is unusable' "$MNT/.ctl/alerts" ||
		fail "no alert: $(cat "$MNT/.ctl/alerts")"
	t4dx_wait_for 30 grep -q 'vector index of segment .* rebuilt' "$MNT/.ctl/alerts" ||
		fail "not rebuilt: $(cat "$MNT/.ctl/alerts")"
	assert_equal "$(answers)" "$want"

	# removed while mounted: the same answers, and it comes back
	rm "${ix[0]}"
	assert_equal "$(answers)" "$want"
	t4dx_wait_for 30 test -s "${ix[0]}" || fail "index file not written again"
	t4dx_stop
	run "$T4DX" verify "$DATA"
	assert_success
	refute_output --partial 'vector index'
	t4dx_start -o "config=$(t4dx_config_file "$SMALL_INDEX")"
	assert_equal "$(answers)" "$want"
}

@test "at level 2 (a damaged segment) an item of the memtable, readable by name, is still found, partial" {
	t4dx_start -o "config=$(t4dx_config_file "$SMALL_INDEX")"
	local i
	for i in $(seq 1 40); do
		printf 'filler %s %s\n' "$i" "$(printf 'lorem ipsum dolor %.0s' $(seq 60))" \
			>"$ITEMS/fill$i"
	done
	t4dx_ctl_echo compact flush
	local seg=("$DATA"/seg/*.t4s)
	[[ ${#seg[@]} == 1 ]] || fail "not one segment: ${seg[*]}"
	# written after the flush: in the memtable, with its vector
	printf 'zanzibar spice island\n' >"$ITEMS/mem"
	t4dx_wait_for 30 has 'zanzibar spice' mem || fail "mem never found"
	# damage the segment's middle; the health check reads it back
	local size
	size=$(stat -c %s "${seg[0]}")
	head -c 4000 /dev/urandom |
		dd of="${seg[0]}" bs=1 seek=$((size / 3)) conv=notrunc 2>/dev/null
	t4dx_wait_ctl 30 health '.level == 2'
	# the item is there, by name
	assert_equal "$(cat "$ITEMS/mem")" 'zanzibar spice island'
	run jq -c . "$MNT/search/zanzibar spice/results.json"
	assert_success
	jq -e '.partial == true' <<<"$output" || fail "not partial: $output"
	jq -e '.results | any(.path == "mem")' <<<"$output" ||
		fail "mem not found at level 2: $output"
}

@test "command embedder: a child the program put in a session of its own does not outlive the unmount" {
	local cfg
	cfg=$(jq -cn --arg sh "$T4DX_SRCDIR/tests/embed-cmd.sh" \
		--arg pf "$T4DX_TMP/setsid.pid" \
		'{vector: {dim: 4, embedder: "command", timeout_s: 10,
		  command: ["bash", $sh, "setsid", $pf, "4"]}}')
	t4dx_start -o "config=$(t4dx_config_file "$cfg")"
	printf 'abc\n' >"$ITEMS/f"
	t4dx_wait_for 30 test -s "$T4DX_TMP/setsid.pid" || fail "the program never started"
	local child
	child=$(cat "$T4DX_TMP/setsid.pid")
	t4dx_track "$child"             # the teardown kills it if it stays
	t4dx_wait_for 10 t4dx_alive "$child" || fail "no child $child"
	t4dx_wait_for 30 eval '[[ -n $(getfattr --only-values -n user.t4dx.vector "$ITEMS/f" 2>/dev/null) ]]' ||
		fail "no vector from the program"
	t4dx_stop
	t4dx_wait_for 10 t4dx_dead "$child" || fail "pid $child left running"
}

# as_nobody CMD...: run CMD as user nobody (root only).
as_nobody() {
	setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"
}

@test "with allow_other, search/ is the mounting user's: another user gets EACCES, not the names of items it may not read" {
	[[ $EUID == 0 ]] || skip "needs root, to act as another user"
	command -v setpriv >/dev/null || skip "setpriv is missing"
	chmod 755 "$T4DX_TMP"           # the mount point is reached through it
	t4dx_start -o allow_other
	mkdir -m 700 "$ITEMS/private"
	printf 'salary of alice is 100000 dollars, secret\n' >"$ITEMS/private/alice-salary"
	chmod 600 "$ITEMS/private/alice-salary"
	printf 'a public note about dollars\n' >"$ITEMS/pub"
	chmod 644 "$ITEMS/pub"
	t4dx_wait_for 30 has 'salary secret' private/alice-salary ||
		fail "never found: $(cat "$MNT/search/salary secret/results.json")"
	# the directory keeps nobody out, the public item is nobody's to read
	run as_nobody ls "$ITEMS/private"
	assert_failure
	assert_output --partial 'Permission denied'
	run as_nobody cat "$ITEMS/pub"
	assert_success
	# search/ would name the private item, its id, and how close it is to
	# any text nobody cares to try: nobody cannot enter it
	run as_nobody cat "$MNT/search/salary secret/results.json"
	assert_failure
	assert_output --partial 'Permission denied'
	refute_output --partial 'alice-salary'
	run as_nobody ls "$MNT/search/dollars?under=private"
	assert_failure
	# the mounting user still searches
	run jq -r '.results[].path' "$MNT/search/salary secret/results.json"
	assert_success
	assert_output --partial 'private/alice-salary'
}

# Found by review: search/ became the mounting user's so that another user of
# an allow_other mount learns nothing of items in directories it may not
# enter; the embedder's give-up alert (embedder.c embed_one) names the
# file, so .ctl/alerts is the mounting user's too (0400).
@test "with allow_other, .ctl/alerts does not tell another user the name of an item it may not reach" {
	[[ $EUID == 0 ]] || skip "needs root, to act as another user"
	command -v setpriv >/dev/null || skip "setpriv is missing"
	chmod 755 "$T4DX_TMP"
	local cfg
	cfg=$(jq -cn --arg sh "$T4DX_SRCDIR/tests/embed-cmd.sh" \
		'{vector: {dim: 4, embedder: "command", timeout_s: 10,
		  command: ["bash", $sh, "poison", "4"]}}')
	t4dx_start -o "allow_other,config=$(t4dx_config_file "$cfg")"
	printf 'a public note\n' >"$ITEMS/pub"
	t4dx_wait_ctl 30 stats '.vectors.embedded == 1'
	mkdir -m 700 "$ITEMS/private"
	printf 'poison: layoffs planned for march\n' >"$ITEMS/private/layoffs-march"
	chmod 600 "$ITEMS/private/layoffs-march"
	# given up while the program answers other files between its tries
	t4dx_feed_until 8 t4dx_ctl_test stats '.vectors.no_vector == 1' ||
		fail "not given up: $(cat "$MNT/.ctl/stats")"
	grep -q 'layoffs-march' "$MNT/.ctl/alerts" ||
		fail "no alert: $(cat "$MNT/.ctl/alerts")"
	run as_nobody ls "$ITEMS/private"
	assert_failure
	run as_nobody cat "$MNT/.ctl/alerts"
	assert_failure
	refute_output --partial 'layoffs-march'
	# the rest of .ctl/ stays readable
	run as_nobody cat "$MNT/.ctl/health"
	assert_success
}
