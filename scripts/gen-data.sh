#!/usr/bin/env bash
# Generates DATA_DIR/agency-<i>.csv (default ./.data) for every agency whose
# file is missing (existing files, such as the course dataset copied there by
# hand, are left alone). Deterministic: agency i gets 500 + (i * 389 mod 1500)
# bets, with (i mod 4) + 1 winners.
#   scripts/gen-data.sh [compose-file]   the compose file's clients' CLI_IDs
#                                        (default docker-compose-dev.yaml)
#   scripts/gen-data.sh N                agencies 1..N (a stack's task slots)
set -euo pipefail
source=${1:-docker-compose-dev.yaml}
client=${CLIENT_BIN:-target/docker/client}
data_dir=${DATA_DIR:-./.data}
if [[ $source =~ ^[0-9]+$ ]]; then
    # Agency numbers are u16 on the wire; checked before any arithmetic, which
    # would wrap a longer number.
    if ! [[ $source =~ ^0*[0-9]{1,5}$ ]] || ((10#$source > 65535)); then
        echo "gen-data: $source agencies: agency numbers go up to 65535" >&2
        exit 2
    fi
    agencies=$(seq 1 $((10#$source)))
else
    agencies=$(sed -n 's/^[[:space:]]*- CLI_ID=\([0-9][0-9]*\)$/\1/p' "$source")
fi
mkdir -p "$data_dir"
written=()
for i in $agencies; do
    file="$data_dir/agency-$i.csv"
    [ -f "$file" ] && continue
    "$client" gen-data "$i" $((500 + i * 389 % 1500)) $((i % 4 + 1)) "$file" >/dev/null
    written+=("$file")
done
# A line per file, or one for many (a stack of 200 agencies).
if ((${#written[@]} > 5)); then
    echo "gen-data: wrote ${#written[@]} missing agency files in $data_dir"
elif ((${#written[@]} > 0)); then
    printf 'gen-data: wrote %s\n' "${written[@]}"
fi
