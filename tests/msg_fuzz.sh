#!/bin/bash
# msg_fuzz.sh BUILD_DIR - a short libFuzzer run (MSG_FUZZ_SECONDS, default 10)
# over the msg layer's fragment parser (tests/fuzz/fuzz_msg.c). Built here
# with clang straight from the two source files, so it needs nothing from
# the CMake build; the corpus persists in BUILD_DIR/msg-fuzz/ so that runs
# accumulate coverage. Exit 77 (skipped) when clang or its libFuzzer
# runtime is missing.
set -u
build=$(cd "${1:?usage: msg_fuzz.sh BUILD_DIR}" && pwd) || exit 1
src=$(cd "$(dirname "$0")/.." && pwd)
secs=${MSG_FUZZ_SECONDS:-10}
work="$build/msg-fuzz"
bin="$work/fuzz_msg"

if ! command -v clang >/dev/null; then
	echo "skipped: clang is not installed (scripts/setup.sh installs it)"
	exit 77
fi
mkdir -p "$work/corpus"
if ! clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-I"$src/src/unet" -I"$src/include" "$src/tests/fuzz/fuzz_msg.c" \
	"$src/src/unet/msg_wire.c" -o "$bin" 2>"$work/build.log"; then
	echo "skipped: clang cannot build a libFuzzer target here:"
	tail -3 "$work/build.log"
	exit 77
fi

# Seeds: one valid fragment of each kind (header: op flags type ver, epoch,
# seq, ack; little-endian), so mutations start inside the grammar.
seed() { printf "$2" >"$work/corpus/seed-$1"; }
hdr='\x07\x00\x00\x00\x10\x00\x00\x00\x0f\x00\x00\x00'
seed data "\x01\x03\x05\x01${hdr}hello"
seed req "\x01\x07\x05\x01${hdr}\x01\x00\x01\x00body"
seed nack "\x01\x1b\x00\x01${hdr}\x01\x00\x01\x00\xa1\xff\xff\xff"
seed ack "\x02\x20\x00\x01${hdr}"
seed syn "\x03\x40\x00\x01${hdr}\x00\x00\x00\x00\x40\x00\x00\x00\x00\x08\x00\x00"
seed rst "\x04\x00\x00\x01${hdr}"

cd "$work" || exit 1
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1 \
	"$bin" -max_total_time="$secs" -timeout=5 -rss_limit_mb=1024 -print_final_stats=1 \
	corpus >"$work/fuzz.log" 2>&1
rc=$?
grep -E "^Done|stat::number_of_executed_units|cov:" "$work/fuzz.log" | tail -2
if [ $rc -ne 0 ]; then
	echo "fuzz_msg found a crash (exit $rc):"
	tail -40 "$work/fuzz.log"
	exit 1
fi
echo "fuzz_msg: clean for ${secs}s"
