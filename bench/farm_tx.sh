#!/usr/bin/env bash
# farm_tx.sh - the transaction bars (issue 6):
#   1. TATP: `farm bench tx --workload tatp` on a 3-node shm cluster with
#      3-way replication, every node a client, SECS seconds (default 10),
#      RUNS times (default 3) on one loaded data set: medians of committed
#      tx/s, abort rate, median and p99 commit latency (bars: >= 300 k tx/s,
#      median commit <= 20 us).
#   2. bank: `farm bench tx --workload bank` the same way (throughput, aborts,
#      the final audit of the total).
#   3. bank correctness: test_tx_bank's spread run with BANK_COMMITS per node
#      so that the three nodes commit >= TXS transactions (default 1000000),
#      every attempt recorded and the merged history checked for strict
#      serializability (bar: 0 invariant violations, 0 checker anomalies).
#      BANK_SEED replays.
# Usage: bench/farm_tx.sh BUILD_DIR. Env: RUNS, SECS, SUBS (TATP subscribers,
# default 10000), ACCOUNTS (bank, default 1000), TXS, SKIP_CHECK=1 (skip 3).
# The machine load is printed before every run: the bars are about a 2-core
# VM that other work shares.
set -euo pipefail

BUILD=${1:-build}
RUNS=${RUNS:-3}
SECS=${SECS:-10}
SUBS=${SUBS:-10000}
ACCOUNTS=${ACCOUNTS:-1000}
TXS=${TXS:-1000000}
OUT=${BENCH_OUT:-$BUILD/bench-results/farm-tx-$(date +%Y%m%d-%H%M%S)}
FARM="$BUILD/farm"
mkdir -p "$OUT"

if [ ! -x "$FARM" ] || [ ! -x "$BUILD/farmd" ]; then
	echo "farm_tx: $FARM or $BUILD/farmd missing; run 'make build' first" >&2
	exit 1
fi
DIR=$(mktemp -d /tmp/farm-txbench.XXXXXX)
down() {
	"$FARM" cluster down --dir "$DIR" >/dev/null 2>&1 || true
	rm -rf "$DIR"
}
trap down EXIT
load() { cut -d' ' -f1-3 /proc/loadavg; }

"$FARM" cluster up -n 3 --nic shm --region-size 16M --replicas 3 --name txbench --dir "$DIR" \
	>/dev/null
for wl in tatp bank; do
	root=""
	for i in $(seq 1 "$RUNS"); do
		echo "---- $wl run $i of $RUNS (load $(load))"
		args=(--workload "$wl" --seconds "$SECS" --dir "$DIR" --json)
		if [ "$wl" = tatp ]; then args+=(--subscribers "$SUBS"); else args+=(--accounts "$ACCOUNTS"); fi
		[ -n "$root" ] && args+=(--root "$root")
		"$FARM" bench tx "${args[@]}" >"$OUT/farm-tx-$wl-$i.json"
		python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(
			"  %(tx_per_sec).0f tx/s committed, abort rate %(abort_rate).4f, commit median "
			"%(commit_median_ns)d ns p99 %(commit_p99_ns)d ns (writes: median "
			"%(commit_rw_median_ns)d ns p99 %(commit_rw_p99_ns)d ns), violations %(violations)d"
			% d)' "$OUT/farm-tx-$wl-$i.json"
		root=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["root"])' \
			"$OUT/farm-tx-$wl-$i.json")
	done
done
echo "load after the runs: $(load)"

python3 - "$OUT" "$RUNS" <<'PY'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
print()
print("farm bench tx, 3-node shm cluster, 3 replicas, medians of %d runs:" % runs)
for wl in ("tatp", "bank"):
    d = [json.load(open(f"{out}/farm-tx-{wl}-{i}.json")) for i in range(1, runs + 1)]
    med = lambda k: statistics.median(x[k] for x in d)
    print(f"  {wl}: {med('tx_per_sec') / 1e3:8.1f} k tx/s, abort rate {med('abort_rate') * 100:.3f}%, "
          f"commit median {med('commit_median_ns') / 1e3:.2f} us p99 {med('commit_p99_ns') / 1e3:.1f} us, "
          f"read-write commits median {med('commit_rw_median_ns') / 1e3:.1f} us "
          f"p99 {med('commit_rw_p99_ns') / 1e3:.1f} us, violations {sum(x['violations'] for x in d)}")
PY

if [ "${SKIP_CHECK:-0}" = 1 ]; then
	exit 0
fi
if [ ! -x "$BUILD/test_tx_bank" ]; then
	echo "farm_tx: $BUILD/test_tx_bank missing: no correctness run" >&2
	exit 1
fi
per=$(((TXS + 2) / 3))
echo
echo "---- bank correctness: 3 nodes x $per committed transactions, history checked (load $(load))"
# Only the spread run, long: no time bound short of an hour.
BANK_COMMITS=$per BANK_MS=3600000 "$BUILD/test_tx_bank" test_bank_spread \
	2>&1 | tee "$OUT/farm-tx-bank-check.txt"
grep -q "PASSED.*1 test" "$OUT/farm-tx-bank-check.txt"
