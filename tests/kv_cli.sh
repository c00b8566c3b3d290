#!/usr/bin/env bash
# kv_cli.sh - `farm kv` as a user drives it, against a 3-node shm cluster:
# put/get/del with keys and values from arguments and from stdin, binary
# values (--raw, --hex), add/replace/cas/version semantics and their exit
# codes, a load of thousands of lines with progress and a scan that counts
# them, reads from every node, --json checked with python3, and bad
# arguments / input lines (exit 2) and missing keys or tables (exit 1).
#
# Run by ctest as `bash tests/kv_cli.sh BUILD_DIR`. The cluster lives in a
# private temporary directory and is stopped on any exit; every command runs
# under `timeout`.
set -u
. "$(dirname "$0")/helpers/lib.sh"
RUN_TIMEOUT=120
RUN_TAIL=5

BUILD=${1:?usage: kv_cli.sh BUILD_DIR}
FARM=$BUILD/farm
PY=$(command -v python3 || true)
if [ ! -x "$FARM" ] || [ ! -x "$BUILD/farmd" ]; then
	echo "SKIP: farm or farmd not built in $BUILD"
	exit 77
fi
if [ -z "$PY" ]; then
	echo "SKIP: python3 is needed to check --json output"
	exit 77
fi

T=$(mktemp -d /tmp/kv-cli-test.XXXXXX)
C=$T/c
cleanup() {
	[ -f "$C/farm.conf" ] && timeout 20 "$FARM" cluster down --dir "$C" --timeout 3000 >/dev/null 2>&1
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

KV="$FARM kv --dir $C" # unquoted below: the paths have no spaces (mktemp)

if ! run 0 "$FARM" cluster up -n 3 --region-size 4M --dir "$C"; then
	echo "kv_cli: cluster did not come up"
	exit 1
fi

echo "== put, get, overwrite, delete"
run 0 $KV put greeting "hello world" && grep -q '^version=[1-9]' "$T/out" && ok "put prints the version"
run 0 $KV get greeting && [ "$(cat "$T/out")" = "hello world" ] && ok "get prints the value"
for n in 2 3; do
	run 0 $KV get greeting --node $n && [ "$(cat "$T/out")" = "hello world" ] && ok "node $n reads it"
done
run 0 $KV put greeting "bye" && run 0 $KV get greeting && [ "$(cat "$T/out")" = "bye" ] && ok "overwrite"
run 0 $KV del greeting && run 1 $KV get greeting && grep -q "no such key" "$T/err" && ok "deleted: get exits 1"
run 1 $KV del greeting && ok "deleting a missing key exits 1"
run 1 $KV get greeting --table nosuchtable && ok "unknown table exits 1"
run 1 $KV scan-stats --table nosuchtable && ok "scan of an unknown table exits 1"

echo "== stdin and binary values"
printf 'from-stdin' | run 0 $KV put k1 && run 0 $KV get k1 && [ "$(cat "$T/out")" = "from-stdin" ] && ok "value from stdin"
printf 'k1\n' | run 0 $KV get - && [ "$(cat "$T/out")" = "from-stdin" ] && ok "key from stdin"
head -c 3000 /dev/urandom >"$T/bin"
run 0 $KV put binary - <"$T/bin" && run 0 $KV get binary --raw && cmp -s "$T/out" "$T/bin" && ok "3000 random bytes round-trip (--raw)"
HEX=$(od -An -tx1 -v "$T/bin" | tr -d ' \n')
run 0 $KV get 62696e617279 --hex && [ "$(cat "$T/out")" = "$HEX" ] && ok "get --hex (key and value in hex)"
run 0 $KV put 00ff 00010203 --hex && run 0 $KV get 00ff --hex && [ "$(cat "$T/out")" = "00010203" ] && ok "put --hex"
run 0 $KV put empty "" && run 0 $KV get empty --raw && [ ! -s "$T/out" ] && ok "empty value"
BIG=$(head -c 60416 /dev/zero | tr '\0' 'x')
run 0 $KV put big "$BIG" && run 0 $KV get big --raw && [ "$(wc -c <"$T/out")" -eq 60416 ] && ok "largest value (60416 bytes)"

echo "== add, replace, cas, version"
run 0 $KV put counter 1 --add && V=$(sed -n 's/^version=//p' "$T/out")
run 1 $KV put counter 2 --add && grep -q "already there" "$T/err" && ok "--add of a present key exits 1"
run 1 $KV put nothere 2 --replace && ok "--replace of a missing key exits 1"
run 1 $KV put counter 2 --cas $((V + 1)) && grep -q "another version" "$T/err" && ok "--cas with a wrong version exits 1"
run 0 $KV put counter 2 --cas "$V" && V2=$(sed -n 's/^version=//p' "$T/out") && [ "$V2" != "$V" ] && ok "--cas with the right version: new version $V2"
run 1 $KV del counter --version "$V" && run 0 $KV del counter --version "$V2" && ok "del --version"

echo "== --json"
run 0 $KV put j "json value" --json
run 0 $KV get j --json
if "$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["ok"] and r["len"]==10 and bytes.fromhex(r["hex"])==b"json value" and r["version"]>0' "$T/out"; then
	ok "get --json"
else
	bad "get --json: $(cat "$T/out")"
fi
run 1 $KV get nope --json
"$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["ok"] is False and "error" in r' "$T/out" && ok "a failure with --json is a JSON object too"

echo "== load and scan-stats"
N=40000
seq 1 $N | awk '{ printf "key-%d\tvalue number %d\n", $1, $1 }' >"$T/load.txt"
printf 'a-long-key-that-lives-out-of-line\t%s\n' "$(head -c 500 /dev/zero | tr '\0' 'v')" >>"$T/load.txt"
START=$(date +%s.%N)
if run 0 $KV load "$T/load.txt" --table loaded; then
	SECS=$(echo "$(date +%s.%N) - $START" | bc)
	grep -q "^stored=$((N + 1)) " "$T/out" && ok "load: $(cat "$T/out")"
	if [ "$(echo "$SECS > 1.5" | bc)" = 1 ]; then
		grep -q "kv load: [0-9]* keys" "$T/err" && ok "progress shown during a ${SECS} s load" || bad "no progress line in a ${SECS} s load"
	fi
fi
# Items too big to share a load line: each goes in a line of its own.
for i in 1 2 3; do printf 'big-%d\t%s\n' $i "$(head -c 60000 /dev/zero | tr '\0' "$i")"; done >"$T/big.txt"
run 0 $KV load "$T/big.txt" --table bigload && grep -q "^stored=3 " "$T/out" && run 0 $KV get big-2 --table bigload --raw && [ "$(wc -c <"$T/out")" -eq 60000 ] && ok "load of three 60000-byte values"
run 0 $KV get key-4321 --table loaded --node 2 && [ "$(cat "$T/out")" = "value number 4321" ] && ok "a loaded key from node 2"
run 0 $KV scan-stats --table loaded && grep -q "keys=$((N + 1)) inline_keys=$N ool_keys=1 " "$T/out" && ok "scan-stats: $(cut -c1-120 "$T/out")"
run 0 $KV scan-stats --table loaded --json
"$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["ok"] and r["keys"]=='$((N + 1))' and r["segments"]>0 and len(r["dist"])==8 and sum(r["dist"])==r["keys"]-r["ovf_keys"]' "$T/out" && ok "scan-stats --json"
printf 'x\ty\n' | run 0 $KV load --table loaded --json && "$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["ok"] and r["stored"]==1' "$T/out" && ok "load from stdin, --json"

echo "== bad arguments and input: exit 2"
run 2 $KV && ok "no subcommand"
run 2 $KV frob && ok "unknown subcommand"
run 2 $KV get && ok "get without a key"
run 2 $KV get "" && ok "empty key"
run 2 $KV get "$(head -c 251 /dev/zero | tr '\0' k)" && ok "key over 250 bytes"
run 2 $KV put k "$(head -c 60417 /dev/zero | tr '\0' v)" && ok "value over 60416 bytes"
run 2 $KV put k v --add --replace && ok "--add with --replace"
run 2 $KV put k v --cas 0 && ok "--cas 0"
run 2 $KV put zz 00 --hex && ok "bad hex key"
run 2 $KV get k --table "has space" && ok "bad table name"
run 2 $KV get k --raw --hex && ok "--raw with --hex"
run 2 $KV del k --add && ok "an option of another subcommand"
printf 'good\tline\n\tempty key\n' | run 2 $KV load --table loaded && grep -q "line 2" "$T/err" && ok "a bad load line is named"
run 2 $KV load /nonexistent/file && ok "load of a missing file"

if [ "$fails" -ne 0 ]; then
	echo "kv_cli: $fails check(s) failed"
	exit 1
fi
echo "kv_cli: all passed"
