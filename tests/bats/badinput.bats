#!/usr/bin/env bats
# badinput.bats - hostile and malformed input is refused with an error,
# changes nothing, and the daemon keeps serving (DESIGN.md sections 2, 5
# and 8): random and oversized writes to the writable control files
# (breaker, compact), any write to the read-only ones, attribute values
# that are not plain decimal numbers in range (nan, inf, hex floats,
# padding, trailing junk, NUL bytes), and configuration files that are
# binary garbage, not JSON, or hold values of the wrong type or out of
# range, which stop the start with a message naming the problem.
#
# After every refusal at runtime a normal write and read must still work.

load ../lib/mount

# payload NAME: make file T4DX_TMP/NAME and print its path.
#   rand300 rand64k   random bytes
#   CMD-x50 CMD-64k   a valid command CMD with its newline, repeated to
#                     300 bytes / 64 KiB
#   CMD-nul           CMD, then 295 NUL bytes
#   CMD-junk          "CMD\n", then 300 random bytes
payload() {
	local f=$T4DX_TMP/payload.$1 cmd=${1%%-*} n
	case $1 in
	rand300) head -c 300 /dev/urandom >"$f" ;;
	rand64k) head -c 65536 /dev/urandom >"$f" ;;
	*-x50) yes "$cmd" | head -c 300 >"$f" ;;
	*-64k) yes "$cmd" | head -c 65536 >"$f" ;;
	*-nul) { printf '%s' "$cmd"; head -c 295 /dev/zero; } >"$f" ;;
	*-junk) { printf '%s\n' "$cmd"; head -c 300 /dev/urandom; } >"$f" ;;
	*) fail "payload $1?" ;;
	esac
	n=$(stat -c %s "$f")
	((n >= 300)) || fail "payload $1 has $n bytes"
	printf '%s\n' "$f"
}

# still_serving: a normal write and read work.
still_serving() {
	local v="serving $RANDOM"
	run bash -c 'printf "%s\n" "$2" >"$1" && cat "$1"' _ "$ITEMS/probe-item" "$v"
	assert_success
	assert_output "$v"
}

# ctl_state NAME: what must not change when a write to .ctl/NAME is
# refused.
ctl_state() {
	case $1 in
	breaker) jq -c '{state, forced, transitions, failures, consecutive_failures}' "$MNT/.ctl/breaker" ;;
	compact) jq -c '[.flush.runs, .nrem.runs, .prune.runs, .running]' "$MNT/.ctl/compact" &&
		jq -c '[.segments, .items]' "$MNT/.ctl/stats" ;;
	esac
}

@test "random and oversized writes to breaker and compact are refused and change nothing" {
	t4dx_start
	printf 'x\n' >"$ITEMS/x"
	local name cmd p before f
	for name in breaker compact; do
		case $name in breaker) cmd=open ;; compact) cmd=flush ;; esac
		for p in rand300 rand64k "$cmd-x50" "$cmd-64k" "$cmd-nul" "$cmd-junk"; do
			f=$(payload "$p")
			before=$(ctl_state "$name") || fail "ctl_state $name"
			run t4dx_ctl_write_file "$name" "$f"
			((status != 0)) || fail "$p ($(stat -c %s "$f") bytes) to .ctl/$name was accepted"
			[[ $output == *"Invalid argument"* || $output == *"File too large"* ]] ||
				fail "$p to .ctl/$name: '$output' (want EINVAL or EFBIG)"
			run ctl_state "$name"
			assert_output "$before"
			# the same in 4 KiB writes (dd, one write(2) each)
			run dd if="$f" of="$MNT/.ctl/$name" bs=4k status=none
			assert_failure
			run ctl_state "$name"
			assert_output "$before"
			still_serving
		done
	done
	# and the files still do their job
	t4dx_ctl_echo breaker open
	run jq -r .state "$MNT/.ctl/breaker"
	assert_output OPEN
	t4dx_ctl_echo breaker reset
	t4dx_ctl_echo compact flush
	run jq -e '.flush.runs == 1' "$MNT/.ctl/compact"
	assert_success
	still_serving
}

@test "writes to the read-only control files are refused, random or oversized, plain or appended" {
	t4dx_start
	local name p f config_before
	config_before=$(cat "$MNT/.ctl/config")
	for name in alerts config health metrics stats; do
		for p in rand300 rand64k; do
			f=$(payload "$p")
			run t4dx_ctl_write_file "$name" "$f"
			assert_failure
			assert_output --regexp 'Permission denied|Operation not permitted|Read-only file system'
			run bash -c 'cat -- "$2" >>"$1"' _ "$MNT/.ctl/$name" "$f"
			assert_failure
		done
		run bash -c ': >"$1"' _ "$MNT/.ctl/$name"
		assert_failure
		still_serving
	done
	run cat "$MNT/.ctl/config"
	assert_output "$config_before"
	local json
	for json in health stats; do
		run jq -e 'type == "object"' "$MNT/.ctl/$json"
		assert_success
	done
	run grep -c '^t4dx_' "$MNT/.ctl/metrics"
	refute_output 0
}

