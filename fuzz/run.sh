#!/bin/sh
# Fuzzes the record-stream reader, then the image decoders (PNG, JPEG), with libFuzzer for a bounded time
# each: fuzz/run.sh [seconds] (default 60).
# SwiftPM cannot link a -sanitize=fuzzer executable, so the sources a harness needs (LDKernels, and
# LDRecords or LDData's image codecs) are compiled together with it as one module by swiftc, their
# `import LD...` lines dropped. Output: fuzz/bin/.
# -D LD_FUZZING makes the reader ignore checksum mismatches so that mutations reach the payload decoders.
set -eu
cd "$(dirname "$0")/.."
secs=${1:-60}
bin=fuzz/bin
mkdir -p "$bin/corpus"
rm -rf "$bin/src" && mkdir -p "$bin/src"
# (Version.swift without the C build-info target: the revision reads "fuzz".)
for f in Sources/LDRecords/*.swift Sources/LDKernels/*/*.swift Sources/LDKernels/Version.swift; do
    sed -e '/^import LD/d' -e '/^import CBuildInfo/d' -e 's/String(cString: ld_revision())/"fuzz"/' "$f" > "$bin/src/$(basename "$f")"
done
echo "fuzz: building $bin/stream-fuzz" >&2
swiftc -sanitize=fuzzer,address -parse-as-library -O -g -module-name LDFuzz -D LD_FUZZING -enforce-exclusivity=unchecked \
    -I Sources/CZstd -I Sources/COpenBLAS $(pkg-config --cflags libzstd openblas) \
    "$bin"/src/*.swift fuzz/FuzzMain.swift \
    $(pkg-config --libs libzstd openblas) -o "$bin/stream-fuzz"
echo "fuzz: building $bin/image-fuzz" >&2
rm -rf "$bin/isrc" && mkdir -p "$bin/isrc"
for f in Sources/LDData/Images/PNG.swift Sources/LDData/Images/JPEG.swift Sources/LDData/Images/Resample.swift Sources/LDKernels/*/*.swift Sources/LDKernels/Version.swift; do
    sed -e '/^import LD/d' -e '/^import CBuildInfo/d' -e 's/String(cString: ld_revision())/"fuzz"/' "$f" > "$bin/isrc/$(basename "$f")"
done
swiftc -sanitize=fuzzer,address -parse-as-library -O -g -module-name LDImageFuzz -enforce-exclusivity=unchecked \
    -I Sources/CPNG -I Sources/CTurboJPEG -I Sources/COpenBLAS $(pkg-config --cflags libpng libturbojpeg openblas) \
    "$bin"/isrc/*.swift fuzz/FuzzImages.swift \
    $(pkg-config --libs libpng libturbojpeg openblas) -o "$bin/image-fuzz"
rm -rf "$bin/seeds"
export SWIFT_BACKTRACE=enable=no  # let libFuzzer report traps with its own stack trace
LD_FUZZ_SEEDS="$bin/seeds" "$bin/stream-fuzz"
echo "fuzz: $(ls "$bin/seeds" | wc -l) seeds, running for ${secs}s" >&2
"$bin/stream-fuzz" "$bin/corpus" "$bin/seeds" \
    -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="$bin/" -print_final_stats=1
mkdir -p "$bin/image-corpus" && rm -rf "$bin/image-seeds"
LD_FUZZ_SEEDS="$bin/image-seeds" "$bin/image-fuzz"
echo "fuzz: image decoders, $(ls "$bin/image-seeds" | wc -l) seeds, running for ${secs}s" >&2
exec "$bin/image-fuzz" "$bin/image-corpus" "$bin/image-seeds" \
    -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="$bin/image-" -print_final_stats=1
