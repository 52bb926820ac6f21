#!/usr/bin/env bats
# names.bats - item and directory names are any bytes but '/' and NUL
# (DESIGN.md section 2): spaces, quotes, backslashes, tabs, newlines,
# UTF-8, bytes that are not UTF-8, JSON-looking text.  Each is created,
# listed (in bytewise order), read, renamed, kept across a remount, and
# written to the WAL as valid JSON that `t4dx wal-dump` shows.

load ../lib/mount

setup() {
	t4dx_setup
	NAMES=(
		'with space'
		"single'quote"
		'double"quote'
		'back\slash'
		'\u00e9 not an escape'
		$'tab\there'
		$'new\nline'
		'nl'
		$'nl\n'
		'Case'
		'case'
		'ünïcødé 日本語 🙂'
		$'\xff\xfe'
		$'latin1-caf\xe9'
		$'\xc3'
		$'\x01\x02ctrl\x1f\x7f'
		'-dash-first'
		'.hidden'
		'...'
		'*?[glob]{a,b}'
		'$HOME;&|<>`x`'
		' leading and trailing space '
		'%s%n%x'
		'"crc":0}'
		"$(printf 'あ%.0s' {1..85})"
		"$(printf '\xff%.0s' {1..255})"
	)
	t4dx_start
}

# q_list: NUL-separated names on stdin -> one shell-quoted name a line.
q_list() {
	local x
	while IFS= read -r -d '' x; do
		printf '%q\n' "$x"
	done
}

# The names in bytewise order, quoted one a line.
expected_listing() {
	printf '%s\0' "$@" | LC_ALL=C sort -z | q_list
}

# The entries of DIR in readdir order, quoted one a line.
listing() {
	find "$1" -mindepth 1 -maxdepth 1 -printf '%f\0' | q_list
}

is_utf8() {
	printf '%s' "$1" | iconv -f UTF-8 -t UTF-8 >/dev/null 2>&1
}

# check_items DIR: every name in DIR holds 'content of: NAME\n'.
check_items() {
	local n i=0
	for n in "${NAMES[@]}"; do
		i=$((i + 1))
		printf 'content of: %s\n' "$n" >"$T4DX_TMP/want"
		cmp -s "$T4DX_TMP/want" "$1/$n" ||
			fail "item #$i $(printf '%q' "$n"): $(cmp "$T4DX_TMP/want" "$1/$n" 2>&1)"
	done
}

@test "every name byte-sequence can be created, listed in bytewise order and read" {
	local n
	for n in "${NAMES[@]}"; do
		printf 'content of: %s\n' "$n" >"$ITEMS/$n"
	done
	run listing "$ITEMS"
	assert_output "$(expected_listing "${NAMES[@]}")"
	check_items "$ITEMS"
	run bash -c 'find "$1" -mindepth 1 -printf x | wc -c' _ "$ITEMS"
	assert_output "${#NAMES[@]}"
}

@test "special names survive a remount" {
	local n
	for n in "${NAMES[@]}"; do
		printf 'content of: %s\n' "$n" >"$ITEMS/$n"
	done
	t4dx_remount
	run listing "$ITEMS"
	assert_output "$(expected_listing "${NAMES[@]}")"
	check_items "$ITEMS"
}

@test "special names work for directories, nested, and in rename" {
	local n i=0
	for n in "${NAMES[@]}"; do
		mkdir "$ITEMS/$n"
		printf 'content of: %s\n' "$n" >"$ITEMS/$n/$n"
	done
	run listing "$ITEMS"
	assert_output "$(expected_listing "${NAMES[@]}")"
	# move every directory into one parent (a rename across directories)
	mkdir "$ITEMS/moved"
	for n in "${NAMES[@]}"; do
		mv "$ITEMS/$n" "$ITEMS/moved/$n"
	done
	t4dx_remount
	run listing "$ITEMS"
	assert_output "$(printf '%q' moved)"
	run listing "$ITEMS/moved"
	assert_output "$(expected_listing "${NAMES[@]}")"
	for n in "${NAMES[@]}"; do
		i=$((i + 1))
		printf 'content of: %s\n' "$n" >"$T4DX_TMP/want"
		cmp -s "$T4DX_TMP/want" "$ITEMS/moved/$n/$n" ||
			fail "dir #$i $(printf '%q' "$n"): content differs after rename + remount"
	done
}

@test "the WAL is valid UTF-8 JSON and wal-dump shows every name" {
	local n
	for n in "${NAMES[@]}"; do
		printf 'content of: %s\n' "$n" >"$ITEMS/$n"
	done
	mkdir "$ITEMS/"$'\xfe'dir
	"$T4DX" wal-dump "$DATA" >"$T4DX_TMP/dump"

	# one JSON object a line, valid UTF-8 (JSON text must be), in the dump
	# and in the WAL files themselves
	run iconv -f UTF-8 -t UTF-8 "$T4DX_TMP/dump"
	assert_success
	local f
	for f in "$DATA"/wal/*.jsonl; do
		run iconv -f UTF-8 -t UTF-8 "$f"
		assert_success
		run jq -e -s 'all(type == "object")' "$f"
		assert_success
	done
	run jq -e -s 'all(type == "object" and has("lsn") and has("op"))' "$T4DX_TMP/dump"
	assert_success
	run jq -c . "$T4DX_TMP/dump"
	assert_success
	assert_equal "${#lines[@]}" "$(wc -l <"$T4DX_TMP/dump")"

	# every name is in a put record: verbatim if it is UTF-8, else as
	# base64 or hex of its bytes
	local i=0 b64 hex count
	for n in "${NAMES[@]}"; do
		i=$((i + 1))
		b64=$(printf '%s' "$n" | base64 -w0)
		hex=$(printf '%s' "$n" | od -An -v -tx1 | tr -d ' \n')
		if is_utf8 "$n"; then
			count=$(jq --arg n "$n" -c \
				'select(.op == "put" and ([.. | strings] | index([$n])))' \
				"$T4DX_TMP/dump" | wc -l)
		else
			count=$(jq --arg a "$b64" --arg b "$hex" -c \
				'select(.op == "put" and ([.. | strings] | any(. == $a or . == $b)))' \
				"$T4DX_TMP/dump" | wc -l)
		fi
		((count >= 1)) ||
			fail "name #$i $(printf '%q' "$n") is in no put record of wal-dump (base64 $b64)"
	done
	b64=$(printf '\xfedir' | base64 -w0)
	run jq --arg a "$b64" --arg b fe646972 -c \
		'select(.op == "mkdir" and ([.. | strings] | any(. == $a or . == $b)))' \
		"$T4DX_TMP/dump"
	assert_equal "${#lines[@]}" 1
}
