#!/bin/sh
# bench/run.sh - one chatbench run against a fresh server on loopback.
#
#   bench/run.sh server5|ngircd|trivial [chatbench options...]
#
# Starts the server (server5 on a free port, ngircd with bench/ngircd.conf
# on port 26667, or the trivial relay), runs build/bench/chatbench against
# it with --server-pid, stops the server and removes its log (kept with
# KEEP_LOG=1).  Examples:
#
#   bench/run.sh server5 -r 100 -s 2 -w 1000 -d 8        # a matrix point
#   bench/run.sh ngircd  -r 1000 -s 1 --rate 50 -d 8
#   SERVER5_ARGS="--max-clients 100 --stall-timeout 5" bench/run.sh server5 -r 10 -d 5
#
# SERVER5 (default ./server5) and BENCH_TOOLS (default build/bench) say
# where the programs are; SERVER5_ARGS replaces server5's limit options
# (by default only the connection counts are raised, as `make bench` does:
# its queue options, --queue-limit and --stall-timeout, stay the defaults).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
tools=${BENCH_TOOLS:-$root/build/bench}
server5=${SERVER5:-$root/server5}
server5_args=${SERVER5_ARGS:---max-clients 10000 --max-per-ip 10000 --max-conns 10000}

if [ $# -lt 1 ]; then
	echo "usage: bench/run.sh server5|ngircd|trivial [chatbench options...]" >&2
	exit 2
fi
kind=$1
shift
# chatbench and the trivial relay raise their own limit; ngircd does not.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
log=$(mktemp "${TMPDIR:-/tmp}/chatbench-server.XXXXXX")

case $kind in
server5)
	# shellcheck disable=SC2086
	"$server5" $server5_args 127.0.0.1:0 2>"$log" &
	proto=server5 ready="listening on port" ;;
ngircd)
	ngircd -n -f "$here/ngircd.conf" >"$log" 2>&1 &
	proto=irc ready="ready." ;;
trivial)
	"$tools/trivial_relay" 0 2>"$log" &
	proto=server5 ready="listening on port" ;;
*)
	echo "bench/run.sh: server5, ngircd or trivial, not '$kind'" >&2
	exit 2 ;;
esac
pid=$!

stop() {
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	if [ "${KEEP_LOG:-0}" = 1 ]; then
		echo "bench/run.sh: server log in $log" >&2
	else
		rm -f "$log"
	fi
}
trap stop EXIT
trap 'exit 130' INT TERM

i=0
until grep -q "$ready" "$log" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 150 ] || ! kill -0 "$pid" 2>/dev/null; then
		echo "bench/run.sh: $kind did not start:" >&2
		cat "$log" >&2
		exit 1
	fi
	sleep 0.1
done
if [ "$kind" = ngircd ]; then
	port=26667
else
	port=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$log" | head -n 1)
fi

"$tools/chatbench" --proto "$proto" --port "$port" --server-pid "$pid" "$@"
