#!/usr/bin/env bats
# searchhostile.bats - what hostile use found in search/ and in
# user.t4dx.vector with real programs: spellings of numbers and times that
# were taken one way in one place and another way elsewhere.

load ../lib/mount

setup() {
	t4dx_setup
}

# vec N VALUE: a JSON array of N copies of VALUE.
vec() {
	local a i
	a=$2
	for ((i = 1; i < $1; i++)); do
		a+=",$2"
	done
	printf '[%s]' "$a"
}

has() {
	jq -e --arg p "$2" '.results | any(.path == $p)' \
		"$MNT/search/$1/results.json" >/dev/null
}

@test "a vector value spelt in digits beyond a float is EINVAL, as it is spelt with an exponent" {
	t4dx_start
	printf 'kiwi orchard\n' >"$ITEMS/f"
	setfattr -n user.t4dx.vector -v "$(vec 256 0.25)" "$ITEMS/f"
	# 1e41 with an exponent: refused, nothing changes
	run setfattr -n user.t4dx.vector -v "$(vec 256 1e41)" "$ITEMS/f"
	assert_failure
	assert_output --partial 'Invalid argument'
	# the same number in digits (json-c reads digits past 64 bits as
	# UINT64_MAX, without an error): refused too, not 1.8446744e+19
	run setfattr -n user.t4dx.vector \
		-v "$(vec 256 100000000000000000000000000000000000000000)" "$ITEMS/f"
	assert_failure
	assert_output --partial 'Invalid argument'
	run setfattr -n user.t4dx.vector \
		-v "$(vec 256 -100000000000000000000000000000000000000000)" "$ITEMS/f"
	assert_failure
	assert_equal "$(getfattr --only-values -n user.t4dx.vector "$ITEMS/f" |
		jq -c 'unique')" '[0.25]'
	# digits past 64 bits that fit a float keep their value
	setfattr -n user.t4dx.vector -v "$(vec 256 18446744073709551616000)" "$ITEMS/f"
	getfattr --only-values -n user.t4dx.vector "$ITEMS/f" |
		jq -e '(unique | length) == 1 and .[0] > 1.8e22 and .[0] < 1.9e22'
}

@test "kappa bounds are decimal numbers: a leading space or a hex float is EINVAL, as for k" {
	t4dx_start
	printf 'green tea leaves\n' >"$ITEMS/tea"
	t4dx_wait_for 30 has 'green tea' tea || fail "tea never found"
	local q
	for q in 'green tea?k= 5' 'green tea?min_kappa= 0.5' \
		'green tea?max_kappa=%200.5' 'green tea?min_kappa=0x1p-1' \
		'green tea?max_kappa=+1'; do
		run ls "$MNT/search/$q"
		assert_failure
		assert_output --partial 'Invalid argument'
	done
	has 'green tea?min_kappa=0&max_kappa=1e0' tea
	has 'green tea?max_kappa=.5' tea
	has 'green tea?min_kappa=-0' tea
}

@test "a leap second (:60) means the same at the end of a day as in its middle" {
	t4dx_start
	printf 'green tea leaves\n' >"$ITEMS/tea"
	t4dx_wait_for 30 has 'green tea' tea || fail "tea never found"
	# 2026-07-01T00:00:00Z and 2026-06-30T10:01:00Z
	setfattr -n user.t4dx.event_time -v 1782864000000000000 "$ITEMS/tea"
	# :60 is the first second of the next minute, wherever it falls
	has 'green tea?since=2026-06-30T23:59:60Z' tea
	has 'green tea?until=2026-06-30T23:59:60Z' tea
	setfattr -n user.t4dx.event_time -v 1782813660000000000 "$ITEMS/tea"
	has 'green tea?since=2026-06-30T10:00:60Z' tea
	has 'green tea?until=2026-06-30T10:00:60Z' tea
	# and :61 is nothing
	run ls "$MNT/search/green tea?since=2026-06-30T10:00:61Z"
	assert_failure
	assert_output --partial 'Invalid argument'
}

