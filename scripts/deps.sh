#!/bin/sh
# deps.sh - install what building or testing needs, only what is missing.
#
#   scripts/deps.sh build   compiler-side needs: pkg-config, libjson-c-dev,
#                           libreadline-dev (the interactive prompt)
#   scripts/deps.sh test    the above plus cmocka, pytest, clang, valgrind,
#                           mandoc (checking the man pages)
#   scripts/deps.sh bench   the above plus ngircd (the comparison server)
#
# Debian/Ubuntu only (apt-get); uses sudo when not root.  Does nothing and
# prints nothing when everything is already there.
set -eu

want="pkg-config libjson-c-dev libreadline-dev"
case "${1:-build}" in
build) ;;
test) want="$want libcmocka-dev python3 python3-pytest clang libclang-rt-14-dev valgrind mandoc tmux" ;;
bench) want="$want python3 clang ngircd" ;;
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
