#!/usr/bin/env bash
# unet_perf_cli.sh - unet-perf's command line: bad options and modes are
# refused with exit code 2 and a message, --help works, and
# `unet-perf compare --json` prints one valid JSON object with the keys the
# benchmark scripts and BENCHMARKS.md rely on, with plausible values.
# Run by ctest with the build directory as $1; exit 77 = skipped.
set -u

BUILD=${1:?usage: unet_perf_cli.sh BUILD_DIR}
PERF="$BUILD/unet-perf"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0

fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}

if [ ! -x "$PERF" ]; then
	echo "FAIL: $PERF not built"
	exit 1
fi

# expect CODE ARGS...: unet-perf ARGS exits with CODE; a refusal (2) says why.
expect() {
	local want=$1
	shift
	timeout 20 "$PERF" "$@" >"$TMP/out" 2>"$TMP/err"
	local rc=$?
	if [ "$rc" -ne "$want" ]; then
		fail "unet-perf $* exited $rc, want $want ($(head -c 300 "$TMP/err"))"
	elif [ "$want" -eq 2 ] && ! [ -s "$TMP/err" ]; then
		fail "unet-perf $* exited 2 without saying why on stderr"
	fi
}

expect 2
expect 2 nosuchmode
expect 2 --bogus
expect 2 compare --bogus
expect 2 compare -x
expect 2 compare --iters
expect 2 compare --iters 0
expect 2 compare --iters 12abc
expect 2 compare --iters -5
expect 2 compare --warmup x
expect 2 compare --sizes 4
expect 2 compare --sizes 2M
expect 2 compare --sizes 8,,x
expect 2 compare --sizes ''
expect 2 compare --cpus 1,2,3
expect 2 compare --cpus 99999,0
expect 2 compare --cpus 1
expect 2 compare --cpus a,b
expect 2 compare --stream-bytes 0
expect 2 compare --paths nosuchpath
expect 2 compare --floor-slots 0
expect 2 compare --shm-pairs 65
expect 2 compare stray-argument
expect 0 --help
grep -q compare "$TMP/out" || fail "unet-perf --help does not list the compare mode"
expect 0 compare --help
grep -q -- --json "$TMP/out" || fail "unet-perf compare --help does not mention --json"

if ! command -v python3 >/dev/null; then
	echo "python3 missing: JSON checks skipped"
	exit $((fails ? 1 : 77))
fi
if [ "$(nproc)" -lt 2 ]; then
	echo "one CPU: the two-process measurement cannot run; JSON checks skipped"
	exit $((fails ? 1 : 77))
fi

# A small but complete run: all four paths, inline and segment sizes, and
# 64 KiB, which UDP cannot carry.
timeout 60 "$PERF" compare --json --iters 300 --sizes 8,1K,64K --stream-bytes 4M \
	>"$TMP/run.json" 2>"$TMP/run.err"
rc=$?
[ $rc -eq 0 ] || fail "compare --json exited $rc: $(head -c 500 "$TMP/run.err")"

python3 - "$TMP/run.json" <<'PY' || fail "compare --json output is not what it should be"
import json, math, sys
text = open(sys.argv[1]).read()
doc = json.loads(text)                      # one valid JSON document
assert isinstance(doc, dict), "not an object"
paths = ("floor", "shm", "udp_blocking", "udp_busy")
m = doc["median_rtt_ns_8b"]
for k in paths:
    assert isinstance(m[k], (int, float)) and 0 < m[k] < 1e8, (k, m[k])
for k in ("ratio_shm_floor", "ratio_udp_blocking_shm"):
    assert isinstance(doc[k], (int, float)) and doc[k] > 0, (k, doc[k])
assert math.isclose(doc["ratio_shm_floor"], m["shm"] / m["floor"], rel_tol=1e-3)
assert math.isclose(doc["ratio_udp_blocking_shm"], m["udp_blocking"] / m["shm"], rel_tol=1e-3)
assert doc["errors"] == {}, doc["errors"]
assert isinstance(doc["contended"], bool)
assert all(isinstance(doc["preempted"][k], int) and doc["preempted"][k] >= 0 for k in paths)
for k in paths:
    lat = doc["latency"][k]
    assert [p["size"] for p in lat] == [8, 1024, 65536], lat
    for p in lat:
        if k.startswith("udp") and p["size"] == 65536:
            assert "skipped" in p, p            # bigger than a UDP datagram
            continue
        assert p["samples"] == 300, p
        assert 0 < p["min_ns"] <= p["median_ns"] <= p["p99_ns"] <= p["p999_ns"] <= p["max_ns"], p
shm_bw = {p["size"]: p for p in doc["bandwidth"]["shm"]}
assert shm_bw[65536]["gbps"] > 0 and shm_bw[65536]["received"] == shm_bw[65536]["sent"], shm_bw
assert doc["stream_gbps_64k"]["shm"] == shm_bw[65536]["gbps"]
assert set(doc["bars"]) == {"shm_rtt_le_1.5x_floor", "udp_blocking_rtt_ge_40x_shm",
                            "shm_stream_64k_ge_5gbps"}, doc["bars"]
PY

# The table is the default output, and it has every path and size.
timeout 60 "$PERF" compare --iters 100 --sizes 8,64K --no-stream >"$TMP/table" 2>&1 ||
	fail "compare (table) exited $?: $(head -c 500 "$TMP/table")"
for w in "shm floor" "shm NIC" "udp blocking" "udp busy-poll" "8 B" "64 KiB" "shm / floor"; do
	grep -q "$w" "$TMP/table" || fail "table lacks '$w'"
done

[ $fails -eq 0 ] && echo "unet_perf_cli: all checks passed"
exit $((fails ? 1 : 0))
