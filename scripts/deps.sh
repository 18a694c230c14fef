#!/bin/sh
# deps.sh - install what building or testing needs, only what is missing.
#
#   scripts/deps.sh build   compiler-side needs: pkg-config, libjson-c-dev,
#                           libreadline-dev (the interactive prompt),
#                           libnats-dev (server5 --nats)
#   scripts/deps.sh test    the above plus what the tests run: cmocka, pytest,
#                           clang and its sanitizer runtime, valgrind, tmux,
#                           mandoc, groff and man (the man pages), iproute2
#                           (network namespaces), systemd (systemd-analyze),
#                           nats-server (clusters), locales (a Latin-1 locale)
#   scripts/deps.sh bench   the above plus ngircd (the comparison server) and
#                           netcat-openbsd (the cost of moving the bytes)
#
# Debian/Ubuntu only (apt-get); uses sudo when not root.  Does nothing and
# prints nothing when everything is already there.
set -eu

want="pkg-config libjson-c-dev libreadline-dev libnats-dev"
test="libcmocka-dev python3 python3-pytest clang libclang-rt-14-dev valgrind tmux
      mandoc groff-base man-db iproute2 systemd nats-server locales"
case "${1:-build}" in
build) ;;
test) want="$want $test" ;;
bench) want="$want $test ngircd netcat-openbsd" ;;
*) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac

missing=""
for pkg in $want; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
	echo "deps.sh: missing:$missing (install them with your package manager)" >&2
	exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
	sudo=""
elif command -v sudo >/dev/null 2>&1; then
	sudo="sudo"
else
	echo "deps.sh: missing:$missing; run as root or install sudo" >&2
	exit 1
fi
echo "deps.sh: installing$missing" >&2
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
# shellcheck disable=SC2086
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >&2
