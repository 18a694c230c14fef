#!/bin/bash
# demo.sh - a live local conversation to join: a server5 on a free port,
# two scripted participants that greet and answer, and your own chat5 in
# the foreground.  Type to talk; "exit", Control-D or Control-C ends it all
# and leaves nothing running.
#
#   scripts/demo.sh [YOUR_NAME]        (make demo NAME=...)
set -uo pipefail
cd "$(dirname "$0")/.."

me=${1:-${USER:-you}}
dir=$(mktemp -d)
pids=()

# In a terminal, job control gives each background job a process group of
# its own and the terminal to the foreground chat5 alone: Control-C then
# reaches chat5 only (which ends cleanly, as "exit" does), not make, this
# script, the server or the participants.
if [ -t 0 ]; then
	set -m
fi

cleanup() {
	# Participants first (their input closes), then the server: each job
	# is a process group with job control, a single process without.
	for fd in 7 8; do eval "exec $fd>&-" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do
		kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 0' INT TERM HUP

# Waits (bounded) until a file has a line matching a pattern; prints it.
wait_line() {
	local file=$1 pattern=$2 i
	for i in $(seq 200); do
		if grep -m1 -E "$pattern" "$file" 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	echo "demo: gave up waiting for '$pattern' in $file" >&2
	return 1
}

./server5 0 2> "$dir/server.log" &
pids+=($!)
port=$(wait_line "$dir/server.log" 'listening on port' | sed 's/.*port //') || exit 1

# A participant: a chat5 whose input is a FIFO we write replies into, and
# whose output a small loop reads.  It answers people, never other bots.
bot() {
	local name=$1 fd=$2 style=$3
	mkfifo "$dir/$name.in"
	{
		./chat5 -q "$name" 0 "127.0.0.1:$port" < "$dir/$name.in" 2>/dev/null |
		while IFS= read -r line; do
			local who=${line%%: *} text=${line#*: }
			case $who in ada | lin) continue ;; esac
			case $style in
			ada) printf 'Hi %s! You said "%s". Try typing more, or exit to leave.\n' "$who" "$text" ;;
			lin) printf '%s, that is %d characters. The time here is %s.\n' "$who" "${#text}" "$(date +%H:%M:%S)" ;;
			esac > "$dir/$name.in"
		done
	} &
	pids+=($!)
	eval "exec $fd>\"\$dir/\$name.in\""	# keep its input open
}
bot ada 7 ada
bot lin 8 lin
wait_line "$dir/server.log" 'subscribed .*' >/dev/null || exit 1

# Greet once the newcomer has subscribed (their port is the 3rd subscriber).
{
	for i in $(seq 400); do
		[ "$(grep -c 'subscribed ' "$dir/server.log")" -ge 3 ] && break
		sleep 0.05
	done
	echo "Welcome, $me! I am ada, a scripted participant. Say something." >&7
	echo "And I am lin. Everything you type reaches both of us." >&8
} &
pids+=($!)

echo "demo: server5 on port $port with ada and lin; you are $me. Type exit (or Control-D) to leave." >&2
./chat5 "$me" 0 "127.0.0.1:$port"
status=$?
# Control-C ends chat5 as cleanly as exit: its own status says whether
# everything typed was delivered.
exit $status
