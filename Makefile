SHELL := /bin/bash
.DEFAULT_GOAL := build

# The compose file `docker-compose-*` targets use; regenerate it for another
# scenario or size with ./generar-compose.sh (see the README).
COMPOSE_FILE ?= docker-compose-dev.yaml
COMPOSE := docker compose -f $(COMPOSE_FILE)
# Seconds between SIGTERM and SIGKILL on `docker-compose-down`.
GRACE ?= 10
# Static executables for the FROM-scratch images (glibc's static CRT).
STATIC_TARGET := x86_64-unknown-linux-gnu
STATIC_DIR := target/$(STATIC_TARGET)/release

## Native

build:
	cargo build --release --workspace
.PHONY: build

# Every test: unit, in-memory scenarios, the binaries on loopback and, where a
# Docker engine answers, the compose scenarios (they build fresh images first;
# CI=true makes a missing engine a failure instead of a skip).
test:
	cargo test --workspace
.PHONY: test

# Ingest benchmark (see the README): a table on stdout, figures and a chart
# under target/bench/. Raises the descriptor limit for 10,000 agencies.
bench:
	ulimit -n $$(ulimit -Hn) && cargo run --release -q -p e2e --bin bench
.PHONY: bench

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
.PHONY: lint

# The cargo-fuzz targets (fuzz/, its own workspace; see the README's Tests):
# their checks as plain tests, then `session` and `recovery` side by side for
# FUZZ_SECONDS each; fails on a crash and prints the input. Needs cargo-fuzz
# (`.ci/run` installs it). FUZZ_SANITIZER=address builds with ASan.
FUZZ_SECONDS ?= 60
FUZZ_SANITIZER ?= none
fuzz:
	cargo fmt --manifest-path fuzz/Cargo.toml -- --check
	cargo clippy --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings
	FUZZ_SANITIZER=$(FUZZ_SANITIZER) bash fuzz/run.sh $(FUZZ_SECONDS)
.PHONY: fuzz

## Docker

# Compose v2, the busybox image for the echo check, an engine if none answers.
provision:
	bash scripts/provision.sh
.PHONY: provision

binaries:
	RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --target $(STATIC_TARGET) -p server -p client
	mkdir -p target/docker
	cp $(STATIC_DIR)/server $(STATIC_DIR)/client target/docker/
.PHONY: binaries

docker-image: binaries
	@if docker info >/dev/null 2>&1; then \
		docker build -q -f ./server/Dockerfile -t server:latest . && \
		docker build -q -f ./client/Dockerfile -t client:latest . ; \
	else \
		echo "docker-image: skipped, no Docker engine answers (make provision starts one)"; \
	fi
.PHONY: docker-image

# The agency files the compose file mounts, generated where missing.
data: binaries
	bash scripts/gen-data.sh $(COMPOSE_FILE)
.PHONY: data

docker-compose-up: provision docker-image data
	mkdir -p .data/server
	$(COMPOSE) up -d
.PHONY: docker-compose-up

docker-compose-down:
	$(COMPOSE) stop -t $(GRACE)
	$(COMPOSE) down
.PHONY: docker-compose-down

docker-compose-logs:
	$(COMPOSE) logs -f
.PHONY: docker-compose-logs

# Checks the running server with netcat from inside its network.
echo-check:
	./validar-echo-server.sh
.PHONY: echo-check

## Docker Swarm, on this machine's engine (scripts/swarm.sh says more)

# swarm-up: the server and AGENCIES agencies (one client service, task slot i
# = agency i, data DATA_DIR/agency-<i>.csv, generated where missing; bets in
# BETS_DIR, default ./.data/swarm) as stack STACK, from STACK_FILE (written by
# ./generar-stack.sh; SCENARIO, SERVER_CONFIG, CLIENT_CONFIG, DATA_DIR and
# BETS_DIR as for it). An engine in no swarm becomes a single-node swarm
# manager, and swarm-up says so; on a worker it fails (stacks are deployed
# from a manager), and so it does, before any deploy, on a count the stack
# cannot hold or a bets folder the server would refuse (`server --check`).
# swarm-down removes the stack and waits until it is gone,
# but stays in the swarm: `docker swarm leave --force` leaves it.
AGENCIES ?= 5
STACK ?= tp0
STACK_FILE ?= docker-stack.yaml
SWARM := AGENCIES=$(AGENCIES) STACK=$(STACK) STACK_FILE=$(STACK_FILE) bash scripts/swarm.sh

swarm-up: provision docker-image
	$(SWARM) up
.PHONY: swarm-up

swarm-down:
	$(SWARM) down
.PHONY: swarm-down

# The server's log, followed, and each agency's whole log as its task ends
# (Ctrl-C ends it; make then reports the interrupt).
swarm-logs:
	@$(SWARM) logs
.PHONY: swarm-logs

# The multi-node lab (scripts/swarm-lab/up.sh says more): three Docker engines
# in network namespaces of this machine, one swarm (tp0lab-n1 the manager),
# this tree's images loaded into each; `scripts/swarm-lab/node.sh docker n1 …`
# talks to the manager. Needs root. swarm-lab-down removes all of it.
swarm-lab-up: provision docker-image
	bash scripts/swarm-lab/up.sh
.PHONY: swarm-lab-up

swarm-lab-down:
	bash scripts/swarm-lab/down.sh
.PHONY: swarm-lab-down
