#!/usr/bin/env bash
# unet_perf_net.sh - `unet-perf compare-net` end to end, with tiny counts:
# its --json object is complete and self-consistent (every path measured,
# ratios equal to the medians they come from, percentiles ordered, the XDP
# mode reported), its namespaces are gone afterwards -- also after a SIGINT
# in the middle of a run -- and without root it says why and exits 77.
# Root only (exit 77, skipped, otherwise): it creates namespaces and XDP
# programs.
#
# Run by ctest as `bash tests/unet_perf_net.sh BUILD_DIR`; every command
# runs under `timeout`.
set -u
. "$(dirname "$0")/helpers/lib.sh"

BUILD=${1:?usage: unet_perf_net.sh BUILD_DIR}
PERF=$BUILD/unet-perf
if [ "$(id -u)" -ne 0 ]; then
	echo "skipped: needs root (compare-net creates network namespaces, a veth pair and XDP programs)"
	exit 77
fi
if [ ! -x "$PERF" ] || ! command -v python3 >/dev/null || ! command -v ip >/dev/null; then
	echo "skipped: needs $PERF, python3 and ip (iproute2)"
	exit 77
fi

T=$(mktemp -d /tmp/unet-perf-net.XXXXXX)
trap 'rm -rf "$T"' EXIT

# ---- one run, tiny counts ----------------------------------------------------
timeout 180 "$PERF" compare-net --json --iters 300 --warmup 30 --sizes 8,64,1400 \
	--window-ms 40 --rounds 1 >"$T/out.json" 2>"$T/err"
rc=$?
if [ $rc -eq 0 ]; then ok "compare-net --json exits 0"; else
	bad "compare-net --json exits $rc"
	cat "$T/err"
fi

if python3 - "$T/out.json" <<'PY'; then ok "JSON complete and consistent"; else bad "JSON check"; fi
import json, math, sys

d = json.load(open(sys.argv[1]))
errs = []
def need(cond, what):
    if not cond:
        errs.append(what)

def pos(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 and math.isfinite(v)

need(d.get("mode") == "compare-net", "mode")
need(d.get("errors") == {}, "errors: %r" % d.get("errors"))
need(len(set(d.get("cpus", []))) == 2, "two different CPUs: %r" % d.get("cpus"))
need(isinstance(d.get("contended"), bool), "contended is a bool")
need(pos(d.get("loadavg_1min")) or d.get("loadavg_1min") == 0, "loadavg")
lat_paths = ["xdp", "xdp_generic", "udp_nic", "udp_blocking", "udp_busy"]
med = d.get("median_rtt_ns_8b", {})
for p in lat_paths:
    need(pos(med.get(p)), "median 8 B of %s: %r" % (p, med.get(p)))
    rows = d.get("latency", {}).get(p, [])
    need([r.get("size") for r in rows] == [8, 64, 1400], "sizes of %s" % p)
    for r in rows:
        ok = all(pos(r.get(k)) for k in ("median_ns", "p99_ns", "p999_ns", "min_ns"))
        need(ok, "%s %s B has its percentiles" % (p, r.get("size")))
        if ok:
            need(r["min_ns"] <= r["median_ns"] <= r["p99_ns"] <= r["p999_ns"] <= r["max_ns"],
                 "%s %s B percentiles ordered" % (p, r.get("size")))
            need(r.get("samples") == d.get("iters"), "%s samples" % p)
        if r.get("size") == 8 and pos(r.get("median_ns")):
            need(r["median_ns"] == med.get(p), "%s summary = table" % p)
def close(a, b):
    return pos(a) and pos(b) and abs(a - b) <= 1e-4 * b
if all(pos(med.get(p)) for p in lat_paths):
    need(close(d.get("ratio_xdp_udp_busy"), med["xdp"] / med["udp_busy"]), "ratio xdp/busy")
    need(close(d.get("ratio_xdp_udp_blocking"), med["xdp"] / med["udp_blocking"]),
         "ratio xdp/blocking")
    need(close(d.get("ratio_xdp_generic_udp_busy"), med["xdp_generic"] / med["udp_busy"]),
         "ratio xdp_generic/busy")
pps = d.get("pps_64b", {})
for p in ("xdp", "xdp_generic", "udp_nic", "kernel_mmsg"):
    need(pos(pps.get(p)), "pps of %s: %r" % (p, pps.get(p)))
    det = d.get("pps_detail", {}).get(p, {})
    need(det.get("received_in_windows", 0) > 0, "%s received something" % p)
    need(det.get("received_in_windows", 0) <= det.get("sent", 0), "%s got no more than sent" % p)
    # A duplicate is (mostly) a tx frame reused while the kernel still reads
    # it (nic_xdp.c comp_reap, BENCHMARKS.md). Reusing the oldest free frame
    # made them rare (about one in 10^8 frames since); reusing the newest
    # gave up to 7 in 10^5, which this fails.
    dup, got = det.get("duplicated", 1), det.get("received_in_windows", 0)
    need(dup <= 2 + got / 100000, "%s delivered next to nothing twice: %r" % (p, dup))
    need(pos(det.get("sender_cpu_ns_per_packet")), "%s sender CPU per packet" % p)
    rounds = det.get("pps_per_round", [])
    need(len(rounds) == d.get("rate_rounds") == 1 and close(rounds[0], pps.get(p)),
         "%s rate = its one round" % p)
if pos(pps.get("xdp")) and pos(pps.get("kernel_mmsg")):
    need(close(d.get("ratio_pps_xdp_kernel"), pps["xdp"] / pps["kernel_mmsg"]), "ratio pps")
x = d.get("xdp", {})
need(x.get("mode") in ("native", "generic"), "xdp mode reported: %r" % x.get("mode"))
need(x.get("bind") in ("copy", "zerocopy"), "xdp bind reported: %r" % x.get("bind"))
need(len(x.get("info", [])) == 2 and all(i.startswith("xdp dev=") for i in x["info"]),
     "xdp info of both sides")
need(d.get("xdp_generic", {}).get("mode") == "generic", "xdp_generic runs generic mode")
for k, v in d.get("bars", {}).items():
    need(isinstance(v, bool), "bar %s is a verdict" % k)
need(len(d.get("bars", {})) == 6, "six bar verdicts")
if errs:
    print("\n".join(errs))
    sys.exit(1)
PY

# The namespaces the run named are gone.
names=$(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["wire"]["netns"]))' \
	"$T/out.json" 2>/dev/null)
