# ld: the README's entry points. `make demo` and `make test` do all the set-up on a fresh Debian machine.
#
#   make demo           install what is missing, build, run a small end-to-end example on Fashion-MNIST
#   make test           install what is missing, build, run every test (unit, golden files, tool pipes,
#                       the pipelines smoke run: every tool in real pipes, a few seconds; and the live
#                       Slurm test: a single-node cluster started here runs pipelines/slurm/, under a minute)
#   make install        the five tools, their man pages and bash/zsh/fish completions under PREFIX
#                       (default /usr/local; DESTDIR honoured); make uninstall removes exactly those files
#   make bench          engine and stream benchmarks (images/s, GFLOP/s, MB/s next to the sgemm ceiling)
#   make fuzz           libFuzzer on the stream reader, then ld-fuzz (valid frames, hostile fields) on
#                       the five tools' loading paths, FUZZ_SECONDS each (default 120)
#   make golden-update  regenerate the committed golden files (single-threaded BLAS, fixed seeds)
#   make clean          remove build products

SWIFT       ?= swift
CONFIG      ?= release
BIN         := .build/$(CONFIG)
FUZZ_SECONDS ?= 120
PREFIX      ?= /usr/local
DESTDIR     ?=
TOOLS       := ld-squeeze ld-recover ld-relabel ld-prune ld-train
MANUALS     := .build/plugins/GenerateManual/outputs
bindir      := $(DESTDIR)$(PREFIX)/bin
man1dir     := $(DESTDIR)$(PREFIX)/share/man/man1
bashdir     := $(DESTDIR)$(PREFIX)/share/bash-completion/completions
zshdir      := $(DESTDIR)$(PREFIX)/share/zsh/site-functions
fishdir     := $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d

.PHONY: all setup build test demo bench bench-seeds bench-jpeg bench-ondisk fuzz golden-update clean install uninstall

all: build

setup:
	@sh scripts/setup.sh

build: setup
	@sh scripts/revision.sh
	$(SWIFT) build -c $(CONFIG)

# Tests run in release mode (the engine is too slow unoptimised); they use only the public API.
# Swift Testing is disabled so that the run closes on XCTest's summary line.
# The tool tests pin OpenBLAS's portable SSE3 kernels for their golden files (Tests/ToolTests/ToolHarness.swift).
test: build
	$(SWIFT) test -c $(CONFIG) --disable-swift-testing
	$(MAKE) -C pipelines smoke BIN=$(abspath $(BIN))
	@bash scripts/slurm-test.sh $(BIN)
	@bash scripts/install-check.sh

demo: build
	@bash scripts/demo.sh $(BIN)

bench: build
	$(BIN)/ld-bench
	$(MAKE) bench-seeds
	@if [ -n "$(PEER_PYTHON)" ]; then $(MAKE) bench-jpeg; fi

# The seeds' resolutions and architectures, beside PyTorch's figures of the same run when a Python with
# torch and torchvision is given (PEER_PYTHON=/path/to/python; ../shared/peer/torch_bench.py and
# Benchmarks/peer_seeds.py time the peer), else beside the reference machine's stored figures.
PEER_PYTHON ?=
PEER_DIR    ?= $(abspath ../shared/peer)
bench-seeds: build
	@if [ -n "$(PEER_PYTHON)" ]; then \
	  PEER_DIR=$(PEER_DIR) $(PEER_PYTHON) Benchmarks/peer_seeds.py --with-torch-bench --threads 2 --secs 3 > .build/peer-seeds.tsv && \
	  cat .build/peer-seeds.tsv && $(BIN)/ld-bench engine --suite seeds --secs 3 --peer .build/peer-seeds.tsv; \
	else $(BIN)/ld-bench engine --suite seeds --secs 3; fi

# Image loading on an ImageNet-shaped JPEG folder (600 images about 500x375, made once by the peer's
# generator), ld beside PIL + torchvision's DataLoader with the same 2 cores, both transforms.
JPEG_SET ?= .build/jpegset
bench-jpeg: build
	@[ -n "$(PEER_PYTHON)" ] || { echo "bench-jpeg: set PEER_PYTHON to a Python with torch, torchvision and Pillow" >&2; exit 1; }
	@[ -d $(JPEG_SET)/train ] || PEER_DIR=$(PEER_DIR) $(PEER_PYTHON) Benchmarks/peer_jpeg.py make $(JPEG_SET) --classes 10 --per-class 60
	@for m in train val; do \
	  PEER_DIR=$(PEER_DIR) $(PEER_PYTHON) Benchmarks/peer_jpeg.py time $(JPEG_SET) --workers 2 --mode $$m --secs 8; \
	  $(BIN)/ld-bench jpeg $(JPEG_SET)/train --mode $$m --threads 2 --secs 8; done
	$(BIN)/ld-bench ondisk $(JPEG_SET)/train --size 224 --batch 32 --steps 6 --rounds 3 --data-memory 16M

# Training from a folder kept on disk at the issue's scale: 50,000 ImageNet-sized JPEGs (about 3 GB, made
# once), 7.5 GB decoded at 224 px, a 1 GB --data-memory; ResNet-18 beside the same images decoded beforehand.
JPEG_BIG ?= .build/jpeg50k
bench-ondisk: build
	@[ -n "$(PEER_PYTHON)" ] || [ -d $(JPEG_BIG)/train ] || { echo "bench-ondisk: set PEER_PYTHON (to make the folder once)" >&2; exit 1; }
	@[ -d $(JPEG_BIG)/train ] || PEER_DIR=$(PEER_DIR) $(PEER_PYTHON) Benchmarks/peer_jpeg.py make $(JPEG_BIG) --classes 100 --per-class 500
	$(BIN)/ld-bench ondisk $(JPEG_BIG)/train --size 224 --batch 32 --steps 10 --rounds 3 --data-memory 1G

fuzz: build
	sh fuzz/run.sh $(FUZZ_SECONDS)
	rm -rf fuzz/bin/structured && $(BIN)/ld-fuzz --seconds $(FUZZ_SECONDS) --work fuzz/bin/structured

golden-update: build
	LD_GOLDEN_UPDATE=1 $(SWIFT) test -c $(CONFIG) --disable-swift-testing --filter ToolTests

# Man pages come from swift-argument-parser's generate-manual plugin, completions from each tool's
# --generate-completion-script: both from the same flags and help the tools parse.
install: build
	$(SWIFT) package generate-manual > /dev/null
	install -d $(bindir) $(man1dir) $(bashdir) $(zshdir) $(fishdir)
	for t in $(TOOLS); do \
	  install -m 755 $(BIN)/$$t $(bindir)/$$t && \
	  install -m 644 $(MANUALS)/$$t/$$t.1 $(man1dir)/$$t.1 && \
	  $(BIN)/$$t --generate-completion-script bash > $(bashdir)/$$t && \
	  $(BIN)/$$t --generate-completion-script zsh > $(zshdir)/_$$t && \
	  $(BIN)/$$t --generate-completion-script fish > $(fishdir)/$$t.fish || exit 1; \
	done

uninstall:
	for t in $(TOOLS); do \
	  rm -f $(bindir)/$$t $(man1dir)/$$t.1 $(bashdir)/$$t $(zshdir)/_$$t $(fishdir)/$$t.fish; \
	done

clean:
	rm -rf .build fuzz/bin
