# UNFED — see README.md. Every target works from a fresh clone on Debian.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
FUZZTIME ?= 30s
TEST_TIMEOUT ?= 20m

.PHONY: all build test unit vet deps bench fuzz demo lint clean chaos

all: build

## build: compile every binary into ./bin
build:
	$(GO) build -o $(BIN)/ ./cmd/...

## test: the README's test command — deps, vet, unit, fuzz seed corpora and real-process integration tests
test: deps vet
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	# the portable paths of the DPF and the tensor kernels, which other architectures run, on this one too
	$(GO) test -count=1 -tags purego ./compute/mpc/dpf ./compute/tensor

vet:
	$(GO) vet ./...

## deps: install what the project needs from Debian and npm (idempotent; root or sudo)
deps:
	@bash .ci/deps.sh

## bench: Go benchmarks of every package (figures go to docs/PERFORMANCE.md)
bench:
	$(GO) test -run '^$$' -bench . -benchmem -timeout 60m ./...

## fuzz: run every fuzz target for FUZZTIME each (default 30s)
fuzz:
	@bash .ci/fuzz.sh $(FUZZTIME)

## demo: a local testnet answers a prompt through the overlay, then shuts down
demo: build
	$(BIN)/unfed testnet demo --dir $(CURDIR)/testnet-run

## chaos: the full chaos suite (issue 22): a testnet under load while a seeded driver kills, stops
## and restarts relays, parties and an authority, floods and slow-connects; CHAOS_SEED replays a run
CHAOS_SEED ?= 1
CHAOS_DURATION ?= 5m
chaos: build
	$(BIN)/unfed testnet chaos --dir $(CURDIR)/testnet-run/chaos --seed $(CHAOS_SEED) --duration $(CHAOS_DURATION)

## lint: gofmt, go vet and staticcheck
lint: vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

STATICCHECK_VERSION ?= v0.8.2

clean:
	rm -rf $(BIN) testnet-run
