#!/usr/bin/env bash
# Runs both fuzz targets, `session` and `recovery`, for SECONDS each (default
# 60), side by side, one per core: `make fuzz` and CI call it. First the
# targets' checks as plain tests (the seeds and mutated seeds, on stable, no
# fuzzer), then the seeds (generated, with the course's captures from
# ../shared/wire when it is there), then libFuzzer. Fails on any crash, and
# prints the crashing input (hex) so a CI log is enough to reproduce it:
#   xxd -r -p > crash <<< '<hex>'; cargo fuzz run session crash
#
# FUZZ_SANITIZER: `none` (default) or `address`. Without a sanitizer,
# cargo-fuzz passes only stable flags; ASan needs nightly's -Zsanitizer,
# which stable Rust takes with RUSTC_BOOTSTRAP=1 (set here for it). The
# targets are safe Rust around the server's code, and ASan costs 3 to 4
# times the executions, so CI runs without it.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
sanitizer="${FUZZ_SANITIZER:-none}"
targets=(session recovery)

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz: cargo-fuzz is missing: cargo install cargo-fuzz --locked --version 0.13.2" >&2
    exit 1
fi
if [ "$sanitizer" != none ]; then
    export RUSTC_BOOTSTRAP=1
fi

cargo test -q --manifest-path fuzz/Cargo.toml --lib
cargo run -q --manifest-path fuzz/Cargo.toml --example seeds -- fuzz/seeds ../shared/wire
cargo fuzz build -s "$sanitizer"

logs=fuzz/target/logs
mkdir -p "$logs"
touch "$logs/start"
pids=()
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
    # -timeout: one input taking 10 s is a hang; -rss_limit_mb: the process
    # (corpus included) stays under 1 GiB.
    cargo fuzz run -s "$sanitizer" "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 \
        -dict="fuzz/dict/$target.dict" \
        >"$logs/$target.log" 2>&1 &
    pids+=($!)
done

failed=0
for i in "${!targets[@]}"; do
    target="${targets[$i]}"
    log="$logs/$target.log"
    if wait "${pids[$i]}"; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
        corpus=$(grep -o 'corp: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
        echo "fuzz: $target: no crash in ${seconds} s: ${runs} runs (${speed}/s), coverage ${cov} edges, corpus ${corpus} inputs"
    else
        failed=1
        echo "fuzz: $target: FAILED; its log ($log) from the first panic or error:" >&2
        sed -n '/panicked at\|ERROR: libFuzzer\|==ERROR/,$p' "$log" | head -80 >&2
        for crash in $(find "fuzz/artifacts/$target" -type f -newer "$logs/start"); do
            echo "fuzz: $target: input $crash ($(wc -c <"$crash") bytes), hex:" >&2
            od -An -v -tx1 "$crash" | tr -d ' \n' | fold -w 160 >&2
            echo >&2
        done
    fi
done
exit "$failed"
