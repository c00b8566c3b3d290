#!/usr/bin/env bash
# farm_cli.sh - the farm CLI and farmd as a user drives them: argument
# errors, a 3-node shm cluster up/status/down, objects written on one node
# and read on the others (--json checked with python3), a second cluster
# over a live one refused, a node started twice refused, a node alone in a
# 3-member cluster failing within its --timeout, a malformed config named
# by line, and SIGTERM removing a node's socket and pid file.
#
# Run by ctest as `bash tests/farm_cli.sh BUILD_DIR`. Every cluster lives in
# a private temporary directory and is stopped on any exit (trap); every
# command runs under `timeout`, so a hang fails the test instead of the suite.
set -u
. "$(dirname "$0")/helpers/lib.sh"
RUN_TIMEOUT=60

BUILD=${1:?usage: farm_cli.sh BUILD_DIR}
FARM=$BUILD/farm
FARMD=$BUILD/farmd
PY=$(command -v python3 || true)
if [ ! -x "$FARM" ] || [ ! -x "$FARMD" ]; then
	echo "SKIP: $FARM or $FARMD not built"
	exit 77
fi
if [ -z "$PY" ]; then
	echo "SKIP: python3 is needed to check --json output"
	exit 77
fi

T=$(mktemp -d /tmp/farm-cli-test.XXXXXX)
C=$T/c1               # the main cluster
STRAY=()              # farmd processes this script started by hand
cleanup() {
	for p in "${STRAY[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for d in "$T"/c*; do
		[ -f "$d/farm.conf" ] && timeout 20 "$FARM" cluster down --dir "$d" --timeout 3000 >/dev/null 2>&1
	done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# usage_error cmd...: exit code 2 and a message on stderr
usage_error() {
	if run 2 "$@"; then
		if [ -s "$T/err" ]; then ok "usage error: $* -> $(head -n1 "$T/err")"
		else bad "usage error without a message: $*"; fi
	fi
}

json() { "$PY" -c "import json,sys; d=json.load(open('$T/out')); $1"; }

echo "== argument errors exit 2 with a message"
usage_error "$FARM"
usage_error "$FARM" bogus
usage_error "$FARM" cluster
usage_error "$FARM" cluster sideways
usage_error "$FARM" cluster up
usage_error "$FARM" cluster up -n 0 --dir "$T/x"
usage_error "$FARM" cluster up -n three --dir "$T/x"
usage_error "$FARM" cluster up -n 3 --nic carrier-pigeon --dir "$T/x"
usage_error "$FARM" cluster up -n 3 --nic xdp --dir "$T/x"
usage_error "$FARM" cluster up -n 3 --netns --nic shm --dir "$T/x"
usage_error "$FARM" cluster up -n 3 --region-size 3M --dir "$T/x"
usage_error "$FARM" cluster up -n 2 --replicas 3 --dir "$T/x"
usage_error "$FARM" cluster up -n 3 --frobnicate --dir "$T/x"
usage_error "$FARM" cluster up -n 3 --name 'bad/name'
usage_error "$FARM" cluster status extra --dir "$T/x"
usage_error "$FARM" alloc
usage_error "$FARM" alloc 0 --dir "$T/x"
usage_error "$FARM" alloc 1000000 --dir "$T/x"
usage_error "$FARM" alloc 64 --near nowhere --dir "$T/x"
usage_error "$FARM" read 12345 --dir "$T/x"
usage_error "$FARM" read 0x00000001000000400 --dir "$T/x"
usage_error "$FARM" write 0x40 --dir "$T/x"
usage_error "$FARM" write 0x40 data --hex 00 --dir "$T/x"
usage_error "$FARM" write 0x40 --hex abc --dir "$T/x"
usage_error "$FARM" free --dir "$T/x"
usage_error "$FARM" bench write --dir "$T/x"
usage_error "$FARM" bench read --remote --local --dir "$T/x"
usage_error "$FARM" bench read --count 0 --dir "$T/x"
usage_error "$FARMD"
usage_error "$FARMD" --config "$T/none.conf"
usage_error "$FARMD" --config "$T/none.conf" --id 0
usage_error "$FARMD" --config "$T/none.conf" --id 1 --timeout soon
usage_error "$FARMD" --bogus
for cmd in "" "cluster" "cluster up" "cluster status" "cluster down" alloc read write free bench; do
	# shellcheck disable=SC2086
	if run 0 "$FARM" $cmd --help && grep -q "usage:" "$T/out"; then ok "farm $cmd --help"
	else bad "farm $cmd --help"; fi
done
if run 0 "$FARMD" --help && grep -q "usage:" "$T/out"; then ok "farmd --help"; else bad "farmd --help"; fi
if run 1 "$FARM" cluster status --dir "$T/nothing" && grep -q "no cluster" "$T/err"; then
	ok "status of no cluster: exit 1, says so"
fi

NOBODY=(env -u XDG_RUNTIME_DIR setpriv --reuid=nobody --regid=nogroup --clear-groups)
# As root, also as an unprivileged user (when that user can reach the build).
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null && "${NOBODY[@]}" test -x "$FARM"; then
	if run 1 "${NOBODY[@]}" "$FARM" cluster up -n 3 --netns && grep -q "needs root" "$T/err"; then
		ok "--netns as an unprivileged user: exit 1, $(head -n1 "$T/err")"
	fi
	if run 1 "${NOBODY[@]}" "$FARM" cluster status && grep -q "/tmp/farm-$(id -u nobody)/default" "$T/err"; then
		ok "unprivileged default run dir: /tmp/farm-UID/default"
	fi
fi

echo "== malformed config: farmd exits 2 naming the line"
printf 'cluster = t\nnic = shm\nregion_size = 1M\nreplicas = lots\nmember = 1 a\n' >"$T/bad.conf"
if run 2 "$FARMD" --config "$T/bad.conf" --id 1; then
	if grep -q "line 4" "$T/err"; then ok "malformed config -> $(head -n1 "$T/err")"
	else bad "malformed config error does not name line 4: $(cat "$T/err")"; fi
fi
printf 'cluster = t\nnic = shm\nmember = 1 a\n' >"$T/one.conf"
if run 2 "$FARMD" --config "$T/one.conf" --id 7 && grep -q "not a member" "$T/err"; then
	ok "farmd --id of a non-member: exit 2"
fi

echo "== 3-node shm cluster: up"
if ! run 0 "$FARM" cluster up -n 3 --region-size 1M --dir "$C" --name cli --timeout 15000 --json; then
	cat "$C"/node-*.log 2>/dev/null | tail -n 20
	echo "cannot continue without a cluster"
	exit 1
fi
if json 'assert d["ok"] and len(d["nodes"]) == 3, d
assert all(n["state"] == "ready" for n in d["nodes"]), d["nodes"]
m = d["map"]; assert len(m) == d["regions"] == 12, m
for r in m:
    reps = [r["primary"]] + r["backups"]
    assert len(reps) == 3 and len(set(reps)) == 3 and set(reps) == {1, 2, 3}, r
assert {r["primary"] for r in m} == {1, 2, 3}, "every node is a primary somewhere"'; then
	ok "cluster up --json: 3 ready nodes, 12 regions, 3 distinct replicas each"
else
	bad "cluster up --json output: $(cat "$T/out")"
fi
for i in 1 2 3; do
	[ -S "$C/node-$i.sock" ] && [ -f "$C/node-$i.pid" ] || bad "node $i: socket or pid file missing"
done

if run 0 "$FARM" cluster status --dir "$C" && grep -q "^node 3 pid [0-9]* ready" "$T/out" &&
	[ "$(grep -c '^region ' "$T/out")" -eq 12 ]; then
	ok "cluster status (plain): nodes ready, 12 region lines"
fi

echo "== a second cluster over the live one is refused"
if run 1 "$FARM" cluster up -n 3 --region-size 1M --dir "$C" --name cli; then
	if grep -q "already running" "$T/err"; then ok "second cluster up refused: $(head -n1 "$T/err")"
	else bad "refusal does not say why: $(cat "$T/err")"; fi
fi
PID1=$(cat "$C/node-1.pid")
if kill -0 "$PID1" 2>/dev/null; then ok "the first cluster's node 1 still runs"; else bad "node 1 died"; fi

echo "== a node started twice with the same id is refused"
if run 1 "$FARMD" --config "$C/farm.conf" --id 2 --timeout 2000 && grep -q "already running" "$T/err"; then
	ok "farmd --id 2 again: exit 1, $(grep -o 'node 2.*running[^;]*' "$T/err" | head -n1)"
fi

echo "== objects: allocate on every node, write on one, read on the others"
declare -A ADDR
for i in 1 2 3; do
	if run 0 "$FARM" alloc 100 --node "$i" --dir "$C" --json &&
		a=$(json 'assert d["ok"]; print(d["addr"])'); then
		ADDR[$i]=$a
		ok "alloc on node $i -> $a (primary $(json 'print(d["primary"])'))"
	else
		bad "alloc on node $i: $(cat "$T/out" "$T/err")"
	fi
done
remote_reads=0
for i in 1 2 3; do
	a=${ADDR[$i]:-}
	[ -n "$a" ] || continue
	msg="object $i written by node $i at $a $(date +%s%N)"
	if ! run 0 "$FARM" write "$a" "$msg" --node "$i" --dir "$C" --json; then continue; fi
	want=$(printf '%s' "$msg" | od -An -tx1 | tr -d ' \n')
	for j in 1 2 3; do
		[ "$j" -eq "$i" ] && continue
		if run 0 "$FARM" read "$a" --len ${#msg} --node "$j" --dir "$C" --json &&
			json "assert d['ok'] and d['hex'] == '$want', d; assert d['version'] > 0"; then
			p=$(json 'print(d["primary"])')
			[ "$p" -ne "$j" ] && remote_reads=$((remote_reads + 1))
			ok "node $j reads node $i's object $a (primary $p)"
		else
			bad "node $j reading $a: $(cat "$T/out" "$T/err")"
		fi
	done
	# The plain and raw forms agree with --json.
	if run 0 "$FARM" read "$a" --len ${#msg} --raw --node 3 --dir "$C" && [ "$(cat "$T/out")" = "$msg" ]; then
		ok "read --raw returns the bytes written"
	else
		bad "read --raw: '$(cat "$T/out")' != '$msg'"
	fi
done
if [ "$remote_reads" -gt 0 ]; then ok "$remote_reads reads were of objects whose primary is another node"
else bad "no read crossed nodes"; fi

echo "== --near keeps the region; --hex writes bytes"
if [ -n "${ADDR[2]:-}" ] && run 0 "$FARM" alloc 64 --near "${ADDR[2]}" --node 1 --dir "$C"; then
	b=$(cat "$T/out")
	if [ "${b:0:10}" = "${ADDR[2]:0:10}" ] && [ "$b" != "${ADDR[2]}" ]; then ok "alloc --near ${ADDR[2]} -> $b (same region)"
	else bad "alloc --near ${ADDR[2]} gave $b"; fi
	if run 0 "$FARM" write "$b" --hex 00ff10 --node 3 --dir "$C" &&
		run 0 "$FARM" read "$b" --len 3 --node 2 --dir "$C" && grep -q "hex=00ff10$" "$T/out"; then
		ok "write --hex 00ff10, read back: $(cat "$T/out")"
	else
		bad "write --hex / read: $(cat "$T/out" "$T/err")"
	fi
fi

echo "== bad addresses are runtime errors (exit 1), not crashes"
run 1 "$FARM" read 0x0000fff000000040 --dir "$C" && ok "read of an unknown region: $(head -n1 "$T/err")"
run 1 "$FARM" read 0x00000000fffffff0 --dir "$C" && ok "read outside the region: $(head -n1 "$T/err")"
if [ -n "${ADDR[1]:-}" ]; then
	run 1 "$FARM" read "${ADDR[1]}" --len 5000 --dir "$C" && ok "read past the object's end: $(head -n1 "$T/err")"
	run 0 "$FARM" free "${ADDR[1]}" --node 2 --dir "$C" && ok "free ${ADDR[1]} from node 2"
	run 1 "$FARM" read "${ADDR[1]}" --dir "$C" && ok "read of a freed object: $(head -n1 "$T/err")"
fi
run 2 "$FARM" alloc 64 --node 9 --dir "$C" && ok "--node of a non-member: exit 2"

echo "== bench read (short) reports a rate and a latency"
if run 0 "$FARM" bench read --count 20000 --dir "$C" --json &&
	json 'assert d["ok"] and d["where"] == "remote" and d["target"] != d["node"], d
assert d["ops_per_sec"] > 0 and 0 < d["median_ns"] <= d["p99_ns"], d'; then
	ok "bench read remote: $(json 'print(int(d["ops_per_sec"]), "reads/s, median", d["median_ns"], "ns")')"
else
	bad "bench read: $(cat "$T/out" "$T/err")"
fi

echo "== SIGTERM: a node removes its socket and pid file"
PID3=$(cat "$C/node-3.pid")
kill -TERM "$PID3"
for _ in $(seq 100); do
	[ -e "$C/node-3.sock" ] || [ -e "$C/node-3.pid" ] || break
	sleep 0.05
done
if [ ! -e "$C/node-3.sock" ] && [ ! -e "$C/node-3.pid" ]; then ok "node 3 (pid $PID3) removed its socket and pid file"
else bad "node 3's socket or pid file still there after SIGTERM"; fi
if grep -q "stopped" "$C/node-3.log"; then ok "node 3 logged its clean stop"; else bad "no 'stopped' in node 3's log"; fi
if run 1 "$FARM" cluster status --dir "$C" --json && json 'assert not d["ok"]; assert [n["state"] for n in d["nodes"]][2] == "dead", d'; then
	ok "status after the loss: exit 1, node 3 dead"
fi

echo "== cluster down (node 2 frozen with SIGSTOP: SIGKILL after --timeout)"
kill -STOP "$(cat "$C/node-2.pid")"
if run 0 "$FARM" cluster down --dir "$C" --timeout 1000 --json &&
	json 'assert d["ok"] and len(d["stopped"]) == 2 and d["killed"] == 1, d'; then
	ok "cluster down stopped the 2 remaining nodes, SIGKILLed the frozen one"
fi
for i in 1 2 3; do
	[ -e "$C/node-$i.sock" ] && bad "node $i socket left behind"
done
if [ -e "/proc/$PID1" ] && ! grep -q '^[^)]*) Z' "/proc/$PID1/stat" 2>/dev/null; then bad "node 1 (pid $PID1) still alive"; else ok "node 1 is gone"; fi
run 0 "$FARM" cluster down --dir "$C" && ok "cluster down again: nothing to do, exit 0"
if grep -lE "AddressSanitizer|LeakSanitizer|runtime error:" "$C"/node-*.log; then
	bad "a sanitizer complained in a node's log"
fi

echo "== cluster up with a node that fails: the others are stopped, its log is shown"
REAL_FARMD="$(cd "$(dirname "$FARMD")" && pwd)/farmd"
cat >"$T/faulty-farmd" <<FAULTY
#!/usr/bin/env bash
# node 2 fails at start; the others are the real farmd
case " \$* " in *" --id 2 "*) echo "simulated start-up failure of node 2" >&2; exit 3;; esac
exec "$REAL_FARMD" "\$@"
FAULTY
chmod +x "$T/faulty-farmd"
if FARMD="$T/faulty-farmd" run 1 "$FARM" cluster up -n 3 --region-size 1M --dir "$T/c3" --timeout 5000; then
	if grep -q "node 2.*failed to start" "$T/err" && grep -q "simulated start-up failure" "$T/err"; then
		ok "failed start reported with the node's log tail"
	else
		bad "failed start not explained: $(cat "$T/err")"
	fi
	left=0
	for f in "$T"/c3/node-*.pid; do
		[ -e "$f" ] && p=$(cat "$f") && [ -e "/proc/$p" ] && ! grep -q ') Z' "/proc/$p/stat" && left=$((left + 1))
	done
	if [ "$left" -eq 0 ] && ! ls "$T"/c3/node-*.sock >/dev/null 2>&1; then ok "the other nodes were stopped, no socket left"
	else bad "$left node(s) left running after a failed cluster up"; fi
fi

echo "== the admin protocol itself: errors as JSON, an over-long line survived, stop"
if run 0 "$FARM" cluster up -n 1 --region-size 1M --dir "$T/c4"; then
	if timeout 30 "$PY" - "$T/c4/node-1.sock" >"$T/out" 2>&1 <<'PYADMIN'; then
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
f = s.makefile("rwb")
def call(line):
    f.write(line + b"\n"); f.flush()
    return json.loads(f.readline())
r = call(b"frobnicate"); assert r["ok"] is False and r["code"] == -22 and "unknown command" in r["error"], r
r = call(b"alloc"); assert not r["ok"] and "usage" in r["error"], r
r = call(b"read " + b" ".join(b"%d" % i for i in range(1, 65))); assert not r["ok"] and "too many" in r["error"], r
r = call(b"write 0x80 " + b"ab" * 200000); assert not r["ok"] and r["code"] == -7, r  # E2BIG
r = call(b"status"); assert r["ok"] and r["node"] == 1, r  # the connection survived
r = call(b"stop"); assert r["ok"] and r["stopping"], r
print("admin protocol ok")
PYADMIN
		ok "$(cat "$T/out")"
	else
		bad "admin protocol: $(cat "$T/out")"
	fi
	for _ in $(seq 100); do [ -e "$T/c4/node-1.sock" ] || break; sleep 0.05; done
	if [ ! -e "$T/c4/node-1.sock" ]; then ok "admin 'stop' stopped the node and removed its socket"
	else bad "socket still there after admin stop"; fi
fi

echo "== a node whose peers never come fails within its --timeout"
cat >"$T/lone.conf" <<EOF
cluster = lone
nic = shm
region_size = 1M
run_dir = $T/c2
member = 1 farm-lone-$$-1
member = 2 farm-lone-$$-2
member = 3 farm-lone-$$-3
EOF
start=$(date +%s%N)
if run 1 "$FARMD" --config "$T/lone.conf" --id 1 --timeout 1500; then
	ms=$(( ($(date +%s%N) - start) / 1000000 ))
	if [ "$ms" -lt 10000 ]; then ok "lone node exits 1 after $ms ms: $(grep -m1 'cannot start' "$T/err")"
	else bad "lone node took $ms ms with --timeout 1500"; fi
	[ -e "$T/c2/node-1.pid" ] && bad "lone node left its pid file"
fi

echo "== SIGTERM during start-up (waiting for peers) also ends the node"
"$FARMD" --config "$T/lone.conf" --id 2 --timeout 20000 2>"$T/err2" &
p=$!
STRAY+=("$p")
for _ in $(seq 100); do [ -e "$T/c2/node-2.pid" ] && break; sleep 0.05; done
kill -TERM "$p"
if timeout 10 tail --pid="$p" -f /dev/null; then
	wait "$p" 2>/dev/null
	ok "node in start-up stopped by SIGTERM (exit $?)"
	[ -e "$T/c2/node-2.pid" ] && bad "pid file left after SIGTERM during start-up"
else
	bad "node in start-up ignored SIGTERM"
fi

echo
if [ "$fails" -ne 0 ]; then
	echo "farm_cli: $fails check(s) failed"
	exit 1
fi
echo "farm_cli: all checks passed"
