#!/usr/bin/env bash
# farm_recovery.sh - the recovery bar (issue 7: median time from kill -9 of a
# primary to >= 90% throughput <= 50 ms, lease included), with
# `farm bench recovery`: RUNS runs (default 10), each a fresh 3-node shm
# cluster with ZooKeeper and 3-way replication, the bank on every node,
# kill -9 of a primary that is not the CM.
#   1. the defaults (farmd's lease, 100 ms);
#   2. each lease of LEASES (default "50 20": docs/farm.md says what is
#      safe here; 20 ms can lapse by itself on this VM);
#   3. the CM as the victim (VICTIM_CM=0 skips it), lease 50 ms.
# Per configuration: the text output (per-run lines, the median run's curve,
# the summary line), the progress lines and a PNG of every run's curve
# (gnuplot) in OUT. The load average is printed before each: the numbers are about a
# 2-core VM that other work shares.
# Usage: bench/farm_recovery.sh BUILD_DIR. Env: RUNS, LEASES, VICTIM_CM.
set -euo pipefail

BUILD=${1:-build}
RUNS=${RUNS:-10}
LEASES=${LEASES:-50 20}
VICTIM_CM=${VICTIM_CM:-1}
OUT=${BENCH_OUT:-$BUILD/bench-results/farm-recovery-$(date +%Y%m%d-%H%M%S)}
FARM="$BUILD/farm"
mkdir -p "$OUT"

if [ ! -x "$FARM" ] || [ ! -x "$BUILD/farmd" ]; then
	echo "farm_recovery: $FARM or $BUILD/farmd missing; run 'make build' first" >&2
	exit 1
fi
DIR=$(mktemp -d /tmp/farm-recbench.XXXXXX)
trap 'rm -rf "$DIR"' EXIT

one() { # TAG ARGS...
	local tag=$1
	shift
	echo "== $tag: farm bench recovery --runs $RUNS $* (load: $(cut -d' ' -f1-3 /proc/loadavg))"
	"$FARM" bench recovery --runs "$RUNS" --dir "$DIR/c" "$@" --png "$OUT/$tag.png" \
		>"$OUT/$tag.txt" 2>"$OUT/$tag.err" || echo "   (exit $?: see $OUT/$tag.err)"
	grep '^run ' "$OUT/$tag.txt" | sed 's/^/   /' || true
	grep '^workload=' "$OUT/$tag.txt" || true
}

one default
for l in $LEASES; do
	one "lease$l" --lease-ms "$l"
done
[ "$VICTIM_CM" = 0 ] || one cm-lease50 --victim cm --lease-ms 50
echo "results in $OUT"
