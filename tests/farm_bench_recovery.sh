#!/usr/bin/env bash
# farm_bench_recovery.sh - `farm bench recovery` end to end, small, so the
# tool cannot rot: argument errors (exit 2); two runs of the bank on fresh
# 3-node ZooKeeper clusters with a kill -9 of a primary, whose --json must
# parse and carry the numbers (before > 0, the curve of the right length,
# the victim not the CM, two survivors that moved to a new configuration, a
# back time or an explicit null, median/min/max over the runs); one run in
# plain text (per-run line, curve lines, the summary line); a PNG when
# gnuplot is installed; and nothing left running afterwards.
#
# Run by ctest as `bash tests/farm_bench_recovery.sh BUILD_DIR`; exit 77
# (skipped) without python3, java and Debian's zookeeper, or a libfarm built
# without libzookeeper-mt. Every command runs under `timeout`.
set -u
. "$(dirname "$0")/helpers/lib.sh"

BUILD=${1:?usage: farm_bench_recovery.sh BUILD_DIR}
FARM=$BUILD/farm
PY=$(command -v python3 || true)
need_built "$FARM" "$BUILD/farmd"
need_zookeeper

T=$(mktemp -d /tmp/farm-bench-recovery-test.XXXXXX)
C=$T/c
NAME=brt$$
cleanup() {
	# The tool stops its clusters itself; this is for a test killed half-way.
	[ -f "$C/farm.conf" ] && timeout 30 "$FARM" cluster down --dir "$C" --timeout 3000 >/dev/null 2>&1
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

usage_error() {
	timeout 20 "$FARM" bench recovery "$@" --dir "$C" >"$T/out" 2>"$T/err"
	local got=$?
	if [ "$got" -eq 2 ] && [ -s "$T/err" ]; then
		ok "usage error: $*"
	else
		bad "exit $got (want 2 with a message): $*"
	fi
}
usage_error --victim 0
usage_error --victim nobody
usage_error --curve 300:-50
usage_error --curve -900:100
usage_error --window-ms 0
usage_error --workload nope
usage_error --workload tatp --accounts 10
usage_error --runs 0
usage_error --warmup-ms 100
[ -e "$C/farm.conf" ] && bad "a usage error started a cluster" || ok "usage errors start nothing"

# farmd's default lease (100 ms): a 50 ms one can lapse by itself under ASan
# at load 14, and the run then fails (a survivor is removed).
SMALL=(--name "$NAME" --dir "$C" --accounts 200 --warmup-ms 700 --after-ms 1000)
timeout 240 "$FARM" bench recovery --runs 2 "${SMALL[@]}" --png "$T/r.png" --json \
	>"$T/json" 2>"$T/err"
rc=$?
if [ $rc -ne 0 ] && grep -q "without ZooKeeper support" "$C"/node-*.log 2>/dev/null; then
	echo "SKIP: libfarm built without libzookeeper-mt"
	exit 77
fi
[ $rc -eq 0 ] && ok "2 runs measured" || {
	bad "farm bench recovery --runs 2: exit $rc"
	tail -n 15 "$T/err" "$C/bench-recovery.log" 2>/dev/null | sed 's/^/     | /'
}
grep -q "run 2/2" "$T/err" && ok "progress per run on stderr" || bad "no progress lines"

"$PY" - "$T/json" <<'EOF' && ok "--json parses and carries the numbers" || bad "--json content"
import json, sys
d = json.load(open(sys.argv[1]))
def need(cond, what):
    if not cond:
        print("     | " + what); sys.exit(1)
need(d["ok"] is True and d["workload"] == "bank", "ok, workload")
need(d["runs_requested"] == 2 and d["runs_measured"] == 2, "two runs measured")
need(d["window_ms"] == 5 and d["before_ms"] == 500 and d["lease_ms"] is None, "parameters")
for k in ("back_ms", "stable_ms", "adopted_ms"):
    s = d[k]
    need(set(s) == {"median", "min", "max"}, k + " has median/min/max")
    for v in s.values():
        need(v is None or v >= 0, k + " values are times or null")
need(d["recovered"] == sum(r["back_ms"] is not None for r in d["runs"]), "recovered count")
for r in d["runs"]:
    need(r["ok"], "run ok: %s" % r.get("error"))
    need(r["victim"] != r["cm"] and not r["victim_was_cm"], "victim is not the CM")
    need(r["victim_primary_of"] >= 1, "victim leads regions")
    need(sorted(r["survivors"] + [r["victim"]]) == [1, 2, 3], "two survivors")
    need(r["before"] > 0 and r["before_mean"] > 0 and r["before_median"] >= 0
         and r["before_is"] in ("median", "mean"), "throughput before the kill")
    need(len(r["curve"]) == 500 + 5 + 1000 + 1 and r["curve_from_ms"] == -505, "curve length")
    need(sum(r["curve"][:505]) > 0, "commits before the kill")
    need(0 <= r["kill_offset_ms"] < 1, "kill offset in its bucket")
    need(r["back_ms"] is None or r["back_ms"] >= 0, "back_ms")
    # Within the second after the kill, even under ASan on a loaded machine.
    need(r["new_config"] >= 2 and r["adopted_first_ms"] is not None
         and 0 < r["adopted_first_ms"] <= r["adopted_last_ms"] < 1020,
         "a survivor moved to a configuration without the victim: run %d new_config %s "
         "adopted %s..%s" % (r["run"], r["new_config"], r["adopted_first_ms"],
                             r["adopted_last_ms"]))
    for k in ("committed", "aborted", "errors", "violations", "gave_up", "baseline_dip_ms"):
        need(isinstance(r[k], int) and r[k] >= 0, k)
EOF

if command -v gnuplot >/dev/null 2>&1; then
	if [ "$(head -c 4 "$T/r.png" 2>/dev/null | tail -c 3)" = "PNG" ]; then
		ok "--png wrote a PNG"
	else
		bad "--png: no PNG at $T/r.png"
	fi
else
	echo "note: gnuplot not installed, --png not checked"
fi

timeout 120 "$FARM" bench recovery --runs 1 "${SMALL[@]}" --curve -10:40 --step 10 \
	>"$T/plain" 2>"$T/err"
rc=$?
[ $rc -eq 0 ] && ok "1 run, plain output" || {
	bad "plain run: exit $rc"
	tail -n 15 "$T/err" "$C/bench-recovery.log" 2>/dev/null | sed 's/^/     | /'
}
grep -Eq "^run 1: victim=[0-9]+ .*before_median=[0-9.]+ .*back_ms=([0-9.]+|none) " "$T/plain" &&
	ok "per-run line" || bad "no per-run line"
[ "$(grep -Ec '^ +[-+][0-9]+ ms +[0-9.]+' "$T/plain")" -eq 5 ] && ok "curve: 5 lines of 10 ms" ||
	bad "curve lines"
grep -q "<- kill -9 node" "$T/plain" && ok "the kill is marked" || bad "no kill mark"
grep -Eq "^workload=bank .* runs=1 measured=1 .*back_ms_median=([0-9.]+|none) " "$T/plain" &&
	ok "summary line" || bad "no summary line"
[ $fails -eq 0 ] || sed 's/^/     | /' "$T/plain" | head -n 20

left=0
for f in "$C"/node-*.pid "$C"/zk.pid; do
	[ -f "$f" ] || continue
	p=$(cat "$f")
	[ -n "$p" ] && [ -d "/proc/$p" ] && ! grep -q '^State:.*Z' "/proc/$p/status" && left=1
done
[ $left -eq 0 ] && ok "no farmd or ZooKeeper left running" || bad "processes left running"

[ $fails -eq 0 ] && echo "PASS" || echo "$fails FAILED"
[ $fails -eq 0 ]
