#!/usr/bin/env bash
# Generates ./.data/agency-<i>.csv for every client of a compose file whose
# file is missing (existing files, such as the course dataset copied there by
# hand, are left alone). Deterministic: agency i gets 500 + (i * 389 mod 1500)
# bets, with (i mod 4) + 1 winners.
#   scripts/gen-data.sh [compose-file]   (default docker-compose-dev.yaml)
set -euo pipefail
compose=${1:-docker-compose-dev.yaml}
client=${CLIENT_BIN:-target/docker/client}
data_dir=${DATA_DIR:-./.data}
mkdir -p "$data_dir"
for i in $(sed -n 's/^[[:space:]]*- CLI_ID=\([0-9][0-9]*\)$/\1/p' "$compose"); do
    file="$data_dir/agency-$i.csv"
    [ -f "$file" ] && continue
    "$client" gen-data "$i" $((500 + i * 389 % 1500)) $((i % 4 + 1)) "$file" >/dev/null
    echo "gen-data: wrote $file"
done
