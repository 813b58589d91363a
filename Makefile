# pglink build. GNU make; works on a fresh Debian 12 as root or as a user
# with sudo. `make demo` shows pglink end to end, `make test` runs every test.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export PATH := /usr/local/go/bin:$(PATH)

GO      ?= go
PGBIN   ?= /usr/lib/postgresql/15/bin
# apt-get and useradd need root: use sudo unless we are root already.
SUDO    := $(if $(filter 0,$(shell id -u)),,sudo)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: all deps build demo demo-ui versions test test-versions bench clean

all: build

# deps installs the PostgreSQL 15 server and client when they are missing
# (the tests and the demo start throwaway clusters with them), makes sure
# the operating-system user postgres exists when we run as root (the server
# refuses to run as root; the package creates the user), installs Chromium
# for the dashboard's browser test, and downloads the Go modules.
deps:
	@command -v $(GO) >/dev/null || { echo "Go not found: install Go 1.26 into /usr/local/go (https://go.dev/dl/)" >&2; exit 1; }
	@if [ ! -x $(PGBIN)/pg_ctl ]; then \
		echo "installing PostgreSQL 15 (postgresql-15, postgresql-client-15)"; \
		$(SUDO) apt-get update; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql-15 postgresql-client-15; \
	fi
	@if ! command -v chromium >/dev/null; then \
		echo "installing chromium (the dashboard's browser test drives it headless)"; \
		$(SUDO) apt-get update; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	fi
	@if [ "$$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then \
		useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres; \
	fi
	$(GO) mod download

# versions fetches the PostgreSQL servers of other major versions that the
# tests start (pinned builds, into .cache/pg/<major>; see
# scripts/pg-versions.sh), each verified once. PG_VERSIONS picks the majors;
# 15 is Debian's, from deps.
PG_VERSIONS ?= 13 14 16 17 18
versions:
	scripts/pg-versions.sh $(PG_VERSIONS)

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/pglink ./cmd/pglink

demo: deps build
	bin/pglink demo

# demo-ui runs the demo's link under pglink serve and keeps its dashboard up
# until Ctrl-C: watch it seed and replicate, and fail it over in the browser.
DEMO_UI ?= 127.0.0.1:9187
demo-ui: deps build
	bin/pglink demo --ui $(DEMO_UI)

# test checks formatting (listing the files to fix), vets, and runs every
# test with the race detector against real PostgreSQL clusters, with the
# fast subset of the version matrix (13 -> 17, 15 -> 18; 16 is the source
# that Debian's pg_dump 15 cannot dump; 14 is the oldest source that
# streams in binary).
test: deps
	$(MAKE) versions PG_VERSIONS="13 14 16 17 18"
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then \
		echo "these files need gofmt -w:" >&2; echo "$$unformatted" >&2; exit 1; \
	fi
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 30m ./...

# test-versions runs the whole version matrix: every source of 13 to 15 into
# every target of 15 to 18, and 16, 17, 18 into their own version.
test-versions: deps versions
	PGLINK_TEST_VERSIONS=all $(GO) test -race -count=1 -timeout 30m -run 'TestVersionMatrix' ./internal/matrix/

# bench measures pglink against pgcopydb, pg_dump/pg_restore and native
# logical replication on two local servers it starts itself, and writes a
# report to bench/results (see bench/README.md). Not part of test: the full
# run takes about an hour. It installs pgcopydb when missing. Flags go in
# BENCH_FLAGS, e.g. make bench BENCH_FLAGS=--quick (a few minutes).
BENCH_FLAGS ?=
bench: deps build
	@if ! command -v pgcopydb >/dev/null; then \
		echo "installing pgcopydb"; \
		$(SUDO) apt-get update; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y pgcopydb; \
	fi
	$(GO) build -o bin/pglink-bench ./bench
	bin/pglink-bench --pglink bin/pglink $(BENCH_FLAGS)

clean:
	rm -rf bin
