#!/usr/bin/env bats
# search.bats - MOUNT/search/ (DESIGN.md section 9, fs/search.c): a query
# directory lists the best matches as links RANK-NAME -> ../../items/PATH
# with results.json beside them; options filter (under, type, kappa,
# event time), @ID finds items like an item; deleted and overwritten items
# follow at once, and so does everything after a restart, a kill -9 and
# compaction; bad options are EINVAL, long names ENAMETOOLONG, and nothing
# under search/ can be changed.  And `t4dx search`.
#
# The embedder works in the background after a close: a test waits for
# the vectors it needs by polling a query until the item shows up (with a
# deadline), never by sleeping.

load ../lib/mount

setup() {
	t4dx_setup
	t4dx_start
}

# Topics that share no word, so that each query has one clear winner.
TEA='green tea leaves steeped in hot water, a cup of sencha'
BIKE='bicycle repair: oil the chain, true the wheel, adjust the gears'
STARS='telescope pointed at distant galaxies and nebulae in the night sky'
BREAD='knead the dough, let it rise, bake the sourdough loaf in the oven'

# results QUERY: the results.json of a query, one line.
results() {
	jq -c . "$MNT/search/$1/results.json"
}

# has QUERY PATH: PATH (under items/) is among the results of QUERY.
has() {
	jq -e --arg p "$2" '.results | any(.path == $p)' \
		"$MNT/search/$1/results.json" >/dev/null
}

# top QUERY: the path of the best result of QUERY.
top() {
	jq -r '.results[0].path // ""' "$MNT/search/$1/results.json"
}

# paths QUERY: the paths of the results, best first, space-separated.
paths() {
	jq -r '[.results[].path] | join(" ")' "$MNT/search/$1/results.json"
}

# pathset QUERY: the paths of the results in name order.
pathset() {
	jq -r '[.results[].path] | sort | join(" ")' \
		"$MNT/search/$1/results.json"
}

is_top() {
	[[ $(top "$1") == "$2" ]]
}

lacks() {
	! has "$1" "$2"
}

# wait_has QUERY PATH: wait (bounded) until PATH is among QUERY's results:
# its vector has been computed.
wait_has() {
	t4dx_wait_for 30 has "$1" "$2" ||
		fail "'$2' never found by '$1': $(results "$1")"
}

# write_topics [DIR]: the four topics as DIR/tea, bike, stars, bread, and
# wait until each is found.
write_topics() {
	local d=${1:-}
	[[ -n $d ]] && mkdir -p "$ITEMS/$d" && d=$d/
	printf '%s\n' "$TEA" >"$ITEMS/${d}tea"
	printf '%s\n' "$BIKE" >"$ITEMS/${d}bike"
	printf '%s\n' "$STARS" >"$ITEMS/${d}stars"
	printf '%s\n' "$BREAD" >"$ITEMS/${d}bread"
	wait_has 'green tea' "${d}tea"
	wait_has 'bicycle chain' "${d}bike"
	wait_has 'telescope galaxies' "${d}stars"
	wait_has 'sourdough bread' "${d}bread"
}

@test "the root lists search/, which lists nothing and is read-only" {
	run ls -a "$MNT"
	assert_success
	assert_output $'.\n..\n.ctl\nitems\nsearch'
	run ls -A "$MNT/search"
	assert_success
	assert_output ''
	assert_equal "$(stat -c '%F %a' "$MNT/search")" 'directory 500'
}

@test "a query lists its best match first as 01-NAME, a link that reads the item" {
	write_topics
	run ls "$MNT/search/green tea"
	assert_success
	assert_line --index 0 '01-tea'
	assert_line 'results.json'
	assert_equal "$(readlink "$MNT/search/green tea/01-tea")" '../../items/tea'
	assert_equal "$(cat "$MNT/search/green tea/01-tea")" "$TEA"
	assert_equal "$(stat -c %F "$MNT/search/green tea/01-tea")" \
		'symbolic link'
	# each topic is the best match of its own words
	is_top 'bicycle chain' bike
	is_top 'telescope galaxies' stars
	is_top 'sourdough bread' bread
	# a question mark that ends the name ends a question, not options
	is_top 'what is sourdough bread?' bread
	# results.json: ranks 1..n, scores not increasing, every field
	run jq -e '(.partial == false) and
		([.results[].rank] == [range(1; (.results | length) + 1)]) and
		([.results[].score] == ([.results[].score] | sort | reverse)) and
		(.results | length == 4) and
		(.results[0] | (.path == "tea") and (.id | test("^[0-9a-f]{32}$"))
		 and (.kappa == 0) and (.importance == 0.5)
		 and (.type == "episodic") and (.score > 0.3))' \
		"$MNT/search/green tea/results.json"
	assert_success
	# the id is the item's
	assert_equal "$(jq -r '.results[0].id' "$MNT/search/green tea/results.json")" \
		"$(t4dx_xattr id "$ITEMS/tea")"
}

