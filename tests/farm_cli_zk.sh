#!/usr/bin/env bash
# farm_cli_zk.sh - `farm cluster up --zk` as a user drives it: a standalone
# ZooKeeper started in RUN_DIR/zk, three farmd with ZooKeeper membership (one
# CM, configuration 1), an object written on its primary; kill -9 of that
# primary: the survivors adopt configuration 2 without it (logged, shown by
# `status`), the object still reads (a backup was promoted) and takes writes;
# `down` stops the nodes and the ZooKeeper server by pid. Bad combinations
# (--lease-ms without --zk, --zk with --netns) are usage errors.
#
# Run by ctest as `bash tests/farm_cli_zk.sh BUILD_DIR`; exit 77 (skipped)
# when ZooKeeper (java, the server jar) or libzookeeper-mt is missing.
set -u
. "$(dirname "$0")/helpers/lib.sh"

BUILD=${1:?usage: farm_cli_zk.sh BUILD_DIR}
FARM=$BUILD/farm
FARMD=$BUILD/farmd
PY=$(command -v python3 || true)
if [ ! -x "$FARM" ] || [ ! -x "$FARMD" ]; then
	echo "SKIP: $FARM or $FARMD not built"
	exit 77
fi
need_zookeeper

T=$(mktemp -d /tmp/farm-cli-zk.XXXXXX)
C=$T/c
NAME=zk$$
cleanup() {
	[ -f "$C/farm.conf" ] && timeout 20 "$FARM" cluster down --dir "$C" --timeout 3000 >/dev/null 2>&1
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

out=$(timeout 20 "$FARM" cluster up -n 2 --lease-ms 30 --dir "$T/x" 2>&1)
[ $? -eq 2 ] && ok "--lease-ms without --zk is a usage error" || bad "--lease-ms without --zk: $out"

if ! timeout 90 "$FARM" cluster up -n 3 --zk --region-size 1M --dir "$C" --name "$NAME" \
	>"$T/up.out" 2>"$T/up.err"; then
	if grep -q "without ZooKeeper support" "$C"/node-*.log 2>/dev/null; then
		echo "SKIP: libfarm built without libzookeeper-mt"
		exit 77
	fi
	bad "cluster up --zk"
	tail -n 20 "$T/up.err" "$C"/node-*.log 2>/dev/null | sed 's/^/     | /'
	exit 1
fi
ok "cluster up --zk: 3 nodes ready"
ZKPID=$(cat "$C/zk.pid" 2>/dev/null)
if [ -n "$ZKPID" ] && tr '\0' ' ' <"/proc/$ZKPID/cmdline" | grep -q ZooKeeperServerMain; then
	ok "ZooKeeper runs (pid $ZKPID, $(cat "$C/zk.hosts"))"
else
	bad "no ZooKeeper pid file or process"
fi

status_json() { # node -> status JSON on stdout
	node_status "$C/node-$1.sock"
}

# One CM, configuration 1 everywhere.
cms=0
for n in 1 2 3; do
	j=$(status_json $n)
	echo "$j" | "$PY" -c 'import json,sys; j=json.load(sys.stdin); assert j["membership"]=="zookeeper" and j["config_id"]==1 and j["serving"], j' ||
		bad "node $n status: $j"
	echo "$j" | "$PY" -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["is_cm"] else 1)' && cms=$((cms + 1))
done
[ $cms -eq 1 ] && ok "one CM, configuration 1 on every node" || bad "$cms CMs"

# An object on node 3 (its primary), then node 3 dies.
A=$(timeout 20 "$FARM" alloc 64 --node 3 --dir "$C" --json | "$PY" -c 'import json,sys; j=json.load(sys.stdin); print(j["addr"] if j["primary"]==3 else "")')
[ -n "$A" ] && ok "object $A led by node 3" || bad "alloc on node 3"
timeout 20 "$FARM" write "$A" --hex 6869 --node 1 --dir "$C" >/dev/null || bad "write before the kill"
kill -9 "$(cat "$C/node-3.pid")"
t0=$(date +%s%N)
for i in $(seq 100); do
	grep -q "configuration 2" "$C/node-1.log" 2>/dev/null &&
		grep -q "configuration 2" "$C/node-2.log" 2>/dev/null && break
	sleep 0.05
done
if grep -q "configuration 2: 2 members, CM [12], removed \[3\]" "$C/node-1.log" &&
	grep -q "configuration 2: 2 members, CM [12], removed \[3\]" "$C/node-2.log"; then
	ok "survivors adopted configuration 2 without node 3 ($((($(date +%s%N) - t0) / 1000000)) ms after kill -9, polled)"
else
	bad "no configuration 2 in the logs"
	tail -n 3 "$C"/node-*.log | sed 's/^/     | /'
fi
for n in 1 2; do
	status_json $n | "$PY" -c 'import json,sys; j=json.load(sys.stdin); assert j["config_id"]==2 and [m["id"] for m in j["members"]]==[1,2], j' ||
		bad "node $n status after the kill"
done
ok "status: configuration 2, members 1 and 2"
got=$(timeout 20 "$FARM" read "$A" --node 1 --dir "$C" --json | "$PY" -c 'import json,sys; j=json.load(sys.stdin); print(j["hex"][:4], j["primary"])')
[ "$got" = "6869 1" ] || [ "$got" = "6869 2" ] && ok "object reads from its promoted primary ($got)" || bad "read after the kill: $got"
timeout 20 "$FARM" write "$A" --hex 7a7a --node 2 --dir "$C" >/dev/null && ok "and takes writes" || bad "write after the kill"

timeout 30 "$FARM" cluster down --dir "$C" >"$T/down.out" 2>&1 || bad "cluster down"
sleep 0.2
if [ -n "$ZKPID" ] && [ -r "/proc/$ZKPID/cmdline" ] && tr '\0' ' ' <"/proc/$ZKPID/cmdline" | grep -q ZooKeeperServerMain; then
	bad "ZooKeeper still running after down"
else
	ok "down stopped the nodes and ZooKeeper"
fi
[ ! -e "$C/zk.pid" ] && ok "zk.pid removed" || bad "zk.pid left behind"

echo "$passes passed, $fails failed"
[ $fails -eq 0 ]
