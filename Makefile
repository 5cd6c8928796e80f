# ld: the README's entry points. `make demo` and `make test` do all the set-up on a fresh Debian machine.
#
#   make demo           install what is missing, build, run a small end-to-end example on Fashion-MNIST
#   make test           install what is missing, build, run every test (unit, golden files, tool pipes,
#                       and the pipelines smoke run: every tool in real pipes, a few seconds)
#   make bench          engine and stream benchmarks (images/s, GFLOP/s, MB/s next to the sgemm ceiling)
#   make fuzz           libFuzzer on the stream reader for FUZZ_SECONDS (default 120)
#   make golden-update  regenerate the committed golden files (single-threaded BLAS, fixed seeds)
#   make clean          remove build products

SWIFT       ?= swift
CONFIG      ?= release
BIN         := .build/$(CONFIG)
FUZZ_SECONDS ?= 120

.PHONY: all setup build test demo bench fuzz golden-update clean

all: build

setup:
	@sh scripts/setup.sh

build: setup
	$(SWIFT) build -c $(CONFIG)

# Tests run in release mode (the engine is too slow unoptimised); they use only the public API.
# Swift Testing is disabled so that the run closes on XCTest's summary line.
# The tool tests pin OpenBLAS's portable SSE3 kernels for their golden files (Tests/ToolTests/ToolHarness.swift).
test: build
	$(SWIFT) test -c $(CONFIG) --disable-swift-testing
	$(MAKE) -C pipelines smoke BIN=$(abspath $(BIN))

demo: build
	@bash scripts/demo.sh $(BIN)

bench: build
	$(BIN)/ld-bench

fuzz: setup
	sh fuzz/run.sh $(FUZZ_SECONDS)

golden-update: build
	LD_GOLDEN_UPDATE=1 $(SWIFT) test -c $(CONFIG) --disable-swift-testing --filter ToolTests

clean:
	rm -rf .build fuzz/bin
