#!/usr/bin/env bash
# demo.sh - what `make demo` shows, as a plain sequence of steps: each step
# prints a banner saying what it does, then does it. Called by `make demo`
# as `./scripts/demo.sh BUILD_DIR` after `make build`; later capabilities add
# their steps at the end.
set -euo pipefail

BUILD=${1:-build}
step() { printf '\n=== %s\n' "$*"; }

if [ ! -x "$BUILD/unet-perf" ]; then
	echo "demo: $BUILD/unet-perf is missing; run 'make build' (or 'make demo') first" >&2
	exit 1
fi

step "U-Net on shared memory: unet-perf compare"
cat <<'TXT'
Two processes, pinned to two CPUs, bounce messages of 8 B to 64 KiB and then
stream them one way, over four paths, all in this one run:
  shm floor      raw shared memory: one cache line each way, no library
  shm NIC        U-Net endpoints on the shm NIC (unet_send / unet_recv),
                 no system call on the data path
  udp blocking   kernel UDP sockets on 127.0.0.1, recv() sleeps
  udp busy-poll  the same, recv(MSG_DONTWAIT) in a loop
Round trips are in ns (median / p99 / p99.9); this takes about 15 seconds.
TXT
"$BUILD/unet-perf" compare

step "demo done (numbers on a shared, noisy machine vary from run to run; see BENCHMARKS.md)"
