#!/bin/sh
# Checks that the running `server` container echoes a line, with netcat from a
# throwaway busybox container on the server's own network (no netcat on the
# host, no published ports). Prints exactly one result line:
#   action: test_echo_server | result: success|fail
# SERVER_CONTAINER (default server) and SERVER_PORT (default: the port in
# ./server/config.ini, else 12345) pick another target.
container=${SERVER_CONTAINER:-server}
port=${SERVER_PORT:-}
if [ -z "$port" ] && [ -f ./server/config.ini ]; then
    port=$(sed -n 's/^[[:space:]]*SERVER_PORT[[:space:]]*[=:][[:space:]]*\([0-9][0-9]*\).*/\1/p' ./server/config.ini | head -n 1)
fi
port=${port:-12345}
message="test-echo-$$-$(date +%s)"

network=$(docker inspect --format '{{range $name, $_ := .NetworkSettings.Networks}}{{println $name}}{{end}}' "$container" 2>/dev/null | head -n 1)
if [ -z "$network" ]; then
    echo "action: test_echo_server | result: fail"
    exit 1
fi
reply=$(docker run --rm --network "$network" busybox:latest \
    sh -c "echo '$message' | nc -w 3 '$container' '$port'" 2>/dev/null)

if [ "$reply" = "$message" ]; then
    echo "action: test_echo_server | result: success"
else
    echo "action: test_echo_server | result: fail"
    exit 1
fi
