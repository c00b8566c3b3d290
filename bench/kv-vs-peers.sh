#!/usr/bin/env bash
# kv-vs-peers.sh [BUILD_DIR] [options] - FaRM's key-value store against the
# stores people already run, on this host, in one run (issue 8's bars).
#
#   bench/kv-vs-peers.sh build --clients 2 --keys 100000 --duration 3 --runs 3 [--json]
#
# Same client count, key space, key size (16 B) and value sizes (32 B, FaRM's
# setting, and 1 KiB), uniform and Zipf 0.99 keys, GETs of preloaded keys:
#   native      FaRM's own client: `bench kv get` inside N farmd nodes of a
#               3-node shm cluster at once (one-sided reads, kvload --native)
#   redis       Redis 7 (`redis-server`), driven by `redis-benchmark -t get`
#               with N connections (--threads N), without and with -P 16;
#               redis-benchmark draws keys uniformly only, so it has no Zipf row
#   memcached   memcached 1.6 (defaults: 4 threads), driven by kvload
#               (N processes, memcached text protocol)
#   gateway     farmd's memcached gateway on node 1 (its default 4 worker
#               threads, as memcached's), driven by kvload
#   gateways    one gateway per client (nodes 1..N), the same table
#   gateway-shared  one port that every node of the cluster serves
#               (farmd --memcached-shared-port: SO_REUSEPORT, the kernel
#               spreads connections over the nodes by a hash), the way a
#               host's nodes are one memcached endpoint; driven by kvload
# Every peer is started here on a free 127.0.0.1 port and stopped by pid; the
# cluster is stopped by `farm cluster down` (pids in its run directory).
# Each figure is the median of --runs runs (a run = every row once, in turn,
# so a noisy minute hits all of them). Prints a table and the ratios of the
# bars; --json prints one JSON object instead. The machine's load average is
# recorded before and after.
#
# Options: --clients N (2) --keys K (100000) --duration S (3) --runs R (3)
#          --values "32 1024" --dists "uniform zipf" --json. With $BENCH_OUT set
# (bench/run-all.sh) the JSON is also kept there. Exit 77 without the peers.
set -euo pipefail

BUILD=build
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then
	BUILD=$1
	shift
fi
BUILD=$(cd "$BUILD" && pwd)
for t in farmd farm kvload; do
	[ -x "$BUILD/$t" ] || { echo "kv-vs-peers: $BUILD/$t missing; build first" >&2; exit 1; }
done
for t in redis-server redis-benchmark memcached python3; do
	command -v "$t" >/dev/null || { echo "kv-vs-peers: $t not installed (scripts/setup.sh): skipped" >&2; exit 77; }
done

