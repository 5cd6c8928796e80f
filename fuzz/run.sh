#!/bin/sh
# Fuzzes the record-stream reader with libFuzzer for a bounded time: fuzz/run.sh [seconds] (default 60).
# SwiftPM cannot link a -sanitize=fuzzer executable, so the LDRecords sources and the file and error helpers
# of LDKernels (they depend on nothing else) are compiled together with fuzz/FuzzMain.swift as one module by
# swiftc, their `import LD...` lines dropped. Output: fuzz/bin/.
# -D LD_FUZZING makes the reader ignore checksum mismatches so that mutations reach the payload decoders.
set -eu
cd "$(dirname "$0")/.."
secs=${1:-60}
bin=fuzz/bin
mkdir -p "$bin/corpus"
rm -rf "$bin/src" && mkdir -p "$bin/src"
for f in Sources/LDRecords/*.swift Sources/LDKernels/IO/*.swift Sources/LDKernels/Version.swift; do
    sed '/^import LD/d' "$f" > "$bin/src/$(basename "$f")"
done
echo "fuzz: building $bin/stream-fuzz" >&2
swiftc -sanitize=fuzzer,address -parse-as-library -O -g -module-name LDFuzz -D LD_FUZZING \
    -I Sources/CZstd $(pkg-config --cflags libzstd) \
    "$bin"/src/*.swift fuzz/FuzzMain.swift \
    $(pkg-config --libs libzstd) -o "$bin/stream-fuzz"
rm -rf "$bin/seeds"
export SWIFT_BACKTRACE=enable=no  # let libFuzzer report traps with its own stack trace
LD_FUZZ_SEEDS="$bin/seeds" "$bin/stream-fuzz"
echo "fuzz: $(ls "$bin/seeds" | wc -l) seeds, running for ${secs}s" >&2
exec "$bin/stream-fuzz" "$bin/corpus" "$bin/seeds" \
    -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="$bin/" -print_final_stats=1