@test "k limits the results and sets the width of the rank" {
	write_topics
	run ls "$MNT/search/green tea?k=1"
	assert_success
	assert_output $'1-tea\nresults.json'
	run ls "$MNT/search/green tea?k=100"
	assert_success
	assert_line --index 0 '001-tea'
	assert_equal "$(ls "$MNT/search/green tea?k=2" | wc -l)" 3
	assert_equal "$(cat "$MNT/search/green tea?k=100/001-tea")" "$TEA"
}

@test "filters: under, type, kappa, since and until" {
	write_topics
	mkdir -p "$ITEMS/a/b"
	printf '%s, matcha\n' "$TEA" >"$ITEMS/a/b/tea2"
	printf 'oolong tea, green and fragrant\n' >"$ITEMS/a/tea3"
	wait_has 'green tea' a/b/tea2
	wait_has 'green tea' a/tea3

	assert_equal "$(pathset 'green tea?under=a')" 'a/b/tea2 a/tea3'
	assert_equal "$(paths 'green tea?under=a%2Fb')" 'a/b/tea2'
	run ls "$MNT/search/green tea?under=a%2Fb"
	assert_output $'01-tea2\nresults.json'

	setfattr -n user.t4dx.type -v semantic "$ITEMS/bike"
	assert_equal "$(paths 'green tea?type=semantic')" 'bike'
	has 'green tea?type=episodic' tea
	lacks 'green tea?type=episodic' bike

	setfattr -n user.t4dx.kappa -v 0.8 "$ITEMS/stars"
	setfattr -n user.t4dx.kappa -v 0.4 "$ITEMS/bread"
	assert_equal "$(paths 'green tea?min_kappa=0.5')" 'stars'
	assert_equal "$(paths 'green tea?min_kappa=0.3&max_kappa=0.5')" 'bread'
	run jq -e '[.results[].path] | index("stars") == null' \
		"$MNT/search/green tea?max_kappa=0.7/results.json"
	assert_success

	# event times: bike at the start of 2026, bread of 2030, the others
	# now
	setfattr -n user.t4dx.event_time -v 1767225600000000000 "$ITEMS/bike"
	setfattr -n user.t4dx.event_time -v 1893456000000000000 "$ITEMS/bread"
	assert_equal "$(paths 'green tea?until=2026-06-01T00:00:00Z')" 'bike'
	assert_equal "$(paths 'green tea?since=2029-06-01T00:00:00.5Z&until=1924992000000000000')" 'bread'
	assert_equal "$(paths 'green tea?since=1767225600000000000&until=2026-01-01T00:00:00Z')" 'bike'
	assert_equal "$(paths 'green tea?since=1767225600000000001&until=2026-01-01T00:00:00.999999999Z')" ''
}

@test "a deleted item is gone, an overwritten one is ranked by its new content" {
	write_topics
	rm "$ITEMS/tea"
	lacks 'green tea' tea
	run ls "$MNT/search/green tea"
	refute_output --partial 'tea'$'\n'
	refute_line --regexp '^[0-9]+-tea$'

	# bike becomes a text on stars: found first for stars once embedded
	printf '%s, a comet too\n' "$STARS" >"$ITEMS/bike"
	t4dx_wait_for 30 is_top 'comet telescope galaxies' bike ||
		fail "bike not re-ranked: $(results 'comet telescope galaxies')"
	# and never again first for bicycles
	refute [ "$(top 'bicycle chain')" == bike ]
	# a rename moves the result, and the kernel keeps no old link
	local q="$MNT/search/telescope galaxies"
	assert_equal "$(readlink "$q/01-stars")" ../../items/stars
	mv "$ITEMS/stars" "$ITEMS/sky"
	has 'telescope galaxies' sky
	lacks 'telescope galaxies' stars
	run readlink "$q/01-stars"
	assert_failure
	assert_equal "$(readlink "$q/01-sky")" ../../items/sky
	assert_equal "$(stat -c %s "$q/01-sky")" 15
	# the same link name, another place: a new target and size
	mkdir "$ITEMS/space"
	mv "$ITEMS/sky" "$ITEMS/space/sky"
	assert_equal "$(readlink "$q/01-sky")" ../../items/space/sky
	assert_equal "$(stat -c %s "$q/01-sky")" 21
	assert_equal "$(cat "$q/01-sky")" "$STARS"
}