WORK=$(mktemp -d /tmp/kv-vs-peers.XXXXXX)
SHARED_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export SHARED_PORT
cat >"$WORK/farmd" <<EOF
#!/usr/bin/env bash
exec -a farmd "$BUILD/farmd" "\$@" --memcached-port 0 --memcached-shared-port $SHARED_PORT
EOF
chmod +x "$WORK/farmd"
cleanup() {
	FARMD="$WORK/farmd" "$BUILD/farm" cluster down --dir "$WORK/run" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

python3 - "$BUILD" "$WORK" "$@" <<'PY'
import json, os, re, signal, socket, statistics, subprocess, sys, time

build, work = sys.argv[1], sys.argv[2]
args = sys.argv[3:]
opt = {"clients": 2, "keys": 100000, "duration": 3.0, "runs": 3,
       "values": "32 1024", "dists": "uniform zipf", "json": False}
i = 0
while i < len(args):
    a = args[i]
    if a == "--json":
        opt["json"] = True
    elif a.startswith("--") and a[2:] in opt and i + 1 < len(args):
        k = a[2:]
        opt[k] = type(opt[k])(args[i + 1]) if not isinstance(opt[k], bool) else True
        i += 1
    else:
        sys.exit("kv-vs-peers: unknown option %s" % a)
    i += 1
N, K, S, R = opt["clients"], opt["keys"], opt["duration"], opt["runs"]
VALUES = [int(v) for v in opt["values"].split()]
DISTS = opt["dists"].split()
log = (lambda *a: None) if opt["json"] else (lambda *a: print(*a, flush=True))
procs = []

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p

def start(argv, name):
    out = open(os.path.join(work, name + ".log"), "w")
    p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    procs.append(p)
    return p

def stop_all():
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()

def wait_port(port, what):
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("kv-vs-peers: %s did not come up on port %d" % (what, port))

def loadavg():
    return float(open("/proc/loadavg").read().split()[0])

def kvload(*extra):
    cmd = [os.path.join(build, "kvload"), "--clients", str(N), "--keys", str(K), "--json"] + list(extra)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("kv-vs-peers: %s failed: %s" % (" ".join(cmd), r.stderr.strip()))
    return json.loads(r.stdout)

try:
    load_before = loadavg()
    # ---- peers ----
    mc_port = free_port()
    start(["memcached", "-l", "127.0.0.1", "-p", str(mc_port), "-U", "0", "-m", "1024",
           ] + (["-u", "root"] if os.geteuid() == 0 else []), "memcached")
    wait_port(mc_port, "memcached")
    rd_port = free_port()
    start(["redis-server", "--port", str(rd_port), "--bind", "127.0.0.1", "--save", "",
           "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no"], "redis")
    wait_port(rd_port, "redis-server")
    env = dict(os.environ, FARMD=os.path.join(work, "farmd"))
    up = subprocess.run([os.path.join(build, "farm"), "cluster", "up", "-n", str(max(3, N)),
                         "--nic", "shm", "--region-size", "32M", "--name", "kvpeers",
                         "--dir", os.path.join(work, "run")], capture_output=True, text=True, env=env)
    if up.returncode != 0:
        sys.exit("kv-vs-peers: cluster up failed: " + up.stderr)
    gws = []
    for n in range(1, N + 1):
        txt = open(os.path.join(work, "run", "node-%d.log" % n)).read()
        m = re.findall(r"memcached gateway on \S+ port (\d+)", txt)
        gws.append(int(m[-1]))
    gw1 = "127.0.0.1:%d" % gws[0]
    gwn = ",".join("127.0.0.1:%d" % p for p in gws)
    gwsh = "127.0.0.1:%s" % os.environ["SHARED_PORT"]
    # listeners on the shared port (/proc/net/tcp, state 0A): one per node
    shared_listeners = sum(1 for l in open("/proc/net/tcp").readlines()[1:]
                           if l.split()[3] == "0A"
                           and int(l.split()[1].split(":")[1], 16) == int(os.environ["SHARED_PORT"]))
    mc = "127.0.0.1:%d" % mc_port
    log("peers: memcached %s, redis %d, gateways %s, shared %s, native: nodes 1..%d of %d (shm)"
        % (mc, rd_port, gwn, gwsh, N, max(3, N)))

    def redis_load(vsize):
        s = socket.create_connection(("127.0.0.1", rd_port))
        val = b"v" * vsize
        batch, sent = [], 0
        for k in range(K):
            key = b"key:%012d" % k
            batch.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, vsize, val))
            if len(batch) == 1000 or k == K - 1:
                s.sendall(b"".join(batch))
                sent += len(batch)
                batch = []
        got = b""
        while got.count(b"+OK\r\n") < sent:
            d = s.recv(1 << 20)
            if not d:
                sys.exit("kv-vs-peers: redis closed during the load")
            got += d
        s.close()

    def redis_get(vsize, pipe):
        n = int(S * (1500000 if pipe > 1 else 120000))
        r = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(rd_port), "-c", str(N),
                            "--threads", str(N), "-n", str(n), "-r", str(K), "-d", str(vsize),
                            "-t", "get", "-P", str(pipe), "--csv"], capture_output=True, text=True)
        rows = [l for l in r.stdout.splitlines() if l.startswith('"GET"')]
        if r.returncode != 0 or not rows:
            sys.exit("kv-vs-peers: redis-benchmark failed: " + r.stderr + r.stdout)
        f = [x.strip('"') for x in rows[0].split(",")]
        return {"ops_per_sec": float(f[1]), "p50_us": float(f[4]) * 1000, "p99_us": float(f[6]) * 1000}

    results = {}  # (vsize, dist, row) -> list of runs
    for vsize in VALUES:
        log("loading %d keys of %d+%d bytes into every store..." % (K, 16, vsize))
        kvload("--server", mc, "--value-size", str(vsize), "--load-only")
        kvload("--server", gw1, "--value-size", str(vsize), "--load-only")
        kvload("--native", os.path.join(work, "run"), "--value-size", str(vsize), "--load-only")
        redis_load(vsize)
        for run in range(R):
            for dist in DISTS:
                common = ["--value-size", str(vsize), "--dist", dist, "--duration", str(S)]
                rows = [("native", lambda: kvload("--native", os.path.join(work, "run"), *common)),
                        ("memcached", lambda: kvload("--server", mc, *common)),
                        ("gateway", lambda: kvload("--server", gw1, *common)),
                        ("gateways", lambda: kvload("--server", gwn, *common)),
                        ("gateway-shared", lambda: kvload("--server", gwsh, *common))]
                if dist == "uniform":
                    rows += [("redis", lambda: redis_get(vsize, 1)),
                             ("redis-P16", lambda: redis_get(vsize, 16))]
                for name, fn in rows:
                    r = fn()
                    if "misses" in r and (r["misses"] or r["errors"]):
                        sys.exit("kv-vs-peers: %s missed loaded keys: %r" % (name, r))
                    results.setdefault((vsize, dist, name), []).append(r)
                    log("  run %d/%d  %5d B %-7s %-14s %12.0f ops/s  p50 %7.2f us  p99 %7.2f us"
                        % (run + 1, R, vsize, dist, name, r["ops_per_sec"], r["p50_us"], r["p99_us"]))
    load_after = loadavg()
