#!/usr/bin/env bats
# config.bats - the configuration file (DESIGN.md section 8):
# `t4dxfs -o config=FILE`; what it sets shows in .ctl/config and
# .ctl/breaker and takes effect (memtable size, item size limit, kappa
# boost and prune thresholds); every kind of bad file (unknown section or
# key, wrong type, value out of range, not JSON, missing) stops the start
# with a message naming the key, and nothing is mounted.
#
# Refused starts go through t4dx_run_daemon without -f (t4dxfs returns
# once mounted or failed, so a wrongly accepted file cannot hang the test),
# and once with -f.

load ../lib/mount


# assert_config_is JSON: .ctl/config equals JSON (as values: 60 == 60.0).
assert_config_is() {
	if ! jq -e --argjson want "$1" '. == $want' "$MNT/.ctl/config" >/dev/null; then
		diff <(jq -S . <<<"$1") <(jq -S . "$MNT/.ctl/config") || true
		fail ".ctl/config is not as expected (diff above: want, got)"
	fi
}

# assert_refused KEY JSON [t4dxfs option...]: a start with JSON as the
# config file fails, its message names KEY, nothing is mounted and no
# daemon holds the DATA_DIR.
assert_refused() {
	local key=$1 json=$2 cfg
	shift 2
	cfg=$(t4dx_config_file "$json")
	t4dx_run_daemon "$@" -o "config=$cfg" "$DATA" "$MNT"
	if ((status == 0 || status == 124)); then
		fail "config $json: t4dxfs exited with status $status: $output"
	fi
	[[ $output == *"$key"* ]] ||
		fail "config $json: the message does not name '$key': $output"
	! t4dx_is_mounted "$MNT" || fail "config $json: $MNT is mounted"
	# no daemon holds DATA_DIR (flock would create a missing LOCK)
	if [[ -e $DATA/LOCK ]] && ! flock -n "$DATA/LOCK" true; then
		fail "config $json: a t4dxfs still holds $DATA/LOCK"
	fi
}

# ---- accepted files ---------------------------------------------------------

@test "a file setting every key shows exactly in .ctl/config and .ctl/breaker" {
	mkdir "$T4DX_TMP/rescue"
	local json
	json=$(jq -c -n --arg rescue "$T4DX_TMP/rescue" '{
		breaker: {failure_threshold: 3, success_threshold: 4, reset_timeout_s: 12.5},
		wal: {max_file_bytes: 33554432, archive_max_bytes: 134217728,
			checkpoint_bytes: 16777216, commit_interval_ms: 250},
		memtable: {max_bytes: 33554432, max_items: 5000},
		fallback: {max_items: 500, cache_bytes: 1048576, max_queue: 2000,
			max_queue_bytes: 1048576, drain_batch: 50,
			policy: "reject", rescue_dir: $rescue, rescue_fallback: false},
		health: {interval_s: 10, timeout_s: 2, alert_threshold: 4,
			verify_bytes: 1048576, verify_at_start: true},
		compaction: {nrem_kappa_boost: 0.1, prune_min_kappa: 0.04,
			prune_max_importance: 0.2, prune_max_age_s: 86400},
		limits: {max_item_bytes: 1048576, write_buffer_bytes: 2097152},
		vector: {dim: 64, embedder: "off", command: ["/usr/bin/emb", "-q"],
			timeout_s: 2.5, start_timeout_s: 30, defer_s: 12.5, index_m: 8, ef_construction: 40,
			ef_search: 20, index_min_items: 500, min_recall: 0.5}}')
	t4dx_start -o "config=$(t4dx_config_file "$json")"
	assert_config_is "$json"
	t4dx_ends_with_newline "$MNT/.ctl/config" || fail "config does not end with a newline"
	run jq -e '.failure_threshold == 3 and .success_threshold == 4 and
		.reset_timeout_s == 12.5 and .state == "CLOSED"' "$MNT/.ctl/breaker"
	assert_success
	# the daemon works with it
	printf 'x\n' >"$ITEMS/x"
	run cat "$ITEMS/x"
	assert_output x
}

@test "an empty object or a partial file keeps the defaults for everything else" {
	t4dx_start -o "config=$(t4dx_config_file '{}')"
	assert_config_is "$T4DX_DEFAULT_CONFIG"
	t4dx_stop
	t4dx_start -o "config=$(t4dx_config_file '{"breaker":{"failure_threshold":7,"reset_timeout_s":12.5},"health":{}}')"
	assert_config_is "$(jq -c '.breaker.failure_threshold = 7 |
		.breaker.reset_timeout_s = 12.5' <<<"$T4DX_DEFAULT_CONFIG")"
	run jq -e '.failure_threshold == 7 and .success_threshold == 2 and
		.reset_timeout_s == 12.5' "$MNT/.ctl/breaker"
	assert_success
	# the boundary values are accepted
	t4dx_stop
	t4dx_start -o "config=$(t4dx_config_file '{"breaker":{"failure_threshold":1,"success_threshold":1},
		"compaction":{"nrem_kappa_boost":0,"prune_min_kappa":1,"prune_max_importance":1}}')"
	run jq -e '.breaker.failure_threshold == 1 and .compaction.prune_min_kappa == 1' \
		"$MNT/.ctl/config"
	assert_success
}

