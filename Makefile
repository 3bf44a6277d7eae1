# AdapterMix — set-up, demo, tests, benchmarks. Every target runs `setup` first (idempotent).
SWIFT ?= swift
BIN := .build/release/adaptermix

.PHONY: setup build demo test bench bench-sweep-noop bench-peer bench-textfooler-peer bench-sweep-peer quality adapters clean

setup:
	@bash scripts/setup.sh

build: setup
	$(SWIFT) build -c release --product adaptermix

demo: build
	@bash scripts/demo.sh

test: setup
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --disable-swift-testing
	@# The Slurm launch on a real single-node Slurm (installs slurm-wlm and munge as root; says why it skips otherwise).
	@bash cluster/slurm/test-local.sh

bench: build
	$(BIN) bench encoder
	$(BIN) bench fsd
	@# TextFooler examples/s and queries/s (trains its rotten-tomatoes victim the first time, ~30 s).
	@ROUNDS=1 bash bench/textfooler.sh

# The sweep machinery alone: the 13-domain plan through real sockets and the journal, no-op evaluator.
bench-sweep-noop: build
	@rm -f out/bench/noop-13.sqlite*; mkdir -p out/bench
	$(BIN) sweep --config configs/noop-13.yaml --evaluator noop --workers 2 --journal out/bench/noop-13.sqlite | tail -n 3

# The Python peers (ONNX Runtime, PyTorch) in their own virtualenv; never run by CI.
bench-peer: setup
	@bash bench/peer.sh

# The sweep's evaluator against PyTorch and ONNX Runtime on the same mixtures (never run by CI).
bench-sweep-peer: build
	@bash bench/sweep.sh

# TextAttack's TextFooler on the same victim, examples and thresholds (its own virtualenv; never run by CI).
bench-textfooler-peer: build
	@PEER=1 bash bench/textfooler.sh

# Adapter training runs (minutes each; not in CI): the quality bar, and all 13 domains × 3 methods.
quality: build
	@bash scripts/adapters.sh quality

adapters: build
	@bash scripts/adapters.sh all

clean:
	rm -rf .build
