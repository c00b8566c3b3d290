#!/usr/bin/env bash
# run-fuzzer.sh BIN SECONDS [DICT] - one bounded libFuzzer run, as a ctest.
#
# Fuzzes for SECONDS in BIN.corpus/ next to the binary (kept between runs,
# so each run starts where the last one stopped) and exits non-zero on any
# crash, sanitizer report, leak or slow input; the input that did it is
# left in BIN.artifacts/ and printed as base64 for the bug report.
set -u
bin=$1
secs=$2
dict=${3:-}
corpus=$bin.corpus
art=$bin.artifacts
mkdir -p "$corpus" "$art"
args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -error_exitcode=1
      -timeout_exitcode=1 -print_final_stats=1 -artifact_prefix="$art/")
[ -n "$dict" ] && [ -f "$dict" ] && args+=(-dict="$dict")
# The fuzzer's own sanitizers report; no inherited options that change exit codes.
unset ASAN_OPTIONS UBSAN_OPTIONS
"$bin" "${args[@]}" "$corpus"
rc=$?
if [ $rc -ne 0 ]; then
	echo "run-fuzzer: $(basename "$bin") failed (exit $rc); inputs in $art:" >&2
	for f in "$art"/*; do
		[ -f "$f" ] && echo "  $f: $(base64 -w0 "$f" | head -c 400)" >&2
	done
	exit 1
fi
exit 0
