#!/usr/bin/env bats
# ctl.bats - the control files of MOUNT/.ctl (DESIGN.md sections 2, 5, 7
# and 8): breaker (state, forcing open and reset, writes refused while
# OPEN), health (checks, recovery figures), metrics (the Prometheus text
# format, checked line by line), stats, config, alerts, and what the files
# refuse: writes to read-only files, new files, bad, random, oversized and
# empty writes.
#
# The breaker tests force it open by hand ("open"); storage failures that
# open it by themselves belong to the fault-injection suite.

load ../lib/mount

setup() {
	t4dx_setup
	t4dx_start
}

CTL_FILES='alerts breaker compact config durability health metrics stats'
READ_ONLY='alerts config health metrics stats'


# breaker_state: the breaker's state, or "" if the file does not parse.
breaker_state() {
	t4dx_ctl_get breaker .state
}

# now_ns: wall clock, nanoseconds.
now_ns() {
	date +%s%N
}

# assert_recent_ns NS: NS is a wall-clock time in ns within 120 s of now.
assert_recent_ns() {
	local ns=$1 now
	now=$(now_ns)
	[[ $ns =~ ^[0-9]+$ ]] || fail "'$ns' is not a time in ns"
	local d=$(((now - ns) / 1000000000))
	((${d#-} <= 120)) || fail "time $ns ns is ${d}s away from now ($now)"
}

# assert_breaker_unchanged BEFORE: .ctl/breaker has the state, the
# transitions and the failure and rejection counts of BEFORE (JSON); calls
# are left out (a health probe may be one).
BREAKER_KEEP='{state, forced, transitions, last_transition_ns,
	consecutive_failures, failures, rejections}'
assert_breaker_unchanged() {
	run jq -c "$BREAKER_KEEP" "$MNT/.ctl/breaker"
	assert_success
	assert_output "$(jq -c "$BREAKER_KEEP" <<<"$1")"
}

# ---- breaker ---------------------------------------------------------------

@test "breaker: a fresh mount is CLOSED with every field and the default thresholds" {
	local f=$MNT/.ctl/breaker
	t4dx_ends_with_newline "$f" || fail "breaker does not end with a newline: $(od -c "$f" | tail -n 3)"
	run jq -e '
		.state == "CLOSED" and .forced == false and
		.consecutive_failures == 0 and .consecutive_successes == 0 and
		.failure_threshold == 5 and .success_threshold == 2 and
		.reset_timeout_s == 60 and .last_transition_ns == 0 and
		.next_half_open_s == 0 and .transitions == 0 and
		.failures == 0 and .rejections == 0 and
		(.calls | type == "number" and . >= 0)' "$f"
	assert_success
	# exactly these keys, no typo'd or missing one
	run jq -r 'keys_unsorted | sort | join(" ")' "$f"
	assert_output 'calls consecutive_failures consecutive_successes failure_threshold failures forced last_transition_ns next_half_open_s rejections reset_timeout_s state success_threshold transitions'
	# writes are calls that succeed
	local calls
	calls=$(t4dx_ctl_get breaker .calls)
	printf 'x\n' >"$ITEMS/x"
	cp "$ITEMS/x" "$ITEMS/y"
	run jq -e --argjson c "$calls" '.calls > $c and .failures == 0 and
		.state == "CLOSED"' "$f"
	assert_success
}

# With fallback.policy "reject" an open breaker fails changes fast; with
# the default "queue" they are acknowledged as unpersisted (fallback.bats).
start_rejecting() {
	t4dx_stop
	t4dx_start -o "config=$(t4dx_config_file '{"fallback":{"policy":"reject"}}')"
}

@test "breaker: 'open' forces OPEN; writes fail fast with EIO, reads work; 'reset' closes it" {
	start_rejecting
	printf 'before\n' >"$ITEMS/old"
	mkdir "$ITEMS/dir"
	printf 'in dir\n' >"$ITEMS/dir/f"
	local state_before
	state_before=$(t4dx_tree_state)

	run t4dx_ctl_echo breaker open
	assert_success
	assert_output ''
	run jq -e '.state == "OPEN" and .forced == true and
		.next_half_open_s == -1 and .transitions == 1' "$MNT/.ctl/breaker"
	assert_success
	assert_recent_ns "$(t4dx_ctl_get breaker .last_transition_ns)"
	local rej0
	rej0=$(t4dx_ctl_get breaker .rejections)

	# every kind of write is refused at once with EIO
	local t0 t1
	t0=$(_t4dx_now_us)
	run bash -c 'echo new >"$1"' _ "$ITEMS/new"
	assert_failure
	assert_output --partial 'Input/output error'
	run cp <(printf 'overwritten\n') "$ITEMS/old"
	assert_failure
	assert_output --partial 'Input/output error'
	run mkdir "$ITEMS/newdir"
	assert_failure
	assert_output --partial 'Input/output error'
	run rm "$ITEMS/dir/f"
	assert_failure
	assert_output --partial 'Input/output error'
	run mv "$ITEMS/old" "$ITEMS/moved"
	assert_failure
	assert_output --partial 'Input/output error'
	run setfattr -n user.t4dx.kappa -v 0.5 "$ITEMS/old"
	assert_failure
	assert_output --partial 'Input/output error'
	t1=$(_t4dx_now_us)
	(((t1 - t0) < 5000000)) || fail "six refused writes took $(((t1 - t0) / 1000)) ms"

	# reads still work and nothing changed
	run cat "$ITEMS/old" "$ITEMS/dir/f"
	assert_success
	assert_output $'before\nin dir'
	run t4dx_tree_state
	assert_output "$state_before"
	local rej1
	rej1=$(t4dx_ctl_get breaker .rejections)
	((rej1 >= rej0 + 6)) || fail "rejections went from $rej0 to $rej1 after 6 refused writes"
	run breaker_state
	assert_output OPEN

	# "open" again keeps it OPEN without a new transition
	t4dx_ctl_echo breaker open
	run jq -e '.state == "OPEN" and .transitions == 1' "$MNT/.ctl/breaker"
	assert_success

	run t4dx_ctl_echo breaker reset
	assert_success
	run jq -e '.state == "CLOSED" and .forced == false and
		.consecutive_failures == 0 and .consecutive_successes == 0 and
		.next_half_open_s == 0 and .transitions == 2' "$MNT/.ctl/breaker"
	assert_success
	# writes work again, and last
	printf 'after reset\n' >"$ITEMS/new"
	cp <(printf 'overwritten\n') "$ITEMS/old"
	mkdir "$ITEMS/newdir"
	t4dx_remount
	run cat "$ITEMS/new" "$ITEMS/old"
	assert_output $'after reset\noverwritten'
	assert_dir_exists "$ITEMS/newdir"
	run breaker_state
	assert_output CLOSED
}

@test "breaker: 'open' and 'reset' are accepted with or without a trailing newline" {
	printf 'open' >"$T4DX_TMP/open"
	printf 'reset' >"$T4DX_TMP/reset"
	run t4dx_ctl_write_file breaker "$T4DX_TMP/open"
	assert_success
	run breaker_state
	assert_output OPEN
	run t4dx_ctl_write_file breaker "$T4DX_TMP/reset"
	assert_success
	run breaker_state
	assert_output CLOSED
}

@test "breaker: bad, random, oversized and empty writes are refused and change nothing" {
	local before i
	before=$(cat "$MNT/.ctl/breaker")
	# words that are not commands (a bare newline, case, prefixes, extras)
	for i in '' OPEN Open opened ope 'open now' 'open reset' close closed \
		half_open HALF_OPEN ' open' 'open ' flush; do
		run t4dx_ctl_echo breaker "$i"
		assert_failure
		assert_output --partial 'Invalid argument'
		assert_breaker_unchanged "$before"
	done
	# "open" with NUL bytes after it, and CRLF
	printf 'open\0\n' >"$T4DX_TMP/nul"
	printf 'open\r\n' >"$T4DX_TMP/crlf"
	printf 'reset\n\n' >"$T4DX_TMP/twolines"
	for i in nul crlf twolines; do
		run t4dx_ctl_write_file breaker "$T4DX_TMP/$i"
		assert_failure
		assert_output --partial 'Invalid argument'
		assert_breaker_unchanged "$before"
	done
	# random bytes, 5 rounds of 1..200 bytes
	for i in 1 2 3 4 5; do
		head -c $((1 + RANDOM % 200)) /dev/urandom >"$T4DX_TMP/random"
		run t4dx_ctl_write_file breaker "$T4DX_TMP/random"
		assert_failure
		assert_output --partial 'Invalid argument'
		assert_breaker_unchanged "$before"
	done
	# over 256 bytes, even though it starts with a valid command
	{
		for i in $(seq 60); do printf 'open\n'; done
	} >"$T4DX_TMP/big"
	run t4dx_ctl_write_file breaker "$T4DX_TMP/big"
	assert_failure
	assert_output --partial 'Invalid argument'
	assert_breaker_unchanged "$before"
	head -c 100000 /dev/zero | tr '\0' 'o' >"$T4DX_TMP/huge"
	run t4dx_ctl_write_file breaker "$T4DX_TMP/huge"
	assert_failure
	assert_breaker_unchanged "$before"
	# an empty write (open, truncate, close) does nothing
	run t4dx_ctl_write_file breaker /dev/null
	assert_breaker_unchanged "$before"
	# the daemon is fine and the breaker still works
	t4dx_ctl_echo breaker open
	run breaker_state
	assert_output OPEN
	t4dx_ctl_echo breaker reset
	run breaker_state
	assert_output CLOSED
	printf 'still writable\n' >"$ITEMS/w"
	run cat "$ITEMS/w"
	assert_output 'still writable'
}

# ---- alerts ----------------------------------------------------------------

ALERT_RE='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z (INFO|WARN|CRIT) [^ ].*$'

# assert_alert_lines: every line of .ctl/alerts is "TIME LEVEL text", the
# times in order (newest last) and recent.
assert_alert_lines() {
	local f=$MNT/.ctl/alerts line t prev=0 s
	cp "$f" "$T4DX_TMP/alerts"
	while IFS= read -r line; do
		[[ $line =~ $ALERT_RE ]] || fail "alert line not 'TIME LEVEL text': '$line'"
		t=${line%% *}
		s=$(date -u -d "$t" +%s%N) || fail "unparsable alert time '$t'"
		((s >= prev)) || fail "alert times out of order at '$line'"
		prev=$s
		assert_recent_ns "$s"
	done <"$T4DX_TMP/alerts"
}

@test "alerts: each breaker transition adds a line naming the states, also on stderr" {
	# (each transition also moves the degradation level: its own alert)
	local n0
	n0=$(grep -c ' breaker ' "$MNT/.ctl/alerts" || true)
	t4dx_ctl_echo breaker open
	run bash -c 'grep " breaker " "$1" | tail -n 1' _ "$MNT/.ctl/alerts"
	assert_output --regexp "$ALERT_RE"
	assert_output --regexp 'CLOSED.*OPEN'
	local open_line=$output
	t4dx_ctl_echo breaker reset
	run bash -c 'grep " breaker " "$1" | tail -n 1' _ "$MNT/.ctl/alerts"
	assert_output --regexp 'OPEN.*CLOSED'
	local reset_line=$output
	run grep -c ' breaker ' "$MNT/.ctl/alerts"
	assert_output "$((n0 + 2))"
	t4dx_ends_with_newline "$MNT/.ctl/alerts" || fail "alerts does not end with a newline"
	assert_alert_lines
	# the same text goes to stderr (the daemon runs with -f)
	local text
	for text in "${open_line#* * }" "${reset_line#* * }"; do
		t4dx_wait_for 5 grep -qF -- "$text" "$T4DX_LOG" ||
			fail "alert '$text' not in the daemon's stderr: $(cat "$T4DX_LOG")"
	done
}

@test "alerts: at most 100 lines, newest last, after 130 transitions" {
	local i
	for ((i = 0; i < 65; i++)); do
		echo open >"$MNT/.ctl/breaker"
		echo reset >"$MNT/.ctl/breaker"
	done
	run jq -e '.transitions == 130' "$MNT/.ctl/breaker"
	assert_success
	local n
	n=$(wc -l <"$MNT/.ctl/alerts")
	((n <= 100)) || fail "alerts has $n lines"
	((n >= 50)) || fail "alerts keeps only $n lines of 130 transitions"
	assert_alert_lines
	# the newest pair of breaker lines is at the end, in order
	run bash -c 'grep " breaker " "$1" | tail -n 2' _ "$MNT/.ctl/alerts"
	assert_line --index 0 --regexp 'CLOSED.*OPEN'
	assert_line --index 1 --regexp 'OPEN.*CLOSED'
	run tail -n 1 "$MNT/.ctl/alerts"
	assert_output --regexp 'OPEN.*CLOSED|-> 0 \(normal\)'
}

# ---- health ----------------------------------------------------------------

HEALTH_SCHEMA='
def check: (.ok | type == "boolean") and (.last_run_ns | type == "number") and
	(.duration_s | type == "number") and
	(.consecutive_failures | type == "number") and (.runs | type == "number");
(.status | IN("ok", "degraded", "failing")) and (.level | IN(0, 1, 2)) and
(.mode | IN("normal", "read-only", "in-memory")) and
(.checks.wal | check) and (.checks.segments | check) and
(.vectors.ok | type == "boolean") and (.vectors.embedder | type == "string") and
(.vectors.program | IN("none", "ok", "failing")) and
(.vectors.error | type == "string") and
(.vectors.index_files_unusable | type == "number") and
(.unpersisted | type == "number") and
(.recovery.records_replayed | type == "number") and
(.recovery.bytes_dropped | type == "number") and
(.recovery.segments_quarantined | type == "number") and
(.recovery.wal_files_covered | type == "number") and
(.recovery.wal_bytes_read | type == "number")'

@test "health: a fresh mount is ok, level 0, normal, nothing unpersisted or recovered" {
	local f=$MNT/.ctl/health
	t4dx_ends_with_newline "$f" || fail "health does not end with a newline"
	run jq -e "$HEALTH_SCHEMA" "$f"
	assert_success
	run jq -e '.status == "ok" and .level == 0 and .mode == "normal" and
		.unpersisted == 0 and .recovery.records_replayed == 0 and
		.recovery.bytes_dropped == 0 and .recovery.segments_quarantined == 0 and
		.checks.wal.consecutive_failures == 0 and
		.checks.segments.consecutive_failures == 0' "$f"
	assert_success
}

@test "health: recovery reports the records replayed and the torn bytes dropped" {
	local i
	for ((i = 0; i < 12; i++)); do t4dx_content "r$i" >"$ITEMS/r$i"; done
	t4dx_kill9
	local wal
	wal=$(t4dx_last_wal) || fail "no WAL file"
	printf '{"lsn":999999,"op":"pu' >>"$wal" # 22 bytes, a torn record
	t4dx_start
	run jq -e "$HEALTH_SCHEMA" "$MNT/.ctl/health"
	assert_success
	run jq -e '.recovery.records_replayed >= 12 and
		.recovery.bytes_dropped == 22 and .recovery.segments_quarantined == 0 and
		.status == "ok" and .level == 0' "$MNT/.ctl/health"
	assert_success
	for ((i = 0; i < 12; i++)); do
		run cat "$ITEMS/r$i"
		assert_output "$(t4dx_content "r$i")"
	done
}

# health_runs_reach N T0: both checks have run at least N times, passed,
# and the last run of each was after T0 (ns).
health_runs_reach() {
	jq -e --argjson n "$1" --argjson t0 "$2" '.checks | all(.[];
		.runs >= $n and .ok == true and .last_run_ns > $t0 and
		.duration_s >= 0 and .duration_s < 5)' "$MNT/.ctl/health" >/dev/null
}

@test "health: the checks run every health.interval_s (0.2) and pass" {
	local cfg
	cfg=$(t4dx_config_file '{"health":{"interval_s":0.2}}')
	t4dx_remount -o "config=$cfg"
	local t0 r0
	t0=$(now_ns)
	r0=$(t4dx_ctl_get health '[.checks[].runs] | min')
	t4dx_wait_for 10 health_runs_reach "$((r0 + 5))" "$t0" ||
		fail "health checks did not run 5 more times in 10 s: $(cat "$MNT/.ctl/health")"
	run jq -e '.status == "ok" and .level == 0 and
		(.checks | all(.[]; .consecutive_failures == 0))' "$MNT/.ctl/health"
	assert_success
	# the probe records do not disturb the items
	printf 'x\n' >"$ITEMS/x"
	run cat "$ITEMS/x"
	assert_output x
}

# ---- metrics ---------------------------------------------------------------

# check_exposition FILE: every line of FILE is "# HELP name text",
# "# TYPE name counter|gauge|histogram" or "name{labels} value" with a
# t4dx_ name; each family has one TYPE (and at most one HELP), given before
# its samples; the samples of a family are contiguous; histogram samples
# are name_bucket{...,le=...}, name_sum, name_count.  Prints each problem.
check_exposition() {
	local file=$1 line n=0 bad=0 name labels value fam t
	local name_re='t4dx_[a-zA-Z0-9_]*'
	local lv='"([^"\\]|\\.)*"'
	local label_re="[a-zA-Z_][a-zA-Z0-9_]*=$lv"
	local labels_re="\\{($label_re(,$label_re)*,?)?\\}"
	local value_re='[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?|[+-]?Inf|NaN'
	local -A type=() help=() sampled=() closed=()
	local current=
	while IFS= read -r line || [[ -n $line ]]; do
		n=$((n + 1))
		if [[ $line =~ ^#\ HELP\ ($name_re)\ [^[:space:]].*$ ]]; then
			name=${BASH_REMATCH[1]}
			[[ -z ${help[$name]:-} ]] || { echo "line $n: second HELP for $name"; bad=1; }
			[[ -z ${sampled[$name]:-} ]] || { echo "line $n: HELP after samples of $name"; bad=1; }
			help[$name]=1
		elif [[ $line =~ ^#\ TYPE\ ($name_re)\ (counter|gauge|histogram)$ ]]; then
			name=${BASH_REMATCH[1]}
			[[ -z ${type[$name]:-} ]] || { echo "line $n: second TYPE for $name"; bad=1; }
			[[ -z ${sampled[$name]:-} ]] || { echo "line $n: TYPE after samples of $name"; bad=1; }
			type[$name]=${BASH_REMATCH[2]}
		elif [[ $line =~ ^($name_re)($labels_re)?\ ($value_re)$ ]]; then
			name=${BASH_REMATCH[1]}
			labels=${BASH_REMATCH[2]}
			fam=
			if [[ -n ${type[$name]:-} && ${type[$name]} != histogram ]]; then
				fam=$name
			else
				for t in _bucket _sum _count; do
					if [[ $name == *$t && ${type[${name%$t}]:-} == histogram ]]; then
						fam=${name%$t}
					fi
				done
				if [[ $fam && $name == *_bucket && ! $labels =~ (\{|,)le=\"[^\"]+\" ]]; then
					echo "line $n: bucket without le: $line"
					bad=1
				fi
			fi
			if [[ -z $fam ]]; then
				echo "line $n: sample with no TYPE before it: $line"
				bad=1
				continue
			fi
			if [[ $fam != "$current" ]]; then
				[[ -z ${closed[$fam]:-} ]] || { echo "line $n: samples of $fam are not contiguous"; bad=1; }
				[[ -n $current ]] && closed[$current]=1
				current=$fam
			fi
			sampled[$fam]=1
		else
			echo "line $n: not HELP, TYPE or a t4dx_ sample: '$line'"
			bad=1
		fi
	done <"$file"
	((n > 0)) || { echo "empty exposition"; bad=1; }
	return $bad
}

# metric_type NAME: the TYPE declared for NAME.
metric_type() {
	awk -v n="$1" '$1 == "#" && $2 == "TYPE" && $3 == n { print $4 }' "$2"
}

# metric_sum NAME FILE: the sum of the values of every sample of exactly
# NAME (any labels); fails if there is none.
metric_sum() {
	awk -v n="$1" '
		$1 !~ /^#/ { s = $1; sub(/\{.*/, "", s)
			if (s == n) { found = 1; sum += $NF } }
		END { if (!found) exit 1; printf "%.17g\n", sum }' "$2"
}

# check_histogram NAME FILE: for every label set of histogram NAME, the
# buckets have increasing le ending with "+Inf", cumulative counts, the
# +Inf count equals _count, and _sum is there.
check_histogram() {
	awk -v n="$1" '
	function key(l) {   # the labels without le
		gsub(/(^\{|\}$)/, "", l)
		gsub(/(^|,)le="[^"]*"/, "", l)
		sub(/^,/, "", l)
		return l
	}
	$1 ~ /^#/ { next }
	{
		s = $1; l = ""
		if (index(s, "{")) { l = substr(s, index(s, "{")); s = substr(s, 1, index(s, "{") - 1) }
		if (s == n "_bucket") {
			k = key(l)
			if (!match(l, /le="[^"]*"/)) { print "no le: " $0; bad = 1; next }
			le = substr(l, RSTART + 4, RLENGTH - 5)
			if (k in inf) { print "bucket after +Inf: " $0; bad = 1 }
			if (le == "+Inf") { inf[k] = $NF }
			else {
				if ((k in lastle) && le + 0 <= lastle[k]) { print "le not increasing: " $0; bad = 1 }
				lastle[k] = le + 0
			}
			if ((k in lastc) && $NF + 0 < lastc[k]) { print "buckets not cumulative: " $0; bad = 1 }
			lastc[k] = $NF + 0; nb[k]++; keys[k] = 1
		} else if (s == n "_count") { cnt[key(l)] = $NF; keys[key(l)] = 1 }
		else if (s == n "_sum") { sum[key(l)] = $NF; keys[key(l)] = 1 }
	}
	END {
		if (length(keys) == 0) { print n ": no samples"; exit 1 }
		for (k in keys) {
			if (!(k in inf)) { print n "{" k "}: no +Inf bucket"; bad = 1 }
			if (nb[k] < 2) { print n "{" k "}: fewer than 2 buckets"; bad = 1 }
			if (!(k in cnt)) { print n "{" k "}: no _count"; bad = 1 }
			else if ((k in inf) && inf[k] + 0 != cnt[k] + 0) { print n "{" k "}: +Inf " inf[k] " != _count " cnt[k]; bad = 1 }
			if (!(k in sum)) { print n "{" k "}: no _sum"; bad = 1 }
			else if (sum[k] + 0 < 0) { print n "{" k "}: negative _sum"; bad = 1 }
		}
		exit bad
	}' "$2"
}

GAUGES='t4dx_breaker_state t4dx_degradation_level t4dx_queue_depth t4dx_queue_vectors
	t4dx_unpersisted_writes t4dx_memtable_items t4dx_memtable_bytes
	t4dx_segments t4dx_wal_bytes'
HISTOGRAMS='t4dx_write_latency_seconds t4dx_read_latency_seconds
	t4dx_wal_fsync_latency_seconds t4dx_compaction_duration_seconds'

@test "metrics: strict Prometheus text format with every required family" {
	# some traffic of every kind first
	printf 'x\n' >"$ITEMS/x"
	cat "$ITEMS/x" >/dev/null
	echo nrem >"$MNT/.ctl/compact"
	local m=$T4DX_TMP/metrics name
	cp "$MNT/.ctl/metrics" "$m"
	t4dx_ends_with_newline "$m" || fail "metrics does not end with a newline"
	run check_exposition "$m"
	assert_success
	for name in $GAUGES; do
		run metric_type "$name" "$m"
		assert_output gauge
		run metric_sum "$name" "$m"
		assert_success
	done
	for name in $HISTOGRAMS; do
		run metric_type "$name" "$m"
		assert_output histogram
		run check_histogram "$name" "$m"
		assert_success
	done
	run metric_type t4dx_ops_total "$m"
	assert_output counter
	run grep -E '^t4dx_ops_total\{([^}]*,)?op="[^"]+"' "$m"
	assert_success
	run metric_type t4dx_errors_total "$m"
	assert_output counter
	run metric_sum t4dx_breaker_state "$m"
	assert_output 0
	run metric_sum t4dx_degradation_level "$m"
	assert_output 0
	# each ran at least once above
	local h v
	for h in write_latency read_latency wal_fsync_latency compaction_duration; do
		v=$(metric_sum "t4dx_${h}_seconds_count" "$m")
		[[ $v -ge 1 ]] || fail "t4dx_${h}_seconds_count is $v after traffic"
	done
}

queue_empty() {
	local m=$T4DX_TMP/mq
	cp "$MNT/.ctl/metrics" "$m" && [[ $(metric_sum t4dx_queue_depth "$m") == 0 ]]
}

@test "metrics: counts and gauges follow writes, reads, compaction and the store" {
	local m0=$T4DX_TMP/m0 m1=$T4DX_TMP/m1 i
	cp "$MNT/.ctl/metrics" "$m0"
	for ((i = 0; i < 10; i++)); do t4dx_content "m$i" >"$ITEMS/m$i"; done
	for ((i = 0; i < 10; i++)); do cat "$ITEMS/m$i" >/dev/null; done
	echo flush >"$MNT/.ctl/compact"
	printf 'in memtable\n' >"$ITEMS/mem"
	cp "$MNT/.ctl/metrics" "$m1"
	run check_exposition "$m1"
	assert_success
	local name a b
	for name in t4dx_write_latency_seconds_count t4dx_wal_fsync_latency_seconds_count \
		t4dx_compaction_duration_seconds_count t4dx_ops_total; do
		a=$(metric_sum "$name" "$m0")
		b=$(metric_sum "$name" "$m1")
		echo "# $name: $a -> $b"
		awk -v a="$a" -v b="$b" 'BEGIN { exit !(b > a) }' || fail "$name did not grow: $a -> $b"
	done
	a=$(metric_sum t4dx_write_latency_seconds_count "$m0")
	b=$(metric_sum t4dx_write_latency_seconds_count "$m1")
	((b - a >= 11)) || fail "write latency count grew by $((b - a)) for 11 written items"
	a=$(metric_sum t4dx_read_latency_seconds_count "$m0")
	b=$(metric_sum t4dx_read_latency_seconds_count "$m1")
	((b > a)) || fail "read latency count did not grow for 10 reads: $a -> $b"
	# the gauges agree with .ctl/stats, once the embedder is done: on a
	# busy CPU the flush leaves the files' vectors to it, whose records
	# then add memtable entries between the two reads
	t4dx_wait_ctl 30 stats '.vectors.busy == false'
	local s=$T4DX_TMP/stats
	cp "$MNT/.ctl/stats" "$s"
	cp "$MNT/.ctl/metrics" "$m1"
	for name in memtable_items segments; do
		run metric_sum "t4dx_$name" "$m1"
		assert_output "$(jq -r ".$name" "$s")"
	done
	run metric_sum t4dx_segments "$m1"
	refute_output 0
	run metric_sum t4dx_memtable_items "$m1"
	refute_output 0
	b=$(metric_sum t4dx_wal_bytes "$m1")
	((b > 0)) || fail "t4dx_wal_bytes is $b"
	b=$(metric_sum t4dx_memtable_bytes "$m1")
	((b > 0)) || fail "t4dx_memtable_bytes is $b"
	# the embedder logs a vector after each close without waiting, and
	# waits for the disk once it has caught up: nothing stays pending
	t4dx_wait_for 10 queue_empty ||
		fail "t4dx_queue_depth stays $(metric_sum t4dx_queue_depth "$MNT/.ctl/metrics")"
	cp "$MNT/.ctl/metrics" "$m1"
	run metric_sum t4dx_unpersisted_writes "$m1"
	assert_output 0
}

@test "metrics: breaker state gauge 1 when forced open, EIO errors counted, 0 after reset" {
	start_rejecting
	local m=$T4DX_TMP/m
	echo open >"$MNT/.ctl/breaker"
	cp "$MNT/.ctl/metrics" "$m"
	run metric_sum t4dx_breaker_state "$m"
	assert_output 1
	run bash -c 'echo x >"$1"' _ "$ITEMS/refused"
	assert_failure
	assert_output --partial 'Input/output error'
	run cp <(printf 'y\n') "$ITEMS/refused2"
	assert_failure
	cp "$MNT/.ctl/metrics" "$m"
	run check_exposition "$m"
	assert_success
	run grep -E '^t4dx_errors_total\{' "$m"
	assert_success
	local eio
	eio=$(awk '$1 ~ /^t4dx_errors_total\{/ && $1 ~ /errno="EIO"/ && $1 ~ /op="[^"]+"/ { s += $NF }
		END { print s + 0 }' "$m")
	((eio >= 2)) || fail "t4dx_errors_total{errno=\"EIO\"} sums to $eio after 2 refused writes: $(grep errors_total "$m")"
	echo reset >"$MNT/.ctl/breaker"
	cp "$MNT/.ctl/metrics" "$m"
	run metric_sum t4dx_breaker_state "$m"
	assert_output 0
	# counters never go down
	local eio2
	eio2=$(awk '$1 ~ /^t4dx_errors_total\{/ && $1 ~ /errno="EIO"/ { s += $NF } END { print s + 0 }' "$m")
	((eio2 >= eio)) || fail "EIO errors went down from $eio to $eio2"
}

# ---- stats and config -------------------------------------------------------

@test "stats: every field is a number and follows writes and a flush" {
	local f=$MNT/.ctl/stats
	t4dx_ends_with_newline "$f" || fail "stats does not end with a newline"
	run jq -e 'all(.items, .memtable_items, .memtable_bytes, .segments,
		.segment_bytes, .wal_lsn, .wal_bytes, .archive_bytes, .uptime_s;
		type == "number" and . >= 0)' "$f"
	assert_success
	cp "$f" "$T4DX_TMP/s0"
	local i
	for ((i = 0; i < 5; i++)); do t4dx_content "s$i" >"$ITEMS/s$i"; done
	cp "$f" "$T4DX_TMP/s1"
	run jq -e -n --slurpfile a "$T4DX_TMP/s0" --slurpfile b "$T4DX_TMP/s1" '
		$a[0] as $a | $b[0] as $b |
		$b.items == $a.items + 5 and $b.memtable_items >= $a.memtable_items + 5 and
		$b.memtable_bytes > $a.memtable_bytes and $b.wal_lsn >= $a.wal_lsn + 5 and
		$b.wal_bytes > $a.wal_bytes and $b.uptime_s >= $a.uptime_s'
	assert_success
	# (the embedder's vectors go in the flush too, not after it)
	t4dx_wait_ctl 30 stats '.vectors.busy == false'
	echo flush >"$MNT/.ctl/compact"
	cp "$f" "$T4DX_TMP/s2"
	run jq -e -n --slurpfile b "$T4DX_TMP/s1" --slurpfile c "$T4DX_TMP/s2" '
		$b[0] as $b | $c[0] as $c |
		$c.memtable_items == 0 and $c.segments == $b.segments + 1 and
		$c.segment_bytes > $b.segment_bytes and $c.items == $b.items'
	assert_success
}

@test "config: without a config file it shows the built-in defaults" {
	local f=$MNT/.ctl/config
	t4dx_ends_with_newline "$f" || fail "config does not end with a newline"
	run jq -e --argjson want "$T4DX_DEFAULT_CONFIG" '. == $want' "$f"
	if ((status != 0)); then
		jq -S . "$f"
		fail "config differs from the defaults"
	fi
}

# ---- what the control files refuse -------------------------------------------

@test "the read-only files refuse writes with EACCES or EPERM and stay the same" {
	local name before
	for name in $READ_ONLY; do
		before=$(cat "$MNT/.ctl/$name")
		run t4dx_ctl_echo "$name" reset
		assert_failure
		assert_output --regexp 'Permission denied|Operation not permitted'
		run t4dx_ctl_write_file "$name" /dev/null
		assert_failure
		assert_output --regexp 'Permission denied|Operation not permitted'
		run truncate -s 0 "$MNT/.ctl/$name"
		assert_failure
		# the content is still there (alerts and metrics may have moved on)
		case $name in
		config) run cat "$MNT/.ctl/$name"; assert_output "$before" ;;
		metrics | alerts) ;;
		*) run jq -e 'type == "object"' "$MNT/.ctl/$name"; assert_success ;;
		esac
	done
	run grep -c . "$MNT/.ctl/metrics"
	refute_output 0
}

@test ".ctl lists its eight files and nothing can be created, removed or renamed there" {
	run ls "$MNT/.ctl"
	assert_success
	local name
	for name in $CTL_FILES; do assert_line "$name"; done
	run touch "$MNT/.ctl/new"
	assert_failure
	run bash -c 'echo x >"$1"' _ "$MNT/.ctl/new"
	assert_failure
	run mkdir "$MNT/.ctl/newdir"
	assert_failure
	run rm -f "$MNT/.ctl/stats"
	assert_failure
	run mv "$MNT/.ctl/breaker" "$MNT/.ctl/breaker2"
	assert_failure
	run ln -s breaker "$MNT/.ctl/link"
	assert_failure
	assert_file_not_exists "$MNT/.ctl/new"
	assert_file_not_exists "$MNT/.ctl/newdir"
	assert_file_not_exists "$MNT/.ctl/breaker2"
	assert_file_not_exists "$MNT/.ctl/link"
	for name in $CTL_FILES; do assert_file_exists "$MNT/.ctl/$name"; done
	# and the files still work
	run breaker_state
	assert_output CLOSED
}

@test "on a mount made with -o ro, the commands of compact and breaker are EROFS and change nothing" {
	printf 'x\n' >"$ITEMS/x"
	t4dx_stop
	t4dx_start -o ro
	local runs
	runs=$(jq '.flush.runs' "$MNT/.ctl/compact")
	run t4dx_ctl_echo compact flush
	assert_failure
	assert_output --partial 'Read-only file system'
	run t4dx_ctl_echo breaker open
	assert_failure
	assert_output --partial 'Read-only file system'
	run breaker_state
	assert_output CLOSED
	run jq '.flush.runs' "$MNT/.ctl/compact"
	assert_output "$runs"
	# reading works
	run cat "$ITEMS/x"
	assert_output x
}
