# hyperviseur — see README.md. `make test` is the test command CI runs (.ci/run).
GO      ?= go
PKGS    := ./...
# An execution count, not a duration: a duration races Go 1.26's fuzz coordinator at its deadline and fails
# with a bare "context deadline exceeded" and no input (go.dev/issue/75804, fixed in Go 1.27).
FUZZTIME ?= 1000000x

.PHONY: run demo build deps test test-short lint bench fuzz

build:
	$(GO) build -o bin/hyperviseur ./cmd/hyperviseur

run:
	$(GO) run ./cmd/hyperviseur serve

demo:
	$(GO) run ./cmd/hyperviseur demo

# Mosquitto (apt) and InfluxDB 1.8.10 (go install), if missing.
deps:
	@scripts/install-deps.sh

# Everything, against real Mosquitto and InfluxDB 1.8.10 (CI=true makes a missing one a failure).
test: deps
	$(GO) test -race -count=1 -timeout 45m $$($(GO) list $(PKGS) | grep -v '/e2e$$')
	@# The end-to-end tests time the product (a reading on the page within 2 s): they run alone, not on
	@# cores the other packages' tests are saturating.
	$(GO) test -race -count=1 -timeout 45m ./e2e/

# Unit tests only: no external component, no long no-loss scenarios.
test-short:
	$(GO) test -short -count=1 $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# Figures for BENCHMARKS.md.
bench: deps
	$(GO) test -run='^$$' -bench=. -benchmem -count=1 ./ingest/... ./store/... ./spool/...
	$(GO) test -run='^$$' -bench=BenchmarkIngest -benchtime=1x -count=1 -timeout 30m ./e2e/

# Run every decoder's fuzz target for FUZZTIME executions each.
fuzz:
	for f in FuzzSenML FuzzFlat FuzzJSON FuzzScanFlatObject FuzzLineProtocol FuzzChirpStack FuzzTTS; do \
		$(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) ./ingest/decode/ || exit 1; \
	done