finally:
    stop_all()

med = {k: {m: statistics.median(x[m] for x in v) for m in ("ops_per_sec", "p50_us", "p99_us")}
       for k, v in results.items()}
BARS = [("native", "redis", 20), ("native", "redis-P16", 3), ("native", "memcached", 20),
        ("gateway", "memcached", 1), ("gateways", "memcached", 1),
        ("gateway-shared", "memcached", 1)]
out = {"clients": N, "keys": K, "key_size": 16, "duration_s": S, "runs": R,
       "load_before": load_before, "load_after": load_after, "cpus": os.cpu_count(),
       "nodes": max(3, N), "shared_port_listeners": shared_listeners,
       "results": [], "ratios": []}
for (vsize, dist, name), m in sorted(med.items()):
    out["results"].append(dict(value_size=vsize, dist=dist, store=name, runs=len(results[(vsize, dist, name)]), **m))
for vsize in VALUES:
    for dist in DISTS:
        for a, b, bar in BARS:
            if (vsize, dist, a) in med and (vsize, dist, b) in med:
                ratio = med[(vsize, dist, a)]["ops_per_sec"] / med[(vsize, dist, b)]["ops_per_sec"]
                out["ratios"].append(dict(value_size=vsize, dist=dist, what="%s/%s" % (a, b),
                                          ratio=ratio, bar=bar, met=ratio >= bar))
if os.environ.get("BENCH_OUT"):
    with open(os.path.join(os.environ["BENCH_OUT"], "kv-vs-peers.json"), "w") as f:
        json.dump(out, f, indent=1)
if opt["json"]:
    print(json.dumps(out, indent=1))
    sys.exit(0)
print()
print("GET ops/s, medians of %d runs; %d clients, %d keys, 16 B keys; load %.1f -> %.1f on %d CPUs"
      % (R, N, K, load_before, load_after, os.cpu_count()))
print("%-6s %-8s %-14s %14s %10s %10s" % ("value", "keys", "store", "ops/s", "p50 us", "p99 us"))
for r in out["results"]:
    print("%-6d %-8s %-14s %14.0f %10.2f %10.2f" % (r["value_size"], r["dist"], r["store"],
                                                    r["ops_per_sec"], r["p50_us"], r["p99_us"]))
print()
for r in out["ratios"]:
    print("%5d B %-8s %-26s %8.2fx  (bar >= %dx: %s)" % (r["value_size"], r["dist"], r["what"], r["ratio"],
                                                         r["bar"], "met" if r["met"] else "NOT met"))
PY
