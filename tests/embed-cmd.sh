#!/bin/bash
# embed-cmd.sh - embedder programs for the tests of vector.embedder
# "command" (vectors.bats): each mode speaks the protocol of core/embed_cmd.c
# (one {"id":N,"text":"..."} line in, one {"id":N,"vector":[DIM numbers]}
# or {"id":N,"vector":null} out), or breaks it in one way.
#
#   embed-cmd.sh answer DIM          [1, characters of the text, 0...];
#                                    null for a text holding "nothing"
#   embed-cmd.sh zeros DIM           answers as answer, a vector of zeros
#                                    for a text holding "zero"
#   embed-cmd.sh twice DIM           answers as answer, twice for a text
#                                    holding "twice" (a line too many)
#   embed-cmd.sh bare DIM            answers the bare array, no id
#   embed-cmd.sh crash               reads a request, exits 3
#   embed-cmd.sh crash-once FILE DIM crashes if FILE is missing (and makes
#                                    it), else answers
#   embed-cmd.sh hang PIDFILE        reads requests and never answers; it
#                                    and a child of its own (a sleep) write
#                                    their pids to PIDFILE
#   embed-cmd.sh garbage             answers a line that is not JSON
#   embed-cmd.sh wrongdim DIM        answers DIM - 1 numbers
#   embed-cmd.sh nan DIM             answers an array with a string in it
#   embed-cmd.sh bigint DIM          answers an array whose first number
#                                    is 1e41 spelt in digits (no float)
#   embed-cmd.sh bigint23 DIM        answers 99999999999999999999999 (1e23
#                                    written as an integer), 1, 0...
#   embed-cmd.sh poison DIM          answers as answer, exits 3 on a text
#                                    holding "poison" (one content it
#                                    always crashes on)
#   embed-cmd.sh slow SECS DIM       answers as answer, each after SECS
#   embed-cmd.sh setsid PIDFILE DIM  starts a sleep in a session of its
#                                    own (out of its process group),
#                                    writes its pid to PIDFILE, answers
#   embed-cmd.sh once PIDFILE DIM    writes its pid to PIDFILE, answers one
#                                    request as answer, then exits 0
#   embed-cmd.sh setsid-once PIDFILE DIM
#                                    as once, after starting a sleep in a
#                                    session of its own whose pid goes to
#                                    PIDFILE.child
#   embed-cmd.sh orphans DIM         answers as answer, after leaving at
#                                    each request a short sleep whose
#                                    parent exits at once (an orphan)
#   embed-cmd.sh load SECS DIM       sleeps SECS once at start (a model
#                                    loading), then answers as answer
#   embed-cmd.sh down-if FLAG DIM    answers as answer while the file FLAG
#                                    is missing; exits 3 at a request
#                                    while it exists (an outage)
#   embed-cmd.sh slow-down-if FLAG SECS DIM
#                                    as down-if, each answer after SECS
set -u
mode=$1
shift

answer() {
	exec jq -c --unbuffered --argjson dim "$1" '{id, vector:
		(if (.text | test("nothing")) then null
		 else [1, (.text | length)] + [range($dim - 2) | 0] end)}'
}

case $mode in
answer) answer "$1" ;;
zeros)
	exec jq -c --unbuffered --argjson dim "$1" '{id, vector:
		(if (.text | test("zero")) then [range($dim) | 0]
		 else [1, (.text | length)] + [range($dim - 2) | 0] end)}'
	;;
crash)
	read -r _
	exit 3
	;;
crash-once)
	if [[ ! -e $1 ]]; then
		: >"$1"
		read -r _
		exit 3
	fi
	answer "$2"
	;;
hang)
	sleep 100000 &
	sleeper=$!
	# at the end of its input (the daemon gone), it and its child go
	trap 'kill "$sleeper" 2>/dev/null' EXIT
	printf '%s\n%s\n' "$$" "$sleeper" >"$1"
	while read -r _; do :; done
	;;
twice)
	while IFS= read -r req; do
		line=$(jq -c --argjson dim "$1" '{id, vector:
			([1, (.text | length)] + [range($dim - 2) | 0])}' <<<"$req")
		printf '%s\n' "$line"
		[[ $req == *twice* ]] && printf '%s\n' "$line"
	done
	;;
bare)
	exec jq -c --unbuffered --argjson dim "$1" \
		'[1, (.text | length)] + [range($dim - 2) | 0]'
	;;
garbage)
	while read -r _; do echo 'this is not json'; done
	;;
wrongdim)
	exec jq -c --unbuffered --argjson dim "$1" \
		'{id, vector: ([range($dim - 2) | 0.5] + [1])}'
	;;
bigint23)
	while IFS= read -r req; do
		id=$(jq -r .id <<<"$req")
		zeros=$(printf ',0%.0s' $(seq 3 "$1"))
		printf '{"id":%s,"vector":[99999999999999999999999,1%s]}\n' \
			"$id" "$zeros"
	done
	;;
nan)
	exec jq -c --unbuffered --argjson dim "$1" \
		'{id, vector: (["x"] + [range($dim - 1) | 1])}'
	;;
bigint)
	while IFS= read -r req; do
		id=$(jq .id <<<"$req")
		printf '{"id":%s,"vector":[1%s' "$id" "$(printf '0%.0s' {1..41})"
		for ((i = 1; i < $1; i++)); do printf ',1'; done
		printf ']}\n'
	done
	;;
poison)
	while IFS= read -r req; do
		[[ $req == *poison* ]] && exit 3
		jq -c --argjson dim "$1" '{id, vector:
			([1, (.text | length)] + [range($dim - 2) | 0])}' <<<"$req"
	done
	;;
slow)
	while IFS= read -r req; do
		sleep "$1"
		jq -c --argjson dim "$2" '{id, vector:
			([1, (.text | length)] + [range($dim - 2) | 0])}' <<<"$req"
	done
	;;
load)
	sleep "$1"
	answer "$2"
	;;
setsid)
	setsid sleep 100000 </dev/null >/dev/null 2>&1 &
	printf '%s\n' "$!" >"$1"
	answer "$2"
	;;
once)
	echo "$$" >"$1"
	IFS= read -r req || exit 0
	jq -c --argjson dim "$2" '{id, vector:
		([1, (.text | length)] + [range($dim - 2) | 0])}' <<<"$req"
	exit 0
	;;
setsid-once)
	setsid sleep 100000 </dev/null >/dev/null 2>&1 &
	printf '%s\n' "$!" >"$1.child"
	echo "$$" >"$1"
	IFS= read -r req || exit 0
	jq -c --argjson dim "$2" '{id, vector:
		([1, (.text | length)] + [range($dim - 2) | 0])}' <<<"$req"
	exit 0
	;;
orphans)
	while IFS= read -r req; do
		( sleep 0.2 </dev/null >/dev/null 2>&1 & )
		jq -c --argjson dim "$1" '{id, vector:
			([1, (.text | length)] + [range($dim - 2) | 0])}' <<<"$req"
	done
	;;
slow-down-if)
	while IFS= read -r req; do
		[[ -e $1 ]] && exit 3
		sleep "$2"
		jq -c --argjson dim "$3" '{id, vector:
			([1, (.text | length)] + [range($dim - 2) | 0])}' <<<"$req"
	done
	;;
down-if)
	while IFS= read -r req; do
		[[ -e $1 ]] && exit 3
		jq -c --argjson dim "$2" '{id, vector:
			([1, (.text | length)] + [range($dim - 2) | 0])}' <<<"$req"
	done
	;;
*)
	echo "embed-cmd.sh: unknown mode $mode" >&2
	exit 2
	;;
esac
