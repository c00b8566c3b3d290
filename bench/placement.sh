#!/usr/bin/env bash
# placement.sh - why `unet-perf compare` spreads its shared-memory ping-pongs
# over many pages, and what pinning does to kernel UDP. Usage:
# bench/placement.sh BUILD_DIR. Prints, per fresh run (fresh pages):
#   - the floor on ONE fixed cache line each way (--floor-slots 1) vs spread
#     over 64 page pairs (the default);
#   - the shm NIC on ONE endpoint pair (--shm-pairs 1) vs 8 (the default);
#   - kernel UDP 8-byte round trip with both processes on one CPU, which is
#     what an unpinned pair ends up doing, vs on two CPUs as compare runs it.
set -euo pipefail

BUILD=${1:-build}
PERF="$BUILD/unet-perf"
RUNS=${RUNS:-5}
[ -x "$PERF" ] || { echo "placement: $PERF missing; run 'make build' first" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "placement: needs two CPUs; skipped"; exit 77; }
command -v python3 >/dev/null || { echo "placement: needs python3; skipped"; exit 77; }

med8() { # KEY ARGS... -> 8-byte median RTT of path KEY, ns
	local key=$1
	shift
	"$PERF" compare --json --no-stream --sizes 8 --iters 10000 "$@" |
		python3 -c "import json,sys; print(round(json.load(sys.stdin)['median_rtt_ns_8b']['$key']))"
}

row() { # LABEL KEY ARGS...
	local label=$1
	shift
	local vals=()
	for _ in $(seq 1 "$RUNS"); do vals+=("$(med8 "$@")"); done
	printf '  %-36s %s\n' "$label" "${vals[*]}"
}

cpu0=$(python3 -c 'import os; print(min(os.sched_getaffinity(0)))')
echo "8-byte round-trip medians in ns, $RUNS fresh runs each (load $(cut -d' ' -f1 /proc/loadavg)):"
row "floor, one fixed line each way" floor --paths floor --floor-slots 1
row "floor, 64 page pairs (default)" floor --paths floor
row "shm NIC, one endpoint pair" shm --paths shm --shm-pairs 1
row "shm NIC, 8 endpoint pairs (default)" shm --paths shm
row "udp blocking, two CPUs (default)" udp_blocking --paths udp_blocking
row "udp blocking, both on CPU $cpu0" udp_blocking --paths udp_blocking --cpus "$cpu0,$cpu0"
row "udp busy-poll, two CPUs (default)" udp_busy --paths udp_busy