@test "the kappa results.json shows is the one the filters compare: max_kappa of it keeps the item" {
	t4dx_start
	printf 'green tea leaves\n' >"$ITEMS/tea"
	t4dx_wait_for 30 has 'green tea' tea || fail "tea never found"
	# three nrem boosts of 0.05 from 0 make 0.15000000000000002, and
	# a kappa set by hand may have more than 6 digits
	local k kj
	for k in 0.15000000000000002 0.1234567 0.999999999; do
		setfattr -n user.t4dx.kappa -v "$k" "$ITEMS/tea"
		kj=$(jq -r '.results[] | select(.path == "tea") | .kappa' \
			"$MNT/search/green tea/results.json")
		assert_equal "$(getfattr --only-values -n user.t4dx.kappa "$ITEMS/tea")" "$kj"
		has "green tea?min_kappa=$kj&max_kappa=$kj" tea ||
			fail "results.json says kappa $kj; max_kappa=$kj leaves it out"
	done
	setfattr -n user.t4dx.importance -v 0.1234567 "$ITEMS/tea"
	assert_equal "$(jq -r '.results[] | select(.path == "tea") | .importance' \
		"$MNT/search/green tea/results.json")" 0.1234567
}

@test "the search that finds a segment damaged answers what it could read, partial, not EIO" {
	# no health check before the search (interval 30 s), and no index:
	# the search itself reads the segment's blocks
	t4dx_start
	local i
	for i in $(seq 1 40); do
		printf 'filler %s %s\n' "$i" "$(printf 'lorem ipsum dolor %.0s' $(seq 60))" \
			>"$ITEMS/fill$i"
	done
	t4dx_wait_ctl 30 stats '.vectors.busy == false'
	t4dx_ctl_echo compact flush
	local seg=("$DATA"/seg/*.t4s)
	[[ ${#seg[@]} == 1 ]] || fail "not one segment: ${seg[*]}"
	printf 'zanzibar spice island\n' >"$ITEMS/mem"
	t4dx_wait_for 30 has 'zanzibar spice' mem || fail "mem never found"
	assert_equal "$(jq -r .level "$MNT/.ctl/health")" 0
	local size
	size=$(stat -c %s "${seg[0]}")
	head -c 4000 /dev/urandom |
		dd of="${seg[0]}" bs=1 seek=$((size / 3)) conv=notrunc 2>/dev/null
	# the first search to read the damaged block: level 2 from then on,
	# and its own answer is already what the store could still read
	run jq -c . "$MNT/search/lorem ipsum zanzibar?k=100/results.json"
	assert_success
	jq -e '.partial == true' <<<"$output" || fail "not partial: $output"
	jq -e '.results | any(.path == "mem")' <<<"$output" ||
		fail "mem not found: $output"
	assert_equal "$(jq -r .level "$MNT/.ctl/health")" 2
}

@test "three nrem boosts of 0.05 make kappa 0.15, which max_kappa=0.15 and prune_min_kappa 0.15 take as 0.15" {
	t4dx_start -o "config=$(t4dx_config_file \
		'{"compaction": {"prune_min_kappa": 0.15, "prune_max_importance": 1}}')"
	printf 'green tea leaves\n' >"$ITEMS/tea"
	setfattr -n user.t4dx.kappa -v 0 "$ITEMS/tea"
	t4dx_wait_for 30 has 'green tea' tea || fail "tea never found"
	local i
	for i in 1 2 3; do
		t4dx_ctl_echo compact nrem
	done
	# 0 + 0.05 + 0.05 + 0.05 in doubles is 0.15000000000000002
	assert_equal "$(getfattr --only-values -n user.t4dx.kappa "$ITEMS/tea")" 0.15
	has 'green tea?max_kappa=0.15' tea
	t4dx_ctl_echo compact prune
	assert_file_not_exists "$ITEMS/tea"
}

@test "t4dx search: a text that starts with @ and has 33 bytes is a text unless it is an id" {
	t4dx_start
	printf 'team meeting notes for mondays\n' >"$ITEMS/team"
	t4dx_wait_for 30 has 'team meeting' team || fail "team never found"
	# 33 bytes, '@' first: a mention, not 32 hex digits
	run "$T4DX" search "$MNT" '@team-meeting notes for mondays!!'
	assert_success
	assert_line --regexp '^ 1  [0-9.]+  team  team meeting notes for mondays$'
	# an id still searches by id (the item itself left out)
	run "$T4DX" search "$MNT" "@$(getfattr --only-values -n user.t4dx.id "$ITEMS/team")"
	assert_success
	refute_output --partial '  team  '
	run "$T4DX" search "$MNT" '@0123456789abcdef0123456789abcdef'
	assert_failure 1
	assert_output --partial 'no item has the id'
}
