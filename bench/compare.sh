#!/usr/bin/env bash
# compare.sh - `unet-perf compare` three times (RUNS=n to change), each table
# printed, then the medians over the runs of what the bars are about: 8-byte
# round trip per path, the ratios shm/floor and udp/shm, 64 KiB streaming on
# shm. Usage: bench/compare.sh BUILD_DIR. Extra unet-perf options can be
# passed in UNET_PERF_ARGS (e.g. "--iters 5000").
set -euo pipefail

BUILD=${1:-build}
RUNS=${RUNS:-3}
OUT=${BENCH_OUT:-$BUILD/bench-results/compare-$(date +%Y%m%d-%H%M%S)}
PERF="$BUILD/unet-perf"
mkdir -p "$OUT"

if [ ! -x "$PERF" ]; then
	echo "compare: $PERF missing; run 'make build' first" >&2
	exit 1
fi
if [ "$(nproc)" -lt 2 ]; then
	echo "compare: needs two CPUs; skipped"
	exit 77
fi

for i in $(seq 1 "$RUNS"); do
	echo "---- run $i of $RUNS (load $(cut -d' ' -f1 /proc/loadavg))"
	# shellcheck disable=SC2086
	"$PERF" compare --json-out "$OUT/compare-$i.json" ${UNET_PERF_ARGS:-}
	echo
done

if ! command -v python3 >/dev/null; then
	echo "compare: python3 not found, no summary over runs (results in $OUT)"
	exit 0
fi
python3 - "$OUT" "$RUNS" <<'PY'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
docs = [json.load(open(f"{out}/compare-{i}.json")) for i in range(1, runs + 1)]

def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None

def fmt(v, spec):
    return "n/a" if v is None else format(v, spec)

rtt = {k: med([d["median_rtt_ns_8b"].get(k) for d in docs])
       for k in ("floor", "shm", "udp_blocking", "udp_busy")}
r_sf = med([d["ratio_shm_floor"] for d in docs])
r_us = med([d["ratio_udp_blocking_shm"] for d in docs])
r_ub = med([d["ratio_udp_busy_shm"] for d in docs])
bw = med([d["stream_gbps_64k"].get("shm") for d in docs])
summary = {"runs": runs, "median_rtt_ns_8b": rtt, "ratio_shm_floor": r_sf,
           "ratio_udp_blocking_shm": r_us, "ratio_udp_busy_shm": r_ub,
           "stream_gbps_64k_shm": bw,
           "per_run": [{"median_rtt_ns_8b": d["median_rtt_ns_8b"],
                        "ratio_shm_floor": d["ratio_shm_floor"],
                        "ratio_udp_blocking_shm": d["ratio_udp_blocking_shm"],
                        "stream_gbps_64k_shm": d["stream_gbps_64k"].get("shm"),
                        "loadavg_1min": d.get("loadavg_1min")} for d in docs]}
json.dump(summary, open(f"{out}/compare-summary.json", "w"), indent=1)

def verdict(ok):
    return "not measured" if ok is None else ("met" if ok else "MISSED")

print(f"== compare: medians over {runs} runs (each run's own figures in {out})")
print("  8-byte RTT median, ns:  floor {}  shm {}  udp blocking {}  udp busy-poll {}".format(
    *(fmt(rtt[k], ".0f") for k in ("floor", "shm", "udp_blocking", "udp_busy"))))
print("  per run shm/floor:      " + "  ".join(fmt(d["ratio_shm_floor"], ".2f") for d in docs))
print(f"  shm / floor            {fmt(r_sf, '7.2f')}x   bar <= 1.5x: "
      f"{verdict(None if r_sf is None else r_sf <= 1.5)}")
print(f"  udp blocking / shm     {fmt(r_us, '7.1f')}x   bar >= 40x: "
      f"{verdict(None if r_us is None else r_us >= 40)}")
print(f"  udp busy-poll / shm    {fmt(r_ub, '7.1f')}x")
print(f"  shm 64 KiB streaming   {fmt(bw, '7.2f')} GB/s   bar >= 5 GB/s: "
      f"{verdict(None if bw is None else bw >= 5)}")
PY
