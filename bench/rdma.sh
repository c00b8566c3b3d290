#!/usr/bin/env bash
# rdma.sh - `unet-perf rdma`: one-sided READ/WRITE/CAS/FADD (shm one-sided, shm and udp served),
# msg request/reply RTT versus kernel TCP, the shared-memory floor, and UCX's ucx_perftest over
# shm, with the bars of issue 4 (see BENCHMARKS.md). One run; its rates are medians of 5.
set -u
BUILD=${1:-build}
PERF="$BUILD/unet-perf"
[ -x "$PERF" ] || { echo "rdma: $PERF not built"; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "rdma: needs two CPUs"; exit 77; }
out=${BENCH_OUT:-.}/rdma.json
"$PERF" rdma --json-out "$out"
