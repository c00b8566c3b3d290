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

step "FaRM: a 3-node cluster on this host, one shared address space"
cat <<'TXT'
`farm cluster up -n 3` starts three farmd processes with the embedded static
configuration (no external service): a consistent-hashing ring places each
region on a primary and two backups. Each node allocates an object and writes
it; another node reads it back (a one-sided READ of the primary's memory over
the shm NIC when the primary is elsewhere). Then `farm bench read` measures
remote 64-byte object reads inside node 1, one at a time from one thread.
TXT
if [ ! -x "$BUILD/farm" ] || [ ! -x "$BUILD/farmd" ]; then
	echo "demo: $BUILD/farm or $BUILD/farmd is missing; run 'make build' first" >&2
	exit 1
fi
FARM_DEMO_DIR=$(mktemp -d /tmp/farm-demo.XXXXXX)
farm_demo_down() {
	"$BUILD/farm" cluster down --dir "$FARM_DEMO_DIR" >/dev/null 2>&1 || true
	rm -rf "$FARM_DEMO_DIR"
}
trap farm_demo_down EXIT
farm() { "$BUILD/farm" "$@" --dir "$FARM_DEMO_DIR"; }
farm cluster up -n 3 --name demo --region-size 4M
declare -A FARM_OBJ
for i in 1 2 3; do
	FARM_OBJ[$i]=$(farm alloc 64 --node "$i")
	farm write "${FARM_OBJ[$i]}" "hello from node $i" --node "$i" >/dev/null
	echo "node $i: allocated ${FARM_OBJ[$i]}, wrote 'hello from node $i'"
done
for i in 1 2 3; do
	j=$((i % 3 + 1))
	text=$(farm read "${FARM_OBJ[$i]}" --len 17 --raw --node "$j")
	meta=$(farm read "${FARM_OBJ[$i]}" --len 17 --node "$j" | sed 's/ hex=.*//')
	echo "node $j reads ${FARM_OBJ[$i]}: '$text'  ($meta)"
done
farm bench read --size 64 --count 2000000 --remote --node 1
farm cluster down
trap - EXIT
rm -rf "$FARM_DEMO_DIR"

step "FaRM recovery: kill -9 of a primary during a bank workload (farm bench recovery)"
if command -v zookeeper-server-start >/dev/null 2>&1 || [ -d /usr/share/zookeeper ]; then
	cat <<'TXT'
A fresh 3-node cluster with ZooKeeper membership and 20 ms leases runs the bank
on every node; after 1 s the primary of some regions is killed with kill -9.
The survivors' leases notice, the configuration manager publishes the next
configuration, the survivors adopt it, decide the dead node's in-flight
transactions from their logs and re-create its replicas. Printed: committed
transactions per millisecond around the kill, and the time until throughput is
back at 90%. Three runs, about 15 s (docs/recovery.md).
TXT
	FARMD="$BUILD/farmd" "$BUILD/farm" bench recovery --runs 3 --lease-ms 20 --after-ms 120 ||
		echo "demo: farm bench recovery failed (see above)"
else
	echo "skipped: ZooKeeper is not installed (scripts/setup.sh installs it)"
fi

step "U-Net on the wire: unet-perf compare-net (xdp and udp NICs vs kernel UDP over veth)"
if [ "$(id -u)" -eq 0 ]; then
	cat <<'TXT'
Two network namespaces joined by one veth pair (created now, removed at the
end), one process in each, pinned to two different CPUs. Over that same wire:
  xdp NIC          U-Net endpoints on AF_XDP (mode as the NIC picks it: native
                   on veth), no system call on receive, one sendto kick per send
  xdp NIC generic  the same with the XDP program in generic mode
  udp NIC          U-Net endpoints on kernel UDP sockets (sendmmsg/recvmmsg)
  udp blocking     plain kernel UDP sockets, recv() sleeps
  udp busy-poll    the same, recv(MSG_DONTWAIT) in a loop
then the one-way 64-byte packet rate, counted by the receiver. About 30 s.
TXT
	"$BUILD/unet-perf" compare-net --iters 10000
else
	echo "skipped: compare-net needs root (it creates network namespaces, a veth pair"
	echo "and XDP programs); run 'sudo make demo' to see it"
fi

step "demo done (numbers on a shared, noisy machine vary from run to run; see BENCHMARKS.md)"
