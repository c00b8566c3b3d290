#!/usr/bin/env bash
# farm_cli_rejoin.sh - a member killed and started again with `farm cluster
# restart`, as a user drives it: `cluster up --zk -n 3` (shm), objects
# written through every node and a committed bank load; kill -9 of node 3 by
# the pid in its pid file; `cluster status` shows a configuration without it;
# `cluster restart 3` starts it again (same config, options, ZooKeeper, pid
# file, log) and follows its join (joining -> joined). Then: `cluster status`
# shows member 3 back and not joining, every node runs that configuration and
# the same map, every region has its three replicas (node 3 among them, and
# leading some), every object reads back the same bytes through every node
# (some of them from node 3's refilled replica, where it leads), the bank's
# total is audited intact through every node and a second bank run over
# all three nodes commits on node 3 and keeps it, and `cluster down` leaves
# none of the processes running. Errors: restart of a member that is not in
# the cluster, of a live member, of a member of a cluster with static
# membership, without a cluster, and without ID: a message, exit != 0.
#
# Run by ctest as `bash tests/farm_cli_rejoin.sh BUILD_DIR`; exit 77
# (skipped) when ZooKeeper (java, the server jar) or libzookeeper-mt is
# missing. Every command runs under `timeout`; a watchdog ends the test
# after 55 s; everything it starts is stopped by pid on any exit.
set -u
. "$(dirname "$0")/helpers/lib.sh"
RUN_TIMEOUT=30

BUILD=${1:?usage: farm_cli_rejoin.sh BUILD_DIR}
FARM=$BUILD/farm
PY=$(command -v python3 || true)
need_built "$FARM" "$BUILD/farmd"
need_zookeeper

