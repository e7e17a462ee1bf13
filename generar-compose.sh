#!/usr/bin/env bash
# Writes a Docker Compose file for the lottery server and N agency clients.
#
#   ./generar-compose.sh <output-file> <N> [echo|bet|agency]
#
# The scenario is the third argument, else $SCENARIO, else `agency`:
#   echo    exercises 1-4: each client runs the echo loop;
#   bet     exercise 5: each client sends one bet from NOMBRE, APELLIDO, ...;
#   agency  exercises 6-8: each client sends ./.data/agency-<i>.csv.
# Paths mounted into the containers can be moved with SERVER_CONFIG,
# CLIENT_CONFIG, DATA_DIR and BETS_DIR (defaults below); they are relative to
# the project directory, so keep the output beside this script or pass
# --project-directory to docker compose. The server has `restart: on-failure`:
# Docker restarts it after a crash and it resumes the round in its bets folder.
set -euo pipefail

usage() {
    echo "usage: $0 <output-file> <clients: whole number >= 0> [echo|bet|agency]" >&2
    echo "       (scenario: argument, else \$SCENARIO, else agency)" >&2
    exit 2
}

[ $# -eq 2 ] || [ $# -eq 3 ] || usage
output=$1
[[ $2 =~ ^[0-9]+$ ]] || usage
clients=$((10#$2))
scenario=${3:-${SCENARIO:-agency}}
case $scenario in echo | bet | agency) ;; *) usage ;; esac

server_config=${SERVER_CONFIG:-./server/config.ini}
client_config=${CLIENT_CONFIG:-./client/config.yaml}
data_dir=${DATA_DIR:-./.data}
bets_dir=${BETS_DIR:-./.data/server}

first_names=("Santiago Lionel" "Valentina" "Joaquín" "Sofía" "Matías")
last_names=("Lorca" "Pérez" "Núñez" "González" "Álvarez")

{
    echo "name: tp0"
    echo "services:"
    echo "  server:"
    echo "    container_name: server"
    echo "    image: server:latest"
    echo "    entrypoint: /server"
    # Crash-safe rounds (README, Deployment): a crashed server is restarted
    # and resumes its round from the bets volume; a stop is not a crash.
    echo "    # Restarted after a crash (non-zero exit); not after SIGTERM (exit 0),"
    echo "    # docker compose stop/down, docker stop or docker kill."
    echo "    restart: on-failure"
    echo "    environment:"
    echo "      - AGENCIES=$clients"
    echo "      - BETS_FILE=/data/bets.csv"
    echo "    volumes:"
    echo "      - $server_config:/config.ini:ro"
    echo "      - $bets_dir:/data"
    echo "    networks:"
    echo "      - testing_net"
    for ((i = 1; i <= clients; i++)); do
        echo ""
        echo "  client$i:"
        echo "    container_name: client$i"
        echo "    image: client:latest"
        echo "    entrypoint: /client"
        echo "    environment:"
        echo "      - CLI_ID=$i"
        echo "      - CLI_MODE=$scenario"
        case $scenario in
            bet)
                k=$(((i - 1) % 5))
                echo "      - \"NOMBRE=${first_names[$k]}\""
                echo "      - \"APELLIDO=${last_names[$k]}\""
                echo "      - DOCUMENTO=$((30904464 + i))"
                echo "      - NACIMIENTO=1999-03-$(printf %02d $(((i - 1) % 28 + 1)))"
                # Odd agencies bet on the winning number.
                echo "      - NUMERO=$(((i % 2) ? 7574 : 1000 + i))"
                ;;
            agency)
                echo "      - CLI_AGENCY_DATA_FILE=/data/agency.csv"
                ;;
        esac
        echo "    volumes:"
        echo "      - $client_config:/config.yaml:ro"
        if [ "$scenario" = agency ]; then
            echo "      - $data_dir/agency-$i.csv:/data/agency.csv:ro"
        fi
        echo "    networks:"
        echo "      - testing_net"
        echo "    depends_on:"
        echo "      - server"
    done
    echo ""
    echo "networks:"
    echo "  testing_net:"
    echo "    ipam:"
    echo "      driver: default"
    echo "      config:"
    echo "        - subnet: 172.25.125.0/24"
} >"$output"
