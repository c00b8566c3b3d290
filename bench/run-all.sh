#!/usr/bin/env bash
# run-all.sh - the benchmark set, run by `make bench` as `bench/run-all.sh BUILD_DIR`.
#
# Every other bench/*.sh is one benchmark: it takes the build directory as
# $1, prints its results, writes anything it keeps under $BENCH_OUT, and
# exits 0 when done, 77 when it cannot run here (a skip, not a failure).
# Adding a benchmark is adding such a file. Numbers on this shared 2-core VM
# are noisy: the benchmarks repeat themselves and report medians, and the
# load average is printed so a bad moment can be recognised.
set -uo pipefail

BUILD=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
export BENCH_OUT=${BENCH_OUT:-$BUILD/bench-results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$BENCH_OUT"

echo "== unet-farm benchmarks: $(date -u '+%Y-%m-%d %H:%M UTC'), commit" \
	"$(git -C "$HERE/.." rev-parse --short HEAD 2>/dev/null || echo '?')," \
	"load$(cut -d' ' -f1-3 /proc/loadavg | sed 's/^/ /'), $(nproc) CPUs"
echo "== results kept in $BENCH_OUT"

ran=() skipped=() failed=()
for b in "$HERE"/*.sh; do
	name=$(basename "$b" .sh)
	[ "$name" = run-all ] && continue
	echo
	echo "==== $name"
	bash "$b" "$BUILD"
	rc=$?
	case $rc in
	0) ran+=("$name") ;;
	77) skipped+=("$name") ;;
	*) failed+=("$name (exit $rc)") ;;
	esac
done

echo
echo "== done: ran ${ran[*]:-nothing}${skipped:+; skipped ${skipped[*]}}${failed:+; FAILED ${failed[*]}}"
[ ${#failed[@]} -eq 0 ]
