SHELL := /bin/bash
.DEFAULT_GOAL := build

# Native build and the whole test suite (unit, in-memory scenarios, and the
# real binaries on loopback). Docker targets come below.
build:
	cargo build --release --workspace
.PHONY: build

test:
	cargo test --workspace
.PHONY: test

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
.PHONY: lint