# setx FILE ATTR VALUE: setxattr user.t4dx.ATTR of FILE to the bytes of
# VALUE, where backslash escapes (\t, \n, \xHH, NUL too) stand for bytes;
# given to setfattr hex-encoded, so that any byte passes.  Prints the error.
setx() {
	local hex out
	hex=$(printf '%b' "$3" | od -An -v -tx1 | tr -d ' \n')
	if [[ -z $hex ]]; then
		out=$(setfattr -n "user.t4dx.$2" -v '""' -- "$1" 2>&1) && return 0
	else
		out=$(setfattr -n "user.t4dx.$2" -v "0x$hex" -- "$1" 2>&1) && return 0
	fi
	printf '%s\n' "${out##*: }"
	return 1
}

# refuse_values ATTR GOOD VALUE...: GOOD is accepted; then each VALUE is
# refused with EINVAL (a value too large for the kernel may be E2BIG or
# ERANGE), the attribute keeps GOOD, no data record reaches the WAL, and
# the daemon serves.  Lists every value that was handled wrongly.
refuse_values() {
	local attr=$1 good=$2 v lsn got probs=()
	shift 2
	printf 'x\n' >"$ITEMS/f"
	setx "$ITEMS/f" "$attr" "$good" || fail "the good value $good of $attr was refused"
	lsn=$(t4dx_stat_field wal_lsn)
	for v in "$@"; do
		run setx "$ITEMS/f" "$attr" "$v"
		if ((status == 0)); then
			probs+=("'${v:0:60}' accepted, $attr now '$(t4dx_xattr "$attr" "$ITEMS/f")'")
			setx "$ITEMS/f" "$attr" "$good"
			lsn=$(t4dx_stat_field wal_lsn)
			continue
		fi
		if ((${#v} < 1000)) && [[ $output != "Invalid argument" ]]; then
			probs+=("'$v' refused with '$output', not EINVAL")
		fi
		got=$(t4dx_xattr "$attr" "$ITEMS/f") || fail "cannot read $attr"
		if [[ $got != "$good" ]] && ! t4dx_num_eq "$got" "$good" >/dev/null; then
			probs+=("'${v:0:60}' refused but $attr is now '$got'")
		fi
	done
	((${#probs[@]} == 0)) || fail "user.t4dx.$attr (good value $good):
$(printf '  %s\n' "${probs[@]}")"
	run t4dx_data_ops_since "$lsn"
	assert_success
	assert_output ''
	still_serving
}

# Number-shaped strings that are not a plain decimal in 0..1: special
# values, hex (integers and floats: refused), padding, trailing junk,
# embedded NUL, overflow, other digits, locale commas, garbage.
BAD_UNIT=(nan NaN -nan +nan inf -inf +inf infinity Infinity INF
	1.5 -0.1 1.0000001 2 -1 1e309 -1e309 1e3
	0x1p-1 0X.8P0 0x0 0x1
	'' ' ' ' 0.5' '0.5 ' '\t0.5' '0.5\t' '0.5\n0.6'
	0.5x 0.5.5 '0,5' --0.5 +-0.5 . - e5 0.5e 0.5e+
	'0.5\x00' '0.5\x00junk' '\x000.5'
	'\xd9\xa0.\xd9\xa5' '\xef\xbc\x90.\xef\xbc\x95')

@test "xattr kappa: nan, inf, hex floats, padding, trailing junk, NUL, huge values are EINVAL and change nothing" {
	t4dx_start
	local big
	big=$(head -c 300 /dev/zero | tr '\0' 'x')
	refuse_values kappa 0.25 "${BAD_UNIT[@]}" "$big" "$(head -c 65000 /dev/zero | tr '\0' '9')"
}

@test "xattr importance: the same bad values are EINVAL and change nothing" {
	t4dx_start
	refuse_values importance 0.75 "${BAD_UNIT[@]}" "$(head -c 300 /dev/urandom | tr -d '\0' | base64 -w0)"
}

@test "xattr type and event_time: padding, junk, NUL, overflow and non-decimal forms are EINVAL" {
	t4dx_start
	refuse_values type semantic ' semantic' 'semantic ' 'semantic\x00' \
		'semantic\x00procedural' 'semantic,episodic' 'semanticx' \
		"$(head -c 300 /dev/zero | tr '\0' 's')"
	refuse_values event_time 1700000000000000000 nan inf 1.5 0x10 \
		' 5' '5 ' 5x '5\x00' '5\x009' 9223372036854775808 \
		18446744073709551616 -9223372036854775809 '' "$(head -c 300 /dev/zero | tr '\0' '7')"
}

# ---- configuration files ------------------------------------------------------

# refuse_config DESC FILE [WORD...]: a start with FILE as its config fails
# (not by timeout), nothing is mounted, and the message names FILE or one
# of the WORDs (the key at fault).
refuse_config() {
	local desc=$1 cfg=$2 w named=
	shift 2
	t4dx_run_daemon -o "config=$cfg" "$DATA" "$MNT" >/dev/null
	if ((status == 0 || status == 124)); then
		fail "config $desc: t4dxfs exited with status $status: $output"
	fi
	! t4dx_is_mounted "$MNT" || fail "config $desc: $MNT is mounted"
	for w in "$cfg" "$@"; do
		[[ $output == *"$w"* ]] && named=1
	done
	[[ -n $named ]] || fail "config $desc: the message names neither the file nor ${*:-a key}: $output"
	# a message, not a crash
	[[ $output != *AddressSanitizer* && $output != *"runtime error"* ]] ||
		fail "config $desc: $output"
	((status < 128)) || fail "config $desc: t4dxfs died of a signal (status $status): $output"
}

# raw_config NAME PRINTF-FORMAT: a config file with the bytes of
# printf FORMAT (so \000 and \xHH can be given); prints its path.
raw_config() {
	local f=$T4DX_TMP/raw.$1.json
	printf "$2" >"$f"
	printf '%s\n' "$f"
}

@test "config files of binary garbage, NUL bytes, other encodings or deep nesting are refused with a message" {
	local f
	f=$T4DX_TMP/random.json
	head -c 4096 /dev/urandom >"$f"
	refuse_config "4 KiB of random bytes" "$f"
	refuse_config "JSON, NUL, more JSON" "$(raw_config nul1 '{"breaker":{}}\000{"breaker":5}')"
	refuse_config "JSON then a NUL" "$(raw_config nul2 '{"health":{}}\000')"
	refuse_config "a NUL, then JSON" "$(raw_config nul3 '\000{}')"
	refuse_config "a NUL inside a key" "$(raw_config nul4 '{"breaker":{"failure\000_threshold":2}}')" \
		breaker failure
	refuse_config "UTF-16LE" "$(raw_config utf16 '\377\376{\000}\000')"
	refuse_config "invalid UTF-8 in a key" "$(raw_config badutf8 '{"breaker":{"fail\377":2}}')" breaker
	f=$T4DX_TMP/deep.json
	{ head -c 100000 /dev/zero | tr '\0' '['; } >"$f"
	refuse_config "100000 nested arrays" "$f"
	f=$T4DX_TMP/deepobj.json
	{ printf '{"breaker":'; for ((i = 0; i < 2000; i++)); do printf '{"a":'; done; printf '1'; } >"$f"
	refuse_config "2000 nested objects" "$f" breaker
	mkdir "$T4DX_TMP/dir.json"
	refuse_config "a directory" "$T4DX_TMP/dir.json"
	# after all that, a good file starts
	t4dx_start -o "config=$(t4dx_config_file '{"breaker":{"failure_threshold":3}}')"
	run jq -e '.failure_threshold == 3' "$MNT/.ctl/breaker"
	assert_success
	still_serving
}

@test "config values that are NaN, infinite, huge, of the wrong type or out of range are refused, naming the key" {
	local k json
	while IFS='|' read -r k json; do
		[[ -n $k ]] || continue
		refuse_config "$json" "$(t4dx_config_file "$json")" "$k"
	done <<'EOF'
breaker.reset_timeout_s|{"breaker":{"reset_timeout_s":NaN}}
breaker.reset_timeout_s|{"breaker":{"reset_timeout_s":Infinity}}
health.interval_s|{"health":{"interval_s":-Infinity}}
health.interval_s|{"health":{"interval_s":1e999}}
health.timeout_s|{"health":{"timeout_s":nan}}
compaction.nrem_kappa_boost|{"compaction":{"nrem_kappa_boost":NaN}}
breaker.failure_threshold|{"breaker":{"failure_threshold":1e30}}
breaker.failure_threshold|{"breaker":{"failure_threshold":18446744073709551616}}
fallback.max_queue|{"fallback":{"max_queue":1e30}}
fallback.max_queue|{"fallback":{"max_queue":20.5}}
fallback.max_queue|{"fallback":{"max_queue":"20"}}
fallback.max_items|{"fallback":{"max_items":"1000"}}
fallback.max_items|{"fallback":{"max_items":-1}}
fallback.drain_batch|{"fallback":{"drain_batch":true}}
fallback.drain_batch|{"fallback":{"drain_batch":0}}
fallback.drain_batch|{"fallback":{"drain_batch":-100}}
fallback.policy|{"fallback":{"policy":null}}
fallback.policy|{"fallback":{"policy":["queue"]}}
fallback.policy|{"fallback":{"policy":"reject "}}
fallback.policy|{"fallback":{"policy":""}}
fallback.rescue_dir|{"fallback":{"rescue_dir":5}}
fallback.rescue_dir|{"fallback":{"rescue_dir":{}}}
fallback|{"fallback":"queue"}
health.alert_threshold|{"health":{"alert_threshold":"3"}}
health.alert_threshold|{"health":{"alert_threshold":2.5}}
EOF
	# and the daemon starts with the good values next to them
	t4dx_start -o "config=$(t4dx_config_file '{"fallback":{"max_queue":20,"drain_batch":1,"policy":"reject"},"health":{"interval_s":0.2}}')"
	run jq -e '.fallback.max_queue == 20 and .fallback.drain_batch == 1 and
		.fallback.policy == "reject"' "$MNT/.ctl/config"
	assert_success
	still_serving
}