# segments_at_least N
segments_at_least() {
	local s
	s=$(t4dx_stat_field segments) && ((s >= $1))
}

@test "memtable.max_items 100: 250 items make segments without a compact command" {
	local cfg i segs0
	cfg=$(t4dx_config_file '{"memtable":{"max_items":100}}')
	t4dx_start -o "config=$cfg"
	segs0=$(t4dx_stat_field segments)
	mkdir "$ITEMS/many"
	for ((i = 0; i < 250; i++)); do
		t4dx_content "m$i" >"$ITEMS/many/m$i"
	done
	t4dx_wait_for 10 segments_at_least "$((segs0 + 2))" ||
		fail "$(t4dx_stat_field segments) segments after 250 items (was $segs0)"
	# the embedder's vectors of the 250 (logged once writes pause) go
	# through the memtable too; the flusher cuts it after each 100
	t4dx_wait_ctl 30 stats '.vectors.busy == false'
	t4dx_wait_ctl 10 stats '.memtable_items <= 100'
	run jq -e '.nrem.runs == 0 and .prune.runs == 0' "$MNT/.ctl/compact"
	assert_success
	local pass
	for pass in mounted remounted; do
		run bash -c 'ls "$1" | wc -l' _ "$ITEMS/many"
		assert_output 250
		for ((i = 0; i < 250; i += 7)); do
			run cat "$ITEMS/many/m$i"
			assert_output "$(t4dx_content "m$i")"
		done
		[[ $pass == remounted ]] || t4dx_remount -o "config=$cfg"
	done
}

@test "limits.max_item_bytes 1000: 1000 bytes fit, 1001 are 'File too large'" {
	t4dx_start -o "config=$(t4dx_config_file '{"limits":{"max_item_bytes":1000}}')"
	head -c 1000 /dev/urandom >"$T4DX_TMP/k1000"
	head -c 1001 /dev/urandom >"$T4DX_TMP/k1001"
	cp "$T4DX_TMP/k1000" "$ITEMS/f"
	t4dx_assert_same_bytes "$T4DX_TMP/k1000" "$ITEMS/f"
	run cp "$T4DX_TMP/k1001" "$ITEMS/f"
	assert_failure
	assert_output --partial 'File too large'
	t4dx_assert_same_bytes "$T4DX_TMP/k1000" "$ITEMS/f"
	run cp "$T4DX_TMP/k1001" "$ITEMS/g"
	assert_failure
	assert_output --partial 'File too large'
	run bash -c 'printf x >>"$1"' _ "$ITEMS/f"
	assert_failure
	assert_output --partial 'File too large'
	run truncate -s 1001 "$ITEMS/f"
	assert_failure
	assert_output --partial 'File too large'
	t4dx_assert_same_bytes "$T4DX_TMP/k1000" "$ITEMS/f"
}

@test "compaction overrides: kappa boost 0.2, prune_min_kappa 0.3, prune_max_importance 0.6" {
	t4dx_start -o "config=$(t4dx_config_file '{"compaction":{"nrem_kappa_boost":0.2,
		"prune_min_kappa":0.3,"prune_max_importance":0.6}}')"
	printf 'a\n' >"$ITEMS/a"
	printf 'b\n' >"$ITEMS/b"
	printf 'c\n' >"$ITEMS/c"
	setfattr -n user.t4dx.importance -v 0.6 "$ITEMS/b"
	setfattr -n user.t4dx.kappa -v 0.35 "$ITEMS/c"
	echo nrem >"$MNT/.ctl/compact"
	local f got
	for f in a:0.2 b:0.2 c:0.55; do
		got=$(t4dx_xattr kappa "$ITEMS/${f%%:*}")
		t4dx_num_eq "$got" "${f#*:}" 1e-6 || fail "kappa of ${f%%:*}: $(t4dx_num_eq "$got" "${f#*:}" 1e-6)"
	done
	# a: kappa 0.2 <= 0.3 and importance 0.5 < 0.6: pruned; b: importance
	# 0.6 is not below 0.6; c: kappa 0.55 is above 0.3
	echo prune >"$MNT/.ctl/compact"
	run ls "$ITEMS"
	assert_output $'b\nc'
}

# ---- refused files ------------------------------------------------------------

@test "unknown sections and keys are refused, naming them" {
	assert_refused breaker.failure_treshold '{"breaker":{"failure_treshold":5}}'
	assert_refused breakers '{"breakers":{"failure_threshold":5}}'
	assert_refused limits.max_name_bytes '{"limits":{"max_item_bytes":1000,"max_name_bytes":10}}'
	assert_refused compaction.rem_kappa '{"compaction":{"rem_kappa":0.85}}'
	assert_refused health.Interval_s '{"health":{"Interval_s":1}}'
}