@test "a link listed at one rank is still found by its listed name once its item moved to another rank" {
	printf 'quince jam\n' >"$ITEMS/first"
	printf 'quince quince tart\n' >"$ITEMS/second"
	wait_has 'quince' first
	wait_has 'quince' second
	local listed
	listed=$(ls "$MNT/search/quince" | grep -- '-first$')
	[[ -n $listed ]] || fail "first not listed"
	# the other item moves to the top, then away: ranks shift
	local before
	before=$(paths quince)
	if [[ $before == "first second" ]]; then
		printf 'quince\n' >"$ITEMS/second"
		t4dx_wait_for 30 is_top quince second || fail "ranks never moved: $(results quince)"
	else
		printf 'quince\n' >"$ITEMS/first"
		t4dx_wait_for 30 is_top quince first || fail "ranks never moved: $(results quince)"
	fi
	[[ $(paths quince) != "$before" ]] || fail "ranks did not move"
	# the name ls printed before still resolves, to the same item
	run readlink "$MNT/search/quince/$listed"
	assert_success
	assert_output ../../items/first
}

@test "results.json has the size it reads as, so copies of a query directory are whole" {
	write_topics
	local f="$MNT/search/green tea/results.json"
	run stat -c %s "$f"
	assert_output "$(wc -c <"$f")"
	[[ $output -gt 20 ]] || fail "size $output"
	rsync -a "$MNT/search/green tea/" "$T4DX_TMP/copy/"
	run jq -r '.results[0].path' "$T4DX_TMP/copy/results.json"
	assert_output tea
}

@test "a second listing of a query directory computes it again" {
	write_topics
	(
		cd "$MNT/search/green tea" || exit 1
		first=$(ls)
		[[ $first == *tea* ]] || exit 2
		rm "$ITEMS/tea"
		second=$(ls)
		[[ $second != *-tea* ]] || exit 3
		printf '%s\n' "$TEA" >"$ITEMS/tea"
		t4dx_wait_for 30 eval '[[ $(ls) == 01-tea* ]]' || exit 4
	)
}

# search_count NAME: the daemon's counter t4dx_search_NAME_total.
search_count() {
	awk -v m="t4dx_search_$1_total" '$1 == m { print $2 }' \
		"$MNT/.ctl/metrics"
}

@test "an answer is reused while the store is unchanged: ls -l of a query is one search" {
	write_topics
	t4dx_wait_ctl 30 stats '.vectors.busy == false'
	local q="$MNT/search/green tea" runs reused out
	runs=$(search_count runs)
	reused=$(search_count reused)
	out=$(ls -l "$q")
	[[ $out == *"01-tea -> ../../items/tea"* ]] || fail "ls -l: $out"
	# the listing computes it (or takes the last answer), and every
	# lookup of a link that follows takes that answer
	(($(search_count runs) - runs <= 1)) ||
		fail "ls -l ran $(($(search_count runs) - runs)) searches"
	(($(search_count reused) - reused >= 4)) ||
		fail "ls -l reused $(($(search_count reused) - reused)) answers"
}

@test "a kept answer is never served past a change: a new better match, a deletion, nrem" {
	write_topics
	t4dx_wait_ctl 30 stats '.vectors.busy == false'
	local q='green tea' runs
	is_top "$q" tea
	runs=$(search_count runs)
	is_top "$q" tea                 # the same answer, not computed again
	assert_equal "$(search_count runs)" "$runs"
	printf 'green tea\n' >"$ITEMS/best"
	t4dx_wait_for 30 is_top "$q" best || fail "$(results "$q")"
	rm "$ITEMS/best"
	is_top "$q" tea
	lacks "$q" best
	# nrem changes kappa in a new segment, with nothing in the memtable
	# (flushed first): the segments are part of the stamp
	t4dx_wait_ctl 30 stats '.vectors.busy == false'
	echo flush >"$MNT/.ctl/compact"
	assert_equal "$(jq -r '.results[0].kappa' "$MNT/search/$q/results.json")" 0
	runs=$(search_count runs)
	assert_equal "$(jq -r '.results[0].kappa' "$MNT/search/$q/results.json")" 0
	assert_equal "$(search_count runs)" "$runs"
	echo nrem >"$MNT/.ctl/compact"
	assert_equal "$(jq -r '.results[0].kappa' "$MNT/search/$q/results.json")" 0.05
}