T=$(mktemp -d /tmp/farm-cli-rejoin.XXXXXX)
C=$T/c
S=$T/static
NAME=rj$$
PIDS=() # every farmd and ZooKeeper pid seen: none may survive the test
cleanup() {
	for d in "$C" "$S"; do
		[ -f "$d/farm.conf" ] && timeout 20 "$FARM" cluster down --dir "$d" --timeout 3000 >/dev/null 2>&1
	done
	[ -n "${WATCHDOG:-}" ] && kill "$WATCHDOG" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
# The watchdog signals only this shell, whose trap then stops the clusters;
# its sleep holds no pipe of ctest's and is ended with it.
(
	trap 'kill $s 2>/dev/null; exit 0' TERM
	sleep 55 </dev/null >/dev/null 2>&1 &
	s=$!
	wait $s && echo "FAIL watchdog: still running after 55 s" && kill -TERM $$
) &
WATCHDOG=$!

t_ms() { echo $(($(date +%s%N) / 1000000)); }

# refused CODE PATTERN cmd...: exits CODE with PATTERN in its message
refused() {
	local code=$1 pat=$2
	shift 2
	if run "$code" "$@"; then
		grep -q "$pat" "$T/err" && ok "refused ($code): ${*#$FARM}: $(head -n 1 "$T/err" | cut -c 1-110)" ||
			bad "no '$pat' in: $(cat "$T/err")"
	fi
}

remember_pids() { # every pid file of the clusters, and ZooKeeper's
	local f p
	for f in "$C"/node-*.pid "$C"/zk.pid "$S"/node-*.pid; do
		[ -r "$f" ] && p=$(cat "$f") && [ -n "$p" ] && PIDS+=("$p")
	done
}

alive() { # a process, not a zombie (PID 1 reaps orphans late here)
	local st
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# ---- errors before any cluster ---------------------------------------------
refused 2 "ID" "$FARM" cluster restart --dir "$T/none"
refused 2 "ID" "$FARM" cluster restart three --dir "$T/none"
refused 1 "no cluster" "$FARM" cluster restart 1 --dir "$T/none"

# ---- static membership: refused --------------------------------------------
if run 0 "$FARM" cluster up -n 2 --region-size 256K --dir "$S" --name "st$$"; then
	remember_pids
	refused 1 "is running" "$FARM" cluster restart 2 --dir "$S"
	P=$(cat "$S/node-2.pid")
	[ -n "$P" ] && alive "$P" && kill -9 "$P"
	refused 1 "static membership" "$FARM" cluster restart 2 --dir "$S"
	[ "$(cat "$S/node-2.pid")" = "$P" ] && ok "static: no node 2 was started" ||
		bad "static: node 2's pid file changed"
	run 0 "$FARM" cluster down --dir "$S" --timeout 3000 || true
fi

# ---- the cluster --------------------------------------------------------------
if ! timeout 40 "$FARM" cluster up -n 3 --zk --region-size 1M --dir "$C" --name "$NAME" \
	>"$T/up.out" 2>"$T/up.err"; then
	if grep -q "without ZooKeeper support" "$C"/node-*.log 2>/dev/null; then
		echo "SKIP: libfarm built without libzookeeper-mt"
		exit 77
	fi
	bad "cluster up --zk"
	tail -n 20 "$T/up.err" "$C"/node-*.log 2>/dev/null | sed 's/^/     | /'
	exit 1
fi
remember_pids
ok "cluster up --zk: 3 nodes ready ($(grep -c '^region' "$T/up.out") regions)"
refused 1 "not a member" "$FARM" cluster restart 7 --dir "$C"
refused 1 "is running" "$FARM" cluster restart 2 --dir "$C"

# Objects: two per node, one of one line and one of several, random bytes
# (a rerun never sees the same), written through another node than the one
# that allocated them.
: >"$T/objs"
for n in 1 2 3; do
	for size in 40 300; do
		run 0 "$FARM" alloc $size --node $n --dir "$C" --json || continue
		A=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["addr"])' "$T/out")
		H=$(head -c $size /dev/urandom | od -An -v -tx1 | tr -d ' \n')
		run 0 "$FARM" write "$A" --hex "$H" --node $((n % 3 + 1)) --dir "$C" && echo "$A $size $H" >>"$T/objs"
	done
done
[ "$(wc -l <"$T/objs")" -eq 6 ] && ok "6 objects written" || bad "objects: $(wc -l <"$T/objs") of 6"

# A committed bank load: transfers on every node for a second; audited.
ROOT=
if run 0 "$FARM" bench tx --workload bank --accounts 200 --seconds 1 --dir "$C" --json; then
	if ROOT=$("$PY" - "$T/out" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
a = d["audit"]
assert d["committed"] > 0 and d["errors"] == 0 and d["violations"] == 0, d
assert a["intact"] and a["total"] == a["expected"] == 200 * 1000000 and a["negative"] == 0, a
print(d["root"])
PY
	); then
		ok "bank load: $(grep -o '"committed":[0-9]*' "$T/out" | head -1) transactions, audit intact, root $ROOT"
	else
		bad "bank load result: $(head -c 400 "$T/out")"
	fi
fi

# ---- kill -9 node 3 by its pid file ---------------------------------------------
P3=$(cat "$C/node-3.pid" 2>/dev/null)
if [ -z "$P3" ] || ! tr '\0' ' ' <"/proc/$P3/cmdline" | grep -q "farmd.*--config $C/farm.conf.*--id 3"; then
	bad "node-3.pid does not name node 3's farmd ('$P3')"
	exit 1
fi
kill -9 "$P3"
t_kill=$(t_ms)
cfg_without=
for _ in $(seq 200); do
	timeout 10 "$FARM" cluster status --dir "$C" --json >"$T/st.json" 2>/dev/null
	cfg_without=$("$PY" - "$T/st.json" <<'PY' 2>/dev/null
import json, sys
d = json.load(open(sys.argv[1]))
c = d["configuration"]
n3 = [n for n in d["nodes"] if n["id"] == 3][0]
if c["members"] == [1, 2] and n3["state"] == "dead":
    print(c["id"])
PY
	)
	[ -n "$cfg_without" ] && break
	sleep 0.05
done
if [ -n "$cfg_without" ]; then
	ok "status: configuration $cfg_without without node 3, node 3 dead ($(($(t_ms) - t_kill)) ms after kill -9, polled)"
else
	bad "no configuration without node 3: $(head -c 600 "$T/st.json")"
	exit 1
fi

# ---- restart ----------------------------------------------------------------------
t_restart=$(t_ms)
if run 0 "$FARM" cluster restart 3 --join-timeout 15000 --dir "$C" --json; then
	cp "$T/out" "$T/restart.json"
	if "$PY" - "$T/restart.json" "$cfg_without" <<'PY'; then
import json, sys
d = json.load(open(sys.argv[1]))
gone = int(sys.argv[2])
assert d["ok"] and d["node"] == 3 and d["pid"] > 0, d
assert d["joined_config"] > d["joining_config"] > gone, d
assert 0 <= d["join_ms"] < 30000 and d["answered_ms"] >= 0 and d["joined_seen_ms"] >= 0, d
PY
		ok "restart 3: configuration $(grep -o '"joining_config":[0-9]*' "$T/restart.json" | cut -d: -f2) joining -> $(grep -o '"joined_config":[0-9]*' "$T/restart.json" | cut -d: -f2) joined in $(grep -o '"join_ms":[0-9]*' "$T/restart.json" | cut -d: -f2) ms (node 3's log; whole restart command $(($(t_ms) - t_restart)) ms)"
	else
		bad "restart --json: $(cat "$T/restart.json")"
	fi
	grep -q "answers after" "$T/err" && ok "restart progress on stderr" || bad "no progress: $(cat "$T/err")"
else
	tail -n 15 "$C/node-3.log" | sed 's/^/     | /'
	exit 1
fi
remember_pids
NEW3=$(cat "$C/node-3.pid")
[ "$NEW3" != "$P3" ] && tr '\0' ' ' <"/proc/$NEW3/cmdline" | grep -q -- "--config $C/farm.conf --id 3 .*--zk $(cat "$C/zk.hosts")" &&
	ok "node 3 is a new farmd (pid $NEW3) with the cluster's config and ZooKeeper" ||
	bad "node 3's pid file / command line: $NEW3 $(tr '\0' ' ' <"/proc/$NEW3/cmdline" 2>/dev/null)"
grep -q "joining the running cluster" "$C/node-3.log" && grep -q "^.*joined: configuration" "$C/node-3.log" &&
	grep -q "primary for regions \[" "$C/node-3.log" && [ "$(grep -c "starting node 3" "$C/node-3.log")" -eq 2 ] &&
	ok "node 3's log kept the first incarnation and logs joining -> joined" ||
	bad "node 3's log: $(tail -n 5 "$C/node-3.log")"
# The join as farmd logged it: from the configuration it started in to joined.
JOIN_LOG_MS=$("$PY" - "$C/node-3.log" <<'PY'
import datetime, sys
t0 = t1 = None
for l in open(sys.argv[1]):
    ts = l.split()[0]
    if "joining the running cluster" in l: t0 = ts
    if "joined: configuration" in l: t1 = ts
f = lambda s: datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ")
print(round((f(t1) - f(t0)).total_seconds() * 1000) if t0 and t1 else "?")
PY
)
echo "     node 3's log: joining -> joined in $JOIN_LOG_MS ms"
refused 1 "is running" "$FARM" cluster restart 3 --dir "$C"

# ---- back, and whole -----------------------------------------------------------------
back=
for _ in $(seq 100); do
	if timeout 10 "$FARM" cluster status --dir "$C" --json >"$T/st.json" 2>/dev/null; then
		"$PY" - "$T/st.json" <<'PY' 2>/dev/null && back=1 && break
import json, sys
d = json.load(open(sys.argv[1]))
c = d["configuration"]
assert c["members"] == [1, 2, 3] and c["joining"] == [], c
assert all(n["state"] == "ready" for n in d["nodes"]), d["nodes"]
PY
	fi
	sleep 0.05
done
[ -n "$back" ] && ok "status: member 3 back, not joining, every node ready ($(grep -o '"configuration":{"id":[0-9]*' "$T/st.json" | grep -o '[0-9]*$'))" ||
	bad "status after restart: $(head -c 600 "$T/st.json")"

# Every node on that configuration with the same map: 3 distinct replicas
# per region, node 3 in every region's set and leading some.
status_json() {
	node_status "$C/node-$1.sock"
}
same=
for _ in $(seq 50); do
	for n in 1 2 3; do status_json $n >"$T/s$n.json" 2>/dev/null; done
	if "$PY" - "$T"/s1.json "$T"/s2.json "$T"/s3.json <<'PY'; then
import json, sys
s = [json.load(open(p)) for p in sys.argv[1:]]
assert len({x["config_id"] for x in s}) == 1, [x["config_id"] for x in s]
assert all(x["map"] == s[0]["map"] for x in s)
regions = s[0]["map"]
assert len(regions) == s[0]["regions"] == 12
for r in regions:
    reps = [r["primary"]] + r["backups"]
    assert len(reps) == len(set(reps)) == 3 and set(reps) == {1, 2, 3}, r
assert any(r["primary"] == 3 for r in regions), "node 3 leads nothing"
PY
		same=1
		break
	fi
	sleep 0.05
done
[ -n "$same" ] && ok "every node: one configuration, one map, 12 regions x 3 replicas, node 3 leads $("$PY" -c 'import json,sys; print(sum(r["primary"]==3 for r in json.load(open(sys.argv[1]))["map"]))' "$T/s1.json")" ||
	bad "maps after the join: $(head -c 300 "$T/s1.json")"

# Every object, through every node; those node 3 leads now come from its
# refilled replica.
led3=0
nread=0
while read -r A SIZE H; do
	for n in 1 2 3; do
		if run 0 "$FARM" read "$A" --len "$SIZE" --node $n --dir "$C" --json; then
			got=$("$PY" -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["hex"], j["primary"])' "$T/out")
			if [ "${got% *}" = "$H" ]; then
				nread=$((nread + 1))
				[ $n -eq 1 ] && [ "${got#* }" = 3 ] && led3=$((led3 + 1))
			else
				bad "object $A through node $n: ${got:0:40}... want ${H:0:40}..."
			fi
		fi
	done
done <"$T/objs"
[ $nread -eq 18 ] && ok "6 objects read back byte for byte through each of the 3 nodes ($led3 led by node 3)" ||
	bad "$nread of 18 reads matched"
[ $led3 -gt 0 ] || bad "no object is led by node 3 after the join (its replicas would go unread)"

# The bank: audited through every node, then transfers on all three.
if [ -n "$ROOT" ]; then
	for n in 1 2 3; do
		r=$(timeout 10 "$PY" - "$C/node-$n.sock" "bench tx audit $ROOT" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(8); s.connect(sys.argv[1])
s.sendall((sys.argv[2] + "\n").encode()); print(s.makefile().readline().strip())
PY
		)
		echo "$r" | "$PY" -c 'import json,sys; j=json.load(sys.stdin); assert j["ok"] and j["intact"] and j["total"]==j["expected"]==200*1000000 and j["negative"]==0, j' 2>/dev/null &&
			ok "bank audit through node $n: intact" || bad "bank audit through node $n: $r"
	done
	if run 0 "$FARM" bench tx --workload bank --root "$ROOT" --seconds 1 --dir "$C" --json; then
		"$PY" - "$T/out" <<'PY' && ok "bank run after the join: node 3 commits, total intact" || bad "bank after the join: $(head -c 400 "$T/out")"
import json, sys
d = json.load(open(sys.argv[1]))
a = d["audit"]
assert d["errors"] == 0 and d["violations"] == 0 and a["intact"] and a["total"] == 200 * 1000000, d
assert [p for p in d["per_node"] if p["node"] == 3][0]["committed"] > 0, d["per_node"]
PY
	fi
fi

# ---- down: nothing of ours keeps running ---------------------------------------------
remember_pids
run 0 "$FARM" cluster down --dir "$C" --timeout 3000 && ok "cluster down" || true
sleep 0.2
left=
for p in "${PIDS[@]}"; do
	alive "$p" && left="$left $p"
done
[ -z "$left" ] && ok "nothing left running (${#PIDS[@]} pids seen: farmd and ZooKeeper)" ||
	bad "still running after down:$left"
ls "$C"/node-*.sock "$C"/node-*.pid "$C"/zk.pid >/dev/null 2>&1 && bad "files left: $(ls "$C")" ||
	ok "no socket or pid file left"

echo "$passes passed, $fails failed"
[ $fails -eq 0 ]