@test "values of the wrong type are refused, naming the key" {
	assert_refused breaker.failure_threshold '{"breaker":{"failure_threshold":"5"}}'
	assert_refused breaker.failure_threshold '{"breaker":{"failure_threshold":5.5}}'
	assert_refused breaker.reset_timeout_s '{"breaker":{"reset_timeout_s":"60"}}'
	assert_refused memtable.max_items '{"memtable":{"max_items":true}}'
	assert_refused wal.max_file_bytes '{"wal":{"max_file_bytes":[1]}}'
	assert_refused health.interval_s '{"health":{"interval_s":"fast"}}'
	assert_refused health.interval_s '{"health":{"interval_s":null}}'
	assert_refused fallback.policy '{"fallback":{"policy":1}}'
	assert_refused fallback.rescue_dir '{"fallback":{"rescue_dir":["a"]}}'
	assert_refused compaction.nrem_kappa_boost '{"compaction":{"nrem_kappa_boost":{}}}'
	assert_refused limits.max_item_bytes '{"limits":{"max_item_bytes":"1 MiB"}}'
	assert_refused wal '{"wal":[]}'
	assert_refused limits '{"limits":5}'
}

@test "values out of range are refused, naming the key" {
	assert_refused breaker.failure_threshold '{"breaker":{"failure_threshold":0}}'
	assert_refused breaker.failure_threshold '{"breaker":{"failure_threshold":-1}}'
	assert_refused breaker.failure_threshold '{"breaker":{"failure_threshold":4294967296}}'
	assert_refused breaker.success_threshold '{"breaker":{"success_threshold":0}}'
	assert_refused breaker.reset_timeout_s '{"breaker":{"reset_timeout_s":-5}}'
	assert_refused wal.max_file_bytes '{"wal":{"max_file_bytes":-1}}'
	assert_refused memtable.max_items '{"memtable":{"max_items":-1}}'
	assert_refused memtable.max_bytes '{"memtable":{"max_bytes":-1}}'
	assert_refused fallback.max_queue '{"fallback":{"max_queue":-1}}'
	assert_refused fallback.policy '{"fallback":{"policy":"sometimes"}}'
	assert_refused health.interval_s '{"health":{"interval_s":-1}}'
	assert_refused health.timeout_s '{"health":{"timeout_s":-1}}'
	assert_refused compaction.nrem_kappa_boost '{"compaction":{"nrem_kappa_boost":1.5}}'
	assert_refused compaction.nrem_kappa_boost '{"compaction":{"nrem_kappa_boost":-0.1}}'
	assert_refused compaction.prune_min_kappa '{"compaction":{"prune_min_kappa":2}}'
	assert_refused vector.min_recall '{"vector":{"min_recall":1.5}}'
	assert_refused vector.min_recall '{"vector":{"min_recall":-0.1}}'
	assert_refused compaction.prune_max_importance '{"compaction":{"prune_max_importance":-0.5}}'
	assert_refused compaction.prune_max_age_s '{"compaction":{"prune_max_age_s":-1}}'
	assert_refused limits.max_item_bytes '{"limits":{"max_item_bytes":-5}}'
	# the first bad key is named even when good ones come before it
	assert_refused health.alert_threshold \
		'{"breaker":{"failure_threshold":3},"health":{"interval_s":1,"alert_threshold":-3}}'
}

@test "a file that is not a JSON object, or is missing, is refused, naming the file" {
	local cfg
	for json in '{"breaker":' '[]' '"breaker"' '' '{"breaker":{"failure_threshold":5}} trailing'; do
		cfg=$(t4dx_config_file "$json")
		t4dx_run_daemon -o "config=$cfg" "$DATA" "$MNT"
		((status != 0 && status != 124)) ||
			fail "config '$json': t4dxfs exited with status $status: $output"
		[[ $output == *"$cfg"* ]] || fail "config '$json': the message does not name $cfg: $output"
		! t4dx_is_mounted "$MNT" || fail "config '$json': mounted"
	done
	t4dx_run_daemon -o "config=$T4DX_TMP/no-such-file.json" "$DATA" "$MNT"
	((status != 0 && status != 124)) || fail "missing config: status $status: $output"
	assert_output --partial "$T4DX_TMP/no-such-file.json"
	! t4dx_is_mounted "$MNT" || fail "missing config: mounted"
}

@test "in the foreground (-f) a bad file also fails at once and mounts nothing" {
	assert_refused breaker.failure_threshold '{"breaker":{"failure_threshold":0}}' -f
	assert_refused fallback.rescue_path '{"fallback":{"rescue_path":""}}' -f
	# and a good one after them starts fine
	t4dx_start -o "config=$(t4dx_config_file '{"breaker":{"failure_threshold":9}}')"
	run jq -e '.failure_threshold == 9' "$MNT/.ctl/breaker"
	assert_success
}
