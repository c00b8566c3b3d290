#!/usr/bin/env bash
# memcache_kvload.sh BUILD_DIR - kvload's command line and results, and
# bench/kv-vs-peers.sh end to end with tiny counts (--json validated).
#
# kvload: --help, bad arguments (exit 2), an unreachable server (exit 1 and
# a message), a loaded run against a real memcached with pipelining, Zipf
# keys and a GET/SET mix (every GET of a loaded key must hit: the values
# SETs write have the loaded length). kv-vs-peers: every store has a row,
# every bar a ratio, nothing missed. Exit 77 (skipped) without memcached,
# redis-server or python3. Peers are started by pid and stopped on any exit.
set -u
BUILD=${1:-build}
BUILD=$(cd "$BUILD" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
KV="$BUILD/kvload"
for t in memcached redis-server redis-benchmark python3; do
	command -v $t >/dev/null || { echo "skipped: $t not installed (scripts/setup.sh)"; exit 77; }
done
[ -x "$KV" ] || { echo "kvload missing in $BUILD"; exit 1; }

DIR=$(mktemp -d /tmp/mc-kvload.XXXXXX)
MC_PID=
cleanup() {
	[ -n "$MC_PID" ] && kill "$MC_PID" 2>/dev/null && wait "$MC_PID" 2>/dev/null
	rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
fail=0
check() { # what expected-exit command...
	local what=$1 want=$2
	shift 2
	"$@" >"$DIR/out" 2>"$DIR/err"
	local rc=$?
	if [ "$rc" != "$want" ]; then
		echo "FAIL: $what: exit $rc, want $want"; cat "$DIR/out" "$DIR/err"; fail=1
	fi
}
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

check "--help" 0 "$KV" --help
grep -q -- "--depth" "$DIR/out" || { echo "FAIL: --help does not list --depth"; fail=1; }
check "no server" 2 "$KV"
check "server and native" 2 "$KV" --server 127.0.0.1:1 --native /tmp
check "server without port" 2 "$KV" --server 127.0.0.1
check "zero clients" 2 "$KV" --server 127.0.0.1:1 --clients 0
check "bad dist" 2 "$KV" --server 127.0.0.1:1 --dist pareto
check "keys beyond the key size" 2 "$KV" --server 127.0.0.1:1 --keys 1000000000000 --key-size 8
check "unreachable" 1 "$KV" --server 127.0.0.1:"$(free_port)" --clients 1 --duration 0.1
grep -q "connect" "$DIR/err" || { echo "FAIL: unreachable server without a message"; cat "$DIR/err"; fail=1; }

PORT=$(free_port)
memcached -l 127.0.0.1 -p "$PORT" -U 0 -m 64 $([ "$(id -u)" = 0 ] && echo -u root) >"$DIR/mc.log" 2>&1 &
MC_PID=$!
for _ in $(seq 50); do
	python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null && break
	sleep 0.05
done
check "memcached run" 0 "$KV" --server 127.0.0.1:"$PORT" --clients 2 --keys 3000 --value-size 100 \
	--dist zipf --depth 4 --get-ratio 0.8 --duration 0.5 --load --json
python3 - "$DIR/out" <<'PY' || fail=1
import json, sys
r = json.load(open(sys.argv[1]))
ok = (r["ok"] and r["ops"] > 0 and r["gets"] + r["sets"] == r["ops"] and r["sets"] > 0
      and r["hits"] == r["gets"] and r["misses"] == 0 and r["errors"] == 0
      and r["p50_us"] > 0 and r["p99_us"] >= r["p50_us"] and r["depth"] == 4)
if not ok:
    print("FAIL: kvload result", r)
sys.exit(0 if ok else 1)
PY

check "kv-vs-peers" 0 bash "$SRC/bench/kv-vs-peers.sh" "$BUILD" --keys 2000 --duration 0.3 --runs 1 \
	--values 32 --json
python3 - "$DIR/out" <<'PY' || fail=1
import json, sys
r = json.load(open(sys.argv[1]))
stores = {(x["dist"], x["store"]) for x in r["results"] if x["ops_per_sec"] > 0}
want = {(d, s) for d in ("uniform", "zipf") for s in ("native", "memcached", "gateway", "gateways",
                                                    "gateway-shared")}
want |= {("uniform", "redis"), ("uniform", "redis-P16")}
ratios = {(x["dist"], x["what"]) for x in r["ratios"]}
ok = want <= stores and ("uniform", "native/redis") in ratios and ("zipf", "gateway/memcached") in ratios
ok = ok and ("zipf", "gateway-shared/memcached") in ratios and r["shared_port_listeners"] == r["nodes"]
if not ok:
    print("FAIL: kv-vs-peers json: stores %s ratios %s" % (sorted(stores), sorted(ratios)))
sys.exit(0 if ok else 1)
PY
[ $fail = 0 ] && echo "kvload and kv-vs-peers: ok"
exit $fail
