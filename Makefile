# magnet: build, run and test. `make run` and `make test` install what they
# need on Debian (as root) through .ci/deps.
GO       ?= go
LUA      ?= lua5.1
TAGS     := $(if $(filter luajit,$(LUA)),-tags luajit,)
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -ldflags "-X github.com/magnet-fcgi/magnet/internal/version.Version=$(VERSION)"
ADDR     ?= 127.0.0.1:8080
PREFIX   ?= /usr/local

.PHONY: all build install deps deps-test run test test-go test-race test-luajit fuzz vet bench bench-db clean
.PHONY: deps-cross cross test-arm64

all: build

deps:
	@.ci/deps build

deps-test:
	@.ci/deps test

deps-cross:
	@.ci/deps cross

# The worker is linked beside its place and copied there: a file the Go
# linker wrote may sit in the page cache in 2 MiB pages, which every
# worker would map whole (see install).
build: deps
	$(GO) build $(TAGS) $(LDFLAGS) -o bin/magnet-worker.linked ./cmd/magnet-worker
	install -m 0755 bin/magnet-worker.linked bin/magnet-worker && rm -f bin/magnet-worker.linked
	CGO_ENABLED=0 $(GO) build $(LDFLAGS) -o bin/magnetd ./cmd/magnetd

# magnetd and magnet-worker into $(PREFIX)/bin, where the deploy/ files
# look for them. Copied, not linked: a file the Go linker wrote may sit in
# the page cache in 2 MiB pages, which every worker maps whole.
install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 bin/magnetd bin/magnet-worker $(DESTDIR)$(PREFIX)/bin/

# linux/arm64: magnetd without cgo, magnet-worker with Debian's cross gcc
# and arm64 Lua (multiarch).
ARM64    := GOARCH=arm64 CC=aarch64-linux-gnu-gcc PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig

cross: deps-cross
	$(ARM64) CGO_ENABLED=1 $(GO) build $(LDFLAGS) -o bin/linux-arm64/magnet-worker ./cmd/magnet-worker
	CGO_ENABLED=0 GOARCH=arm64 $(GO) build $(LDFLAGS) -o bin/linux-arm64/magnetd ./cmd/magnetd

# vet for arm64, and the unit tests of the worker and what it is built on
# (protocol, luabind, scripts) under qemu-user-static.
test-arm64: deps-cross
	$(ARM64) CGO_ENABLED=1 $(GO) vet ./...
	$(ARM64) CGO_ENABLED=1 $(GO) test -count=1 -timeout 10m -exec $(CURDIR)/.ci/qemu-exec ./protocol/... ./scripts/... ./luabind/... ./worker/...

# Serve examples/ at http://$(ADDR)/ through magnetd's HTTP front, with
# the shared dictionary examples/sessions.lua keeps its sessions in.
run: build
	bin/magnetd -n -F 2 --http $(ADDR) --docroot examples --shared sessions=16M

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

test: deps-test build vet test-go test-race test-luajit fuzz cross test-arm64
	@echo "all tests passed"

test-go:
	$(GO) test -count=1 -timeout 15m ./...

# Every package under the race detector, the cgo ones (luabind, worker) too.
test-race:
	$(GO) test -count=1 -race -timeout 10m ./...

# The Lua core and seed scripts under LuaJIT too.
test-luajit:
	$(GO) test -count=1 -tags luajit -timeout 10m ./luabind/... ./scripts/... ./sqlbind/... ./worker/...

# Budgets in executions, not seconds: a -fuzztime duration races the
# fuzzing coordinator's own deadline in Go 1.26 (golang/go#75804) and can
# fail with "context deadline exceeded" and no crasher. About 15 s and 5 s
# on the 2-core CI machine.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzConn$$' -fuzztime 800000x -fuzzminimizetime 100x ./protocol/
	$(GO) test -run '^$$' -fuzz '^FuzzParams$$' -fuzztime 300000x -fuzzminimizetime 100x ./protocol/

bench: build
	bench/run
	bench/db

# The database page alone (MariaDB, PHP-FPM with PDO, LuaSQL): bench/README.md.
bench-db: build
	bench/db

clean:
	rm -rf bin bench/build