left=""
for n in $names; do
	ip netns list | grep -qw "$n" && left="$left $n"
done
if [ -n "$names" ] && [ -z "$left" ]; then ok "namespaces removed ($names)"; else
	bad "namespaces left:$left (named: $names)"
fi

# ---- bad usage -----------------------------------------------------------------
timeout 10 "$PERF" compare-net --xdp-mode fast >/dev/null 2>"$T/err"
rc=$?
if [ $rc -eq 2 ] && grep -q "xdp-mode" "$T/err"; then ok "bad --xdp-mode: exit 2"; else
	bad "bad --xdp-mode: exit $rc"
fi
timeout 10 "$PERF" compare-net --paths xdp,nonsense >/dev/null 2>"$T/err"
rc=$?
if [ $rc -eq 2 ]; then ok "bad --paths: exit 2"; else bad "bad --paths: exit $rc"; fi

# ---- SIGINT in the middle of a run removes everything --------------------------
# Not under timeout(1): the signal must reach unet-perf itself, whose pid
# names the namespaces; a watchdog stands in for timeout.
alive() { # a pid that is neither gone nor a zombie (PID 1 reaps late here)
	local st
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}
"$PERF" compare-net --iters 5000000 --sizes 8 --paths udp_blocking --no-stream \
	>/dev/null 2>"$T/err" &
pid=$!
# (Its output goes nowhere and it ends with the run: a sleeper holding our
# stdout would keep ctest waiting.)
(
	for _ in $(seq 1 900); do
		sleep 0.1
		kill -0 $pid 2>/dev/null || exit 0
	done
	kill -KILL $pid
) >/dev/null 2>&1 &
dog=$!
up=0
for _ in $(seq 1 200); do # 10 s
	if ip netns list | grep -q "^unp-$pid-b"; then
		up=1
		break
	fi
	sleep 0.05
done
sleep 1 # into the measurement: the responder runs in the second namespace
kids=$(pgrep -P $pid)
grandkids=$(for k in $kids; do pgrep -P "$k"; done)
kill -INT $pid
wait $pid
rc=$?
kill $dog 2>/dev/null
wait $dog 2>/dev/null
sleep 0.2
left=$(ip netns list | grep -c "^unp-$pid-")
stray=""
for k in $kids $grandkids; do alive "$k" && stray="$stray $k"; done
if [ $up -eq 1 ] && [ "$left" -eq 0 ] && [ $rc -eq 130 ] && [ -z "$stray" ] &&
	[ -n "$grandkids" ]; then
	ok "SIGINT mid-run: exit 130, namespaces removed, measurer and responder gone"
else
	bad "SIGINT mid-run: up=$up exit=$rc namespaces left=$left children=[$kids/$grandkids] alive=[$stray]"
	cat "$T/err"
fi

# ---- without root: a reason and 77 ---------------------------------------------
if command -v setpriv >/dev/null && id nobody >/dev/null 2>&1 &&
	setpriv --reuid=nobody --regid=nogroup --clear-groups test -x "$PERF" 2>/dev/null; then
	setpriv --reuid=nobody --regid=nogroup --clear-groups \
		timeout 10 "$PERF" compare-net >"$T/out" 2>"$T/err"
	rc=$?
	if [ $rc -eq 77 ] && grep -q "skipped: needs root" "$T/err"; then
		ok "not root: exit 77 with the reason"
	else
		bad "not root: exit $rc, said: $(cat "$T/err")"
	fi
else
	echo "note: no setpriv or no user 'nobody' that can run $PERF; the non-root path is not checked"
fi

[ $fails -eq 0 ] && echo "all ok" || echo "$fails failed"
[ $fails -eq 0 ]
