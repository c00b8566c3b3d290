# tests/helpers/lib.sh - what the shell tests share, sourced right after `set -u`:
# ok/bad with their counts, run (an exit code checked under a timeout), and
# the skip (exit 77) checks. run writes the command's stdout to $T/out and
# its stderr to $T/err: the caller sets T before calling it.
fails=0
passes=0
ok() { echo "ok   $*"; passes=$((passes + 1)); }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

# run EXPECTED_CODE cmd...: bounded by RUN_TIMEOUT seconds (default 60); on
# a wrong code, the last RUN_TAIL lines (default 8) of its stderr are shown.
run() {
	local want=$1 got
	shift
	timeout "${RUN_TIMEOUT:-60}" "$@" >"$T/out" 2>"$T/err"
	got=$?
	if [ "$got" -ne "$want" ]; then
		bad "exit $got (want $want): $*"
		sed 's/^/     | /' "$T/err" | tail -n "${RUN_TAIL:-8}"
		return 1
	fi
	return 0
}

# need_built FILE...: skip unless every FILE is an executable.
need_built() {
	for f in "$@"; do
		if [ ! -x "$f" ]; then
			echo "SKIP: $f not built"
			exit 77
		fi
	done
}

# need_zookeeper: skip without python3, java and Debian's zookeeper package.
need_zookeeper() {
	if ! command -v python3 >/dev/null || [ ! -x /usr/bin/java ] ||
		[ ! -r /usr/share/java/zookeeper.jar ]; then
		echo "SKIP: needs python3, java and Debian's zookeeper package"
		exit 77
	fi
}

# node_status SOCKET: a farmd's `status` reply (one JSON line) on stdout.
node_status() {
	python3 - "$1" <<'PYEOF'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(b"status\n")
d = b""
while not d.endswith(b"\n"):
    d += s.recv(65536)
print(d.decode().strip())
PYEOF
}
