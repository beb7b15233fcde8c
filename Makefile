# nubis — build, run and test. Every target that needs system packages installs them first, so
# `make run` and `make test` work on a fresh Debian 12 machine (as root).

SHELL      := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
# Static binaries: nubis is also the init of its instances (bind-mounted into them), and must not
# depend on the C library of the image it runs in.
export CGO_ENABLED := 0
GO         ?= go
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS    := -X github.com/nubis/nubis/internal/version.Version=$(VERSION)
LISTEN     ?= 127.0.0.1:4566
DATA_DIR   ?=
# An execution count, not a duration: Go 1.26's fuzz coordinator can fail a duration-bound run with
# "context deadline exceeded" at its end (golang/go#75804, fixed in Go 1.27).
FUZZTIME   ?= 200000x

# Debian packages: the real clients the tests drive, and the tools nubis runs.
PACKAGES := awscli python3-boto3 python3-botocore openssh-client putty-tools openssl curl ca-certificates git debootstrap runc python3-requests zip wrk nftables iputils-ping e2fsprogs

.PHONY: all deps build run test unit fuzz e2e bench vet clean

all: build

# deps installs the Debian packages that are missing (root only; elsewhere it says what to install).
deps:
	@missing=$$(for p in $(PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing: $$missing"; \
			export DEBIAN_FRONTEND=noninteractive; \
			apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		else \
			echo "missing Debian packages (run as root, or: sudo apt-get install $$missing)"; exit 1; \
		fi; \
	fi

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/nubis ./cmd/nubis

# run installs what is needed, builds, and runs the server in the foreground.
run: deps build
	./bin/nubis serve --listen $(LISTEN) $(if $(DATA_DIR),--data-dir $(DATA_DIR))

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# unit runs every Go test (unit, integration and end-to-end; the e2e tests build bin/nubis).
unit: build
	$(GO) test -count=1 -timeout 20m ./...

# fuzz runs each fuzz target briefly.
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzParseParams$$' -fuzztime=$(FUZZTIME) ./internal/awsproto
	$(GO) test -run='^$$' -fuzz='^FuzzParseAuthorization$$' -fuzztime=$(FUZZTIME) ./internal/sigv4
	$(GO) test -run='^$$' -fuzz='^FuzzParseScope$$' -fuzztime=$(FUZZTIME) ./internal/sigv4
	$(GO) test -run='^$$' -fuzz='^FuzzImport$$' -fuzztime=$(FUZZTIME) ./internal/sshkey
	$(GO) test -run='^$$' -fuzz='^FuzzParsePattern$$' -fuzztime=$(FUZZTIME) ./internal/logs
	$(GO) test -run='^$$' -fuzz='^FuzzTarget$$' -fuzztime=$(FUZZTIME) ./internal/lambdaurl
	$(GO) test -run='^$$' -fuzz='^FuzzMatch$$' -fuzztime=$(FUZZTIME) ./internal/apigw/httpapi
	$(GO) test -run='^$$' -fuzz='^FuzzMapResponse$$' -fuzztime=$(FUZZTIME) ./internal/apigw/httpapi
	$(GO) test -run='^$$' -fuzz='^FuzzHandler$$' -fuzztime=$(FUZZTIME) ./internal/imds
	$(GO) test -run='^$$' -fuzz='^FuzzVerifyToken$$' -fuzztime=$(FUZZTIME) ./internal/imds
	$(GO) test -run='^$$' -fuzz='^FuzzParseUserData$$' -fuzztime=$(FUZZTIME) ./internal/guestinit
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./internal/mountinfo
	$(GO) test -run='^$$' -fuzz='^FuzzHandle$$' -fuzztime=$(FUZZTIME) ./internal/vpcdns

# test is the whole suite: what .ci/run runs.
test: deps vet unit fuzz

# bench runs the benchmarks in bench/ and prints their results beside the baseline.
bench: deps build
	$(GO) test -run='^$$' -bench=. -benchtime=2000x -count=1 ./bench

clean:
	rm -rf bin
