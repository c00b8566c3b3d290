#!/usr/bin/env bash
# farm_cli_netns.sh - a 3-node cluster on the udp NIC with every node in its
# own network namespace (`farm cluster up --netns`): the nodes find each
# other over 10.99.0.0/24 through the cluster's bridge namespace, objects
# written on one node are read on the others, and `down` removes every
# namespace. Root only (exit 77, skipped, otherwise).
#
# Run by ctest as `bash tests/farm_cli_netns.sh BUILD_DIR`. The cluster has
# a name of its own (pid-based) and is stopped on any exit, namespaces
# included; every command runs under `timeout`.
set -u
. "$(dirname "$0")/helpers/lib.sh"
RUN_TIMEOUT=90
RUN_TAIL=12

BUILD=${1:?usage: farm_cli_netns.sh BUILD_DIR}
FARM=$BUILD/farm
PY=$(command -v python3 || true)
if [ "$(id -u)" -ne 0 ]; then
	echo "SKIP: --netns needs root (network namespaces)"
	exit 77
fi
if [ ! -x "$FARM" ] || [ ! -x "$BUILD/farmd" ] || [ -z "$PY" ] || ! command -v ip >/dev/null; then
	echo "SKIP: needs farm, farmd, python3 and ip (iproute2)"
	exit 77
fi

NAME=clins$$
T=$(mktemp -d /tmp/farm-cli-netns.XXXXXX)
C=$T/c
cleanup() {
	timeout 30 "$FARM" cluster down --dir "$C" --timeout 3000 >/dev/null 2>&1
	timeout 30 "$FARM" cluster down --name "$NAME" --dir "$T/none" >/dev/null 2>&1 # namespaces by name
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

json() { "$PY" -c "import json,sys; d=json.load(open('$T/out')); $1"; }

echo "== up: 3 nodes, udp, one namespace each"
if ! run 0 "$FARM" cluster up -n 3 --netns --nic udp --region-size 1M --name "$NAME" --dir "$C" --timeout 20000 --json; then
	tail -n 20 "$C"/node-*.log 2>/dev/null
	exit 1
fi
if json 'assert d["ok"] and d["nic"].startswith("udp")
assert [n["netns"] for n in d["nodes"]] == ["farm-'"$NAME"'-%d" % i for i in (1, 2, 3)], d["nodes"]
assert all(n["addr"].startswith("10.99.0.%d:" % n["id"]) for n in d["nodes"]), d["nodes"]
assert all(n["state"] == "ready" for n in d["nodes"])
assert len(d["map"]) == 12'; then
	ok "3 nodes ready, each in farm-$NAME-N at 10.99.0.N"
else
	bad "cluster up --json: $(cat "$T/out")"
fi
for i in 1 2 3; do
	pid=$(cat "$C/node-$i.pid" 2>/dev/null)
	if [ -n "$pid" ] && [ "$(readlink "/proc/$pid/ns/net")" = "$(ip netns exec "farm-$NAME-$i" readlink /proc/self/ns/net)" ]; then
		ok "node $i (pid $pid) runs inside farm-$NAME-$i"
	else
		bad "node $i is not inside its namespace"
	fi
done
if ip -o addr show | grep -q "10\.99\.0\."; then bad "10.99.0.x leaked into the host namespace"
else ok "no 10.99.0.x address in the host namespace"; fi

echo "== objects across namespaces"
for i in 1 2 3; do
	if run 0 "$FARM" alloc 64 --node "$i" --dir "$C" --json; then
		a=$(json 'print(d["addr"])')
		msg="netns node $i"
		want=$(printf '%s' "$msg" | od -An -tx1 | tr -d ' \n')
		run 0 "$FARM" write "$a" "$msg" --node "$i" --dir "$C" || continue
		j=$((i % 3 + 1))
		if run 0 "$FARM" read "$a" --len ${#msg} --node "$j" --dir "$C" --json &&
			json "assert d['hex'] == '$want', d"; then
			ok "node $j reads node $i's object $a (primary $(json 'print(d["primary"])'))"
		else
			bad "node $j reading $a: $(cat "$T/out" "$T/err")"
		fi
	fi
done

echo "== down removes the nodes and every namespace"
if run 0 "$FARM" cluster down --dir "$C" --json && json 'assert d["ok"] and len(d["stopped"]) == 3 and d["namespaces_removed"] == 4, d'; then
	ok "down: 3 nodes stopped, 4 namespaces removed"
else
	bad "down: $(cat "$T/out")"
fi
if ip netns list | grep -q "farm-$NAME-"; then bad "namespaces left: $(ip netns list | grep "farm-$NAME-")"
else ok "no farm-$NAME-* namespace left"; fi

echo
if [ "$fails" -ne 0 ]; then
	echo "farm_cli_netns: $fails check(s) failed"
	exit 1
fi
echo "farm_cli_netns: all checks passed"