@test "results survive a restart and a kill -9" {
	write_topics
	t4dx_remount
	wait_has 'green tea' tea
	is_top 'green tea' tea
	is_top 'bicycle chain' bike

	printf 'volcano lava eruption magma\n' >"$ITEMS/volcano"
	wait_has 'volcano magma' volcano
	t4dx_kill9
	t4dx_start
	# every item that was closed is there, and found again (a vector not
	# yet durable at the kill is computed again)
	t4dx_wait_for 30 is_top 'volcano magma' volcano ||
		fail "after kill -9: $(results 'volcano magma')"
	is_top 'sourdough bread' bread
}

@test "a deleted and an overwritten item of a segment stay so in search after a kill -9" {
	write_topics
	t4dx_wait_ctl 30 stats '.vectors.busy == false'
	echo flush >"$MNT/.ctl/compact"
	rm "$ITEMS/tea"
	printf 'volcano lava eruption magma\n' >"$ITEMS/bike"
	wait_has 'volcano magma' bike
	lacks 'green tea' tea
	! is_top 'bicycle chain' bike || fail "$(results 'bicycle chain')"
	t4dx_kill9
	t4dx_start
	# every item is a result of some score; the deleted one of none,
	# the overwritten one by its new content only
	lacks 'green tea' tea
	[[ $(jq '.results | length' "$MNT/search/green tea/results.json") == 3 ]]
	! is_top 'bicycle chain' bike || fail "$(results 'bicycle chain')"
	is_top 'volcano magma' bike
	is_top 'sourdough bread' bread
}

@test "results follow nrem and prune" {
	write_topics
	setfattr -n user.t4dx.importance -v 0.05 "$ITEMS/bread"
	echo nrem >"$MNT/.ctl/compact"
	is_top 'green tea' tea
	is_top 'sourdough bread' bread
	assert_equal "$(jq -r '.results[] | select(.path == "tea") | .kappa' \
		"$MNT/search/green tea/results.json")" 0.05
	echo prune >"$MNT/.ctl/compact"
	lacks 'sourdough bread' bread
	is_top 'green tea' tea
	is_top 'telescope galaxies' stars
}

@test "vector.min_recall: an index is scanned or walked as measured, .ctl/stats counts them by mode, the answers agree" {
	local cfg id ans
	cfg=$(t4dx_config_file '{"vector":{"index_min_items":4,"min_recall":1.01}}')
	t4dx_remount -o "config=$cfg"
	write_topics
	echo flush >"$MNT/.ctl/compact"
	id=$(t4dx_xattr id "$ITEMS/tea")
	# the first search loads the index and tunes it: above 1, a scan
	ans=$(results "@$id")
	run jq -c .indexes "$MNT/.ctl/stats"
	assert_output --regexp '^\{"graph":0,"scan":1,"scan_bytes":[1-9][0-9]*\}$'
	is_top 'green tea' tea
	# 0: the graph, nothing measured; the same answer
	cfg=$(t4dx_config_file '{"vector":{"index_min_items":4,"min_recall":0}}')
	t4dx_remount -o "config=$cfg"
	assert_equal "$(results "@$id")" "$ans"
	run jq -c .indexes "$MNT/.ctl/stats"
	assert_output '{"graph":1,"scan":0,"scan_bytes":0}'
}

@test "@ID finds the items like an item, without it" {
	write_topics
	printf '%s, and jasmine tea\n' "$TEA" >"$ITEMS/tea2"
	wait_has 'jasmine' tea2
	local id
	id=$(t4dx_xattr id "$ITEMS/tea")
	is_top "@$id" tea2
	lacks "@$id" tea
	run ls "$MNT/search/@$id?k=1"
	assert_output $'1-tea2\nresults.json'
	# the item moved (the query remembers where it found it last):
	# found again where it is now, and still left out
	mkdir "$ITEMS/moved"
	mv "$ITEMS/tea" "$ITEMS/moved/tea"
	exec 8<"$MNT/search/@$id?k=1"   # the kernel keeps the query
	run ls "$MNT/search/@$id?k=1"
	assert_output $'1-tea2\nresults.json'
	lacks "@$id" moved/tea
	exec 8<&-
	# an unknown id
	run ls "$MNT/search/@0123456789abcdef0123456789abcdef"
	assert_failure
	assert_output --partial 'No such file or directory'
	# an item without a vector (binary content) finds nothing
	printf '\x00\x01\x02binary' >"$ITEMS/blob"
	id=$(t4dx_xattr id "$ITEMS/blob")
	assert_equal "$(results "@$id")" '{"partial":false,"results":[]}'
}

