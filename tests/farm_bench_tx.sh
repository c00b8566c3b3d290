#!/usr/bin/env bash
# farm_bench_tx.sh - `farm bench tx` as a user drives it, on a 3-node shm
# cluster with 3 replicas: argument errors (exit 2), a short TATP run and a
# short bank run whose --json is checked with python3 (transactions
# committed on every node, every TATP transaction type attempted, latencies
# ordered, no errors or violations, the bank's audited total unchanged), a
# second run reusing a data set through --root, progress lines on stderr,
# and the farmd admin command refusing a malformed `bench tx`.
#
# Run by ctest as `bash tests/farm_bench_tx.sh BUILD_DIR`. The cluster lives
# in a private temporary directory and is stopped on any exit; every command
# runs under `timeout`.
set -u
. "$(dirname "$0")/helpers/lib.sh"
RUN_TIMEOUT=120

BUILD=${1:?usage: farm_bench_tx.sh BUILD_DIR}
FARM=$BUILD/farm
PY=$(command -v python3 || true)
need_built "$FARM" "$BUILD/farmd"
if [ -z "$PY" ]; then
	echo "SKIP: python3 is needed to check --json output"
	exit 77
fi

T=$(mktemp -d /tmp/farm-bench-tx-test.XXXXXX)
C=$T/c
cleanup() {
	[ -f "$C/farm.conf" ] && timeout 30 "$FARM" cluster down --dir "$C" --timeout 3000 >/dev/null 2>&1
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

usage_error() {
	if run 2 "$@"; then
		if [ -s "$T/err" ]; then ok "usage error: ${*:2}"; else bad "no message: $*"; fi
	fi
}

usage_error "$FARM" bench tx --workload nope --dir "$C"
usage_error "$FARM" bench tx --seconds 0 --dir "$C"
usage_error "$FARM" bench tx --workload tatp --accounts 10 --dir "$C"
usage_error "$FARM" bench tx --workload bank --subscribers 10 --dir "$C"
usage_error "$FARM" bench tx --root 12 --dir "$C"
usage_error "$FARM" bench tx extra --dir "$C"
if run 0 "$FARM" bench tx --help; then
	grep -q -- "--workload" "$T/out" && ok "bench tx --help" || bad "bench tx --help text"
fi
run 1 "$FARM" bench tx --dir "$C" && ok "no cluster: exit 1"

if ! run 0 "$FARM" cluster up -n 3 --nic shm --region-size 1M --replicas 3 --name btx --dir "$C"; then
	echo "cannot start a cluster"
	exit 1
fi
usage_error "$FARM" bench tx --clients 4 --dir "$C"

# TATP: every node commits, every type runs, latencies make sense.
if run 0 "$FARM" bench tx --workload tatp --subscribers 300 --seconds 2 --seed 7 --dir "$C" --json; then
	cp "$T/out" "$T/tatp.json"
	if "$PY" - "$T/tatp.json" <<'PY'; then
import json, sys
d = json.load(open(sys.argv[1]))
assert d["ok"] and d["workload"] == "tatp" and d["clients"] == 3 and d["replicas"] == 3, d
assert d["seed"] == 7
assert d["committed"] > 0 and d["tx_per_sec"] > 0
assert d["errors"] == 0 and d["violations"] == 0, d
assert len(d["per_node"]) == 3 and all(n["committed"] > 0 for n in d["per_node"]), d["per_node"]
names = [t["name"] for t in d["types"]]
assert names == ["get_subscriber_data", "get_new_destination", "get_access_data",
                 "update_subscriber_data", "update_location", "insert_call_forwarding",
                 "delete_call_forwarding"], names
assert all(t["attempts"] > 0 for t in d["types"]), d["types"]
assert sum(t["committed"] for t in d["types"]) == d["committed"]
assert 0 < d["commit_median_ns"] <= d["commit_p99_ns"], d
assert 0 < d["commit_rw_median_ns"] <= d["commit_rw_p99_ns"], d
assert d["tx_median_ns"] <= d["tx_p99_ns"]
assert 0 <= d["abort_rate"] < 1
PY
		ok "tatp --json: every node committed, every type ran"
	else
		bad "tatp --json content"
	fi
	grep -q "committed.*tx/s" "$T/err" && ok "tatp progress lines" || bad "no progress on stderr"
	ROOT=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["root"])' "$T/tatp.json")
	# The same data set again, plain output, one client.
	if run 0 "$FARM" bench tx --workload tatp --root "$ROOT" --clients 1 --seconds 1 --dir "$C"; then
		grep -q "^workload=tatp clients=1 .*committed=[1-9]" "$T/out" && ok "tatp --root, plain" ||
			bad "tatp --root output: $(cat "$T/out")"
	fi
fi

# Bank: transfers with overdrafts and audits; the total holds.
if run 0 "$FARM" bench tx --workload bank --accounts 50 --max-transfer 500000 --audit-pct 10 \
	--seconds 2 --dir "$C" --json; then
	if "$PY" - "$T/out" <<'PY'; then
import json, sys
d = json.load(open(sys.argv[1]))
assert d["ok"] and d["workload"] == "bank", d
assert d["committed"] > 0 and d["errors"] == 0 and d["violations"] == 0, d
a = d["audit"]
assert a["intact"] and a["total"] == a["expected"] == 50 * 1000000 and a["negative"] == 0, a
assert [t["name"] for t in d["types"]] == ["transfer", "audit"]
assert d["types"][1]["committed"] > 0, d["types"]
assert d["rolled_back"] > 0, "overdrafts must roll back"
PY
		ok "bank --json: total unchanged, audits committed, overdrafts rolled back"
	else
		bad "bank --json content"
	fi
fi

# The admin command itself refuses nonsense.
SOCK_CMD() { "$PY" - "$C/node-1.sock" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])
s.sendall((sys.argv[2] + "\n").encode()); print(s.makefile().readline().strip())
PY
}
for cmd in "bench tx" "bench tx start tatp 0x1 5" "bench tx start tatp nope 5 1" \
	"bench tx load tatp 0 1" "bench tx audit 0x1"; do
	r=$(SOCK_CMD "$cmd")
	echo "$r" | grep -q '"ok":false' && ok "admin '$cmd' refused" || bad "admin '$cmd': $r"
done

if [ "$fails" -ne 0 ]; then
	echo "$fails failure(s)"
	exit 1
fi
echo "all ok"
