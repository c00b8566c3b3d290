#!/usr/bin/env bash
# farm_read.sh - the FaRM read bar: `farm bench read` on a 3-node shm cluster,
# 64-byte objects, one client thread inside node 1, RUNS times (default 3)
# remote (primary on another node: one-sided READs) and local, then the
# medians over the runs. Usage: bench/farm_read.sh BUILD_DIR (COUNT=n reads
# per run, default 5000000).
#
# Two rates are printed: ops_per_sec is all reads over wall-clock time, so a
# node descheduled on a busy machine pays for it; chunk_ops_per_sec is the
# median rate over chunks of 4096 reads, what the read path does while it
# has a CPU. Latency is per read (plus one ~26 ns clock read), median/p99.
# The cluster lives in a temporary directory and is stopped on any exit.
set -euo pipefail

BUILD=${1:-build}
RUNS=${RUNS:-3}
COUNT=${COUNT:-5000000}
OUT=${BENCH_OUT:-$BUILD/bench-results/farm-read-$(date +%Y%m%d-%H%M%S)}
FARM="$BUILD/farm"
mkdir -p "$OUT"

if [ ! -x "$FARM" ] || [ ! -x "$BUILD/farmd" ]; then
	echo "farm_read: $FARM or $BUILD/farmd missing; run 'make build' first" >&2
	exit 1
fi
DIR=$(mktemp -d /tmp/farm-bench.XXXXXX)
down() {
	"$FARM" cluster down --dir "$DIR" >/dev/null 2>&1 || true
	rm -rf "$DIR"
}
trap down EXIT

"$FARM" cluster up -n 3 --nic shm --region-size 4M --name bench --dir "$DIR" >/dev/null
for where in remote local; do
	for i in $(seq 1 "$RUNS"); do
		echo "---- $where run $i of $RUNS (load $(cut -d' ' -f1 /proc/loadavg))"
		"$FARM" bench read --size 64 --count "$COUNT" --"$where" --dir "$DIR" --json \
			2>/dev/null | tee "$OUT/farm-read-$where-$i.json"
	done
done

if ! command -v python3 >/dev/null; then
	echo "farm_read: python3 not found, no medians (results in $OUT)"
	exit 0
fi
python3 - "$OUT" "$RUNS" <<'PY'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
print()
print("farm bench read, 64 B, 3-node shm cluster, medians of %d runs:" % runs)
for where in ("remote", "local"):
    docs = [json.load(open(f"{out}/farm-read-{where}-{i}.json")) for i in range(1, runs + 1)]
    med = lambda k: statistics.median(d[k] for d in docs)
    print(f"  {where:6s}  {med('ops_per_sec') / 1e6:6.2f} M reads/s wall, "
          f"{med('chunk_ops_per_sec') / 1e6:6.2f} M reads/s median chunk, "
          f"latency median {med('median_ns'):.0f} ns, p99 {med('p99_ns'):.0f} ns")
PY