@test "@ID with k=1000 gives 1000 others when more than 1000 match" {
	local i
	for i in $(seq 1 1002); do
		printf 'green tea note %d\n' "$i" >"$ITEMS/t$i"
	done
	t4dx_wait_ctl 60 stats '.vectors.busy == false'
	local id
	id=$(t4dx_xattr id "$ITEMS/t1")
	run jq '.results | length' "$MNT/search/@$id?k=1000/results.json"
	assert_output 1000
	run jq '[.results[].path] | index("t1")' \
		"$MNT/search/@$id?k=1000/results.json"
	assert_output null
}

@test "a vector of zeros finds nothing; with embedder off a text query is EINVAL, @ID works" {
	write_topics
	local zeros id
	zeros=$(jq -cn '[range(256) | 0]')
	setfattr -n user.t4dx.vector -v "$zeros" "$ITEMS/bike"
	id=$(t4dx_xattr id "$ITEMS/bike")
	assert_equal "$(results "@$id")" '{"partial":false,"results":[]}'
	id=$(t4dx_xattr id "$ITEMS/tea")
	local cfg
	cfg=$(t4dx_config_file '{"vector":{"embedder":"off"}}')
	t4dx_remount -o "config=$cfg"
	run ls "$MNT/search/green tea"
	assert_failure
	assert_output --partial 'Invalid argument'
	grep -q 'a text query needs an embedder' "$T4DX_LOG" ||
		fail "log: $(cat "$T4DX_LOG")"
	run ls "$MNT/search/@$id"
	assert_success
	assert_line 'results.json'
}

@test "text without a word finds nothing, without an error" {
	write_topics
	assert_equal "$(results '...  ,,')" '{"partial":false,"results":[]}'
	assert_equal "$(results '?k=3')" '{"partial":false,"results":[]}'
	run ls "$MNT/search/--"
	assert_success
	assert_output 'results.json'
}

@test "bad options answer EINVAL with the reason in the log" {
	local q
	for q in 'tea?k=0' 'tea?k=1001' 'tea?k=x' 'tea?k=' 'tea?k' 'tea?color=red' \
		'tea?type=dream' 'tea?min_kappa=2' 'tea?max_kappa=-0.1' \
		'tea?min_kappa=nan' 'tea?since=yesterday' \
		'tea?until=2026-02-30T00:00:00Z' 'tea?since=2026-12-02T10:00:00' \
		'tea?k=2&k=3' 'tea?min_kappa=0.6&max_kappa=0.5' 'tea?under=..' \
		'tea?under=%zz' 'tea?&k=2' '@12' '@0123456789abcdef0123456789abcdeg' \
		'tea?since=2026-12-02T10:00:00.1234567891Z' 'tea??'; do
		run ls "$MNT/search/$q"
		assert_failure
		assert_output --partial 'Invalid argument'
	done
	grep -q "unknown option 'color'" "$T4DX_LOG" ||
		fail "no reason in the log: $(cat "$T4DX_LOG")"
	grep -q "bad k: k must be a whole number" "$T4DX_LOG"
	# a directory that is not there, a file that is not a directory
	printf 'x\n' >"$ITEMS/file"
	run ls "$MNT/search/tea?under=nowhere"
	assert_failure
	assert_output --partial 'No such file or directory'
	run ls "$MNT/search/tea?under=file"
	assert_failure
	assert_output --partial 'Not a directory'
	# the daemon serves on
	run ls "$MNT/search/tea?k=1000"
	assert_success
}

@test "a 255-byte query works, 256 bytes is ENAMETOOLONG" {
	write_topics
	local q255 q256
	q255="green tea $(printf 'x%.0s' {1..245})"
	q256="${q255}y"
	assert_equal "${#q255}" 255
	run ls "$MNT/search/$q255"
	assert_success
	assert_line --index 0 '01-tea'
	run ls "$MNT/search/$q256"
	assert_failure
	assert_output --partial 'File name too long'
}

