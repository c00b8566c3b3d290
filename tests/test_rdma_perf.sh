#!/usr/bin/env bash
# test_rdma_perf.sh - `unet-perf rdma` from the outside: bad options are
# refused with exit code 2 and a reason, --help works, and a small run
# (ucx_perftest left out: it has its own package) exits 0 and prints one
# JSON object with every path, operation and size, plausible numbers, the
# round trips and the three bars of issue 4.
# Run by ctest with the build directory as $1; exit 77 = skipped.
set -u

BUILD=${1:?usage: test_rdma_perf.sh BUILD_DIR}
PERF="$BUILD/unet-perf"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0
fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}

[ -x "$PERF" ] || { echo "FAIL: $PERF not built"; exit 1; }

expect() {
	local want=$1
	shift
	timeout 20 "$PERF" "$@" >"$TMP/out" 2>"$TMP/err"
	local rc=$?
	if [ "$rc" -ne "$want" ]; then
		fail "unet-perf $* exited $rc, want $want ($(head -c 300 "$TMP/err"))"
	elif [ "$want" -eq 2 ] && ! [ -s "$TMP/err" ]; then
		fail "unet-perf $* exited 2 without saying why"
	fi
}
expect 2 rdma --bogus
expect 2 rdma --ops 0
expect 2 rdma --ops 12x
expect 2 rdma --iters 0
expect 0 rdma --help
grep -q -- --no-ucx "$TMP/out" || fail "rdma --help does not mention --no-ucx"
expect 0 --help
grep -q rdma "$TMP/out" || fail "unet-perf --help does not list the rdma mode"

if ! command -v python3 >/dev/null || [ "$(nproc)" -lt 2 ]; then
	echo "python3 missing or one CPU: the run is skipped"
	exit $((fails ? 1 : 77))
fi

timeout 120 "$PERF" rdma --json --iters 200 --ops 6400 --no-ucx >"$TMP/run.json" 2>"$TMP/run.err"
rc=$?
[ $rc -eq 0 ] || fail "rdma --json exited $rc: $(head -c 500 "$TMP/run.err")"
python3 - "$TMP/run.json" <<'PY' || fail "rdma --json output is not what it should be"
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["mode"] == "rdma"
seen = set()
for r in doc["ops"]:
    assert "error" not in r, r
    assert 0 < r["lat_median_ns"] <= r["lat_p99_ns"] < 1e9, r
    assert r["ops_per_s"] > 0 and r["ops_per_s_median_batch"] > 0, r
    seen.add((r["path"], r["op"], r["size"]))
for p in ("shm_onesided", "shm_served", "udp_served"):
    for op in ("READ", "WRITE"):
        for s in (8, 64, 4096):
            assert (p, op, s) in seen, (p, op, s)
    for op in ("CAS", "FADD"):
        assert (p, op, 8) in seen, (p, op)
for k in ("msg_shm", "msg_udp", "tcp_loopback", "shm_floor"):
    assert 0 < doc["rtt_ns"][k] < 1e9, (k, doc["rtt_ns"])
assert doc["ucx_shm"]["ucp_get"] == {"error": "not run"}, doc["ucx_shm"]
bars = doc["bars"]
assert set(bars) == {"read8_rate_vs_ucp_get", "read8_rate_vs_ucp_get_between_preemptions",
                     "read8_lat_vs_floor", "tcp_rtt_vs_msg_shm"}, bars
assert bars["read8_rate_vs_ucp_get"]["met"] is None          # no UCX in this run
assert isinstance(bars["read8_lat_vs_floor"]["met"], bool)
assert isinstance(bars["tcp_rtt_vs_msg_shm"]["met"], bool)
assert "error" not in doc, doc["error"]
PY

[ $fails -eq 0 ] && echo "test_rdma_perf: all checks passed"
exit $((fails ? 1 : 0))