@test "a link name longer than 255 bytes is cut to fit" {
	local long
	long="tea-$(printf 'é%.0s' {1..125})"      # 4 + 250 bytes
	printf '%s\n' "$TEA" >"$ITEMS/$long"
	wait_has 'green tea' "$long"
	local name
	name=$(ls "$MNT/search/green tea" | head -n 1)
	assert_equal "${name:0:7}" '01-tea-'
	(($(printf '%s' "$name" | wc -c) <= 255)) || fail "name too long"
	# cut at a character, not in one
	printf '%s' "$name" | iconv -f UTF-8 -t UTF-8 >/dev/null
	assert_equal "$(cat "$MNT/search/green tea/$name")" "$TEA"
}

@test "nothing under search/ can be changed (EACCES)" {
	write_topics
	local q="$MNT/search/green tea"
	ls "$q" >/dev/null
	run touch "$q/new"
	assert_failure
	assert_output --partial 'Permission denied'
	run rm "$q/01-tea"
	assert_failure
	assert_output --partial 'Permission denied'
	run mv "$q/01-tea" "$ITEMS/moved"
	assert_failure
	assert_output --partial 'Permission denied'
	run bash -c 'echo x >"$1"' _ "$q/results.json"
	assert_failure
	assert_output --partial 'Permission denied'
	run setfattr -n user.t4dx.kappa -v 0.5 "$q/results.json"
	assert_failure
	assert_output --partial 'Permission denied'
	run mkdir "$q/dir"
	assert_failure
	assert_output --partial 'Permission denied'
	run rmdir "$q"
	assert_failure
	run chmod 777 "$q"
	assert_failure
	# the item is untouched
	assert_equal "$(cat "$ITEMS/tea")" "$TEA"
	assert_file_not_exists "$ITEMS/moved"
}

@test "t4dx search prints rank, score, path and first line; --json the results" {
	write_topics
	printf 'escape \033[2J here\nsecond line\n' >"$ITEMS/esc"
	wait_has 'escape here' esc
	run "$T4DX" search "$MNT" 'green tea'
	assert_success
	assert_line --index 0 --regexp "^ 1  0\.[0-9]{3}  tea  $TEA\$"
	run "$T4DX" search -k 2 "$MNT" 'escape here'
	assert_success
	assert_equal "${#lines[@]}" 2
	assert_line --index 0 --regexp '^ 1  0\.[0-9]{3}  esc  escape \\x1b\[2J here$'
	run "$T4DX" search --json -k 3 "$MNT" 'green tea'
	assert_success
	assert_equal "$(jq -c . <<<"$output")" "$(results 'green tea?k=3')"
	# an id, a '/' and a '?' in the text
	run "$T4DX" search "$MNT" "@$(t4dx_xattr id "$ITEMS/tea")"
	assert_success
	refute_output --regexp '  tea  '
	run "$T4DX" search "$MNT" 'bicycle/chain?'
	assert_success
	assert_line --index 0 --regexp '^ 1  0\.[0-9]{3}  bike  '
	run "$T4DX" search "$MNT" '@0123456789abcdef0123456789abcdef'
	assert_failure 1
	assert_output --partial 'no item has the id'
	run "$T4DX" search -k 0 "$MNT" tea
	assert_failure 2
}

# partial QUERY: results.json of QUERY says partial.
partial() {
	jq -e '.partial == true' "$MNT/search/$1/results.json" >/dev/null
}

@test "at level 2 (segments unreadable) a search answers, partial" {
	t4dx_have_fiu || skip "libfiu is missing"
	t4dx_stop
	t4dx_start_fiu
	printf '%s\n' "$TEA" >"$ITEMS/tea"
	printf '%s\n' "$BIKE" >"$ITEMS/bike"
	wait_has 'green tea' bike
	refute partial 'green tea'
	# into a segment, and no read of it since
	echo flush >"$MNT/.ctl/compact"
	t4dx_fiu 'enable name=posix/io/rw/pread,failinfo=5'
	# a read of an item that is in no cache fails over to level 2
	cat "$ITEMS/bike" >/dev/null || true
	t4dx_wait_ctl 10 health '.level == 2'
	# what can be read is searched (the segment's last block may still
	# be cached), and the answer says it may be incomplete
	run jq -e '.partial == true and (.results | type == "array")' \
		"$MNT/search/green tea/results.json"
	assert_success
	run ls "$MNT/search/bicycle chain"
	assert_success
	assert_line results.json
	run "$T4DX" search "$MNT" 'green tea'
	assert_success
	assert_line --index 0 --partial '(partial'
	t4dx_fiu 'disable name=posix/io/rw/pread'
}
