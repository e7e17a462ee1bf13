#!/usr/bin/env bash
# The lottery as a Docker Swarm stack on this machine's engine (the Makefile's
# swarm-* targets; the images are this engine's own, built by `make
# docker-image`: there is no registry).
#
#   scripts/swarm.sh up     # make swarm-up AGENCIES=N
#   scripts/swarm.sh down   # make swarm-down
#   scripts/swarm.sh logs   # make swarm-logs
#
# up: when the engine is in no swarm, initialises a single-node one
# (advertised on 127.0.0.1: nothing outside this machine can join it; for a
# swarm of several machines, `docker swarm init` one yourself and run this on
# a manager) and says so; refuses on a worker (stacks are deployed from a
# manager), when the stack is already deployed, and, before it writes an
# agency or stack file, on a count ./generar-stack.sh refuses or a BETS_DIR
# (created if missing) the server would refuse (`server --check`). Then, in
# the `agency` scenario, writes the missing DATA_DIR/agency-<i>.csv for
# i = 1..AGENCIES (scripts/gen-data.sh, as for Compose), puts the generated
# stack in STACK_FILE and deploys it as STACK.
# down: removes the stack and waits until its services, containers and
# network are gone, so the next `up` does not collide with them. The swarm
# stays; `docker swarm leave --force` leaves it (on a single node, that
# deletes the swarm).
# logs: follows the server's log (`docker service logs -f`; each line after
# `<service>.<slot>.<task>@<node> | `) and shows each agency's whole log once
# its task has ended (the slot being the agency; see logs() for why).
#
# Env: AGENCIES (5), STACK (tp0), STACK_FILE (docker-stack.yaml), SCENARIO
# (agency), DATA_DIR (./.data), BETS_DIR (./.data/swarm), SERVER_CONFIG
# (./server/config.ini), CLIENT_CONFIG (./client/config.yaml), DOWN_TIMEOUT
# (seconds, 60), CLIENT_BIN (target/docker/client, for gen-data), SERVER_BIN
# (target/docker/server, for `server --check`).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
agencies=${AGENCIES-5} # set but empty is an error, not the default
stack=${STACK:-tp0}
stack_file=${STACK_FILE:-docker-stack.yaml}
scenario=${SCENARIO:-agency}
data_dir=${DATA_DIR:-./.data}
bets_dir=${BETS_DIR:-./.data/swarm}
server_config=${SERVER_CONFIG:-./server/config.ini}
client_config=${CLIENT_CONFIG:-./client/config.yaml}
down_timeout=${DOWN_TIMEOUT:-60}

fail() {
    echo "swarm-$command: $*" >&2
    exit 1
}

# This engine's place in a swarm: inactive, manager, worker, or another
# state (pending, locked, error) as docker reports it.
role() {
    local info
    info=$(docker info -f '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}' 2>&1) ||
        fail "no Docker engine answers (\`make provision\` starts one): $info"
    case $info in
        "inactive "*) echo inactive ;;
        "active true") echo manager ;;
        "active false") echo worker ;;
        *) echo "${info%% *}" ;;
    esac
}

# Fails unless this engine manages a swarm.
need_manager() {
    local role=$1
    case $role in
        manager) ;;
        worker)
            fail "this engine is a worker in a swarm (node address" \
                "$(docker info -f '{{.Swarm.NodeAddr}}')), and stacks are deployed from a" \
                "manager: run this on a manager (or with DOCKER_HOST set to a manager's" \
                "engine), or take this engine out of the swarm (docker swarm leave)" ;;
        *) fail "this engine's swarm state is $role (docker info); nothing done" ;;
    esac
}

# What of the stack is still there ("3 containers, 1 networks, "); empty
# when nothing is.
leftovers() {
    local label="label=com.docker.stack.namespace=$stack" n
    n=$(docker service ls -q --filter "$label" | wc -l)
    ((n == 0)) || echo -n "$n services, "
    n=$(docker ps -aq --filter "$label" | wc -l)
    ((n == 0)) || echo -n "$n containers, "
    n=$(docker network ls -q --filter "$label" | wc -l)
    ((n == 0)) || echo -n "$n networks, "
}

up() {
    [[ $agencies =~ ^[0-9]+$ ]] || fail "AGENCIES=$agencies is not a whole number"
    for path in "$server_config" "$client_config"; do
        [ -f "$path" ] || fail "$path is not a file (a mounted configuration)"
    done
    # The stack file first, into a file of its own: the generator's refusals
    # (too many agencies, an unknown scenario) come before anything is
    # written or changed, and the file of a deployed stack stays as it is
    # until this one is deployed.
    # (Not local: the EXIT trap runs after this function has returned.)
    draft=$(mktemp "$stack_file.XXXXXX")
    trap 'rm -f "$draft"' EXIT
    SERVER_CONFIG=$server_config CLIENT_CONFIG=$client_config DATA_DIR=$data_dir \
        BETS_DIR=$bets_dir bash "$root/generar-stack.sh" "$draft" "$agencies" "$scenario" ||
        exit
    agencies=$((10#$agencies))
    # The server's own reading of the round in the bets folder (`server
    # --check` changes nothing): a start it would refuse (a round in progress
    # for another AGENCIES, files it did not write, MAX_CONNECTIONS not above
    # AGENCIES) is refused here, before the deploy, not by a server task
    # restarted over and over.
    local server_bin=${SERVER_BIN:-$root/target/docker/server} check
    [ -x "$server_bin" ] || fail "no server binary at $server_bin (\`make binaries\` builds it)"
    mkdir -p "$bets_dir" # the server creates its files there, and so checks it is there
    check=$(AGENCIES=$agencies BETS_FILE=$bets_dir/bets.csv \
        "$server_bin" --check --config "$server_config" 2>&1) ||
        fail "the server would refuse to start: ${check##*error: }"
    local role
    role=$(role)
    if [ "$role" = inactive ]; then
        # Loopback: a single-node swarm, reachable (port 2377) from nowhere else.
        docker swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377 >/dev/null ||
            fail "docker swarm init failed (above)"
        echo "swarm-up: this engine was in no swarm; initialised a single-node swarm" \
            "(docker swarm leave --force undoes it)"
        role=manager
    fi
    need_manager "$role"
    if docker stack ls --format '{{.Name}}' | grep -qxF "$stack"; then
        fail "stack $stack is already deployed: \`make swarm-down\` removes it (a deploy" \
            "over it would only update its services, and completed agencies would not run again)"
    fi
    # A stack being removed (`docker stack rm` returns at once) still holds
    # its network; a deploy now would fail on it.
    local deadline=$((SECONDS + down_timeout)) left
    while left=$(leftovers) && [ -n "$left" ]; do
        ((SECONDS < deadline)) ||
            fail "stack $stack is still being removed (${left%, } left after ${down_timeout}s)"
        sleep 0.5
    done
    if [ "$scenario" = agency ]; then
        DATA_DIR=$data_dir CLIENT_BIN=${CLIENT_BIN:-$root/target/docker/client} \
            bash "$root/scripts/gen-data.sh" "$agencies"
    fi
    chmod 644 "$draft" # mktemp's 0600 is not what the generator writes
    mv "$draft" "$stack_file"
    # --resolve-image never: the images are this engine's own (no registry).
    # Each task's start still tries to pull its image; dockerd logs the
    # failure and uses the local image.
    docker stack deploy --resolve-image never -c "$stack_file" "$stack"
    echo "swarm-up: stack $stack deployed ($stack_file): the server and $agencies client" \
        "tasks ($scenario), bets in $bets_dir"
    if ((agencies > 0)); then
        echo "swarm-up: \`make swarm-logs\` follows it, \`docker service ps ${stack}_client\`" \
            "lists the tasks, \`make swarm-down\` removes it"
    else
        echo "swarm-up: no agencies, so the server is an echo server only; \`make swarm-logs\`" \
            "follows it, \`make swarm-down\` removes it"
    fi
}

down() {
    local role
    role=$(role)
    if [ "$role" = inactive ]; then
        echo "swarm-down: this engine is in no swarm; nothing to remove"
        return
    fi
    need_manager "$role"
    if ! docker stack ls --format '{{.Name}}' | grep -qxF "$stack" && [ -z "$(leftovers)" ]; then
        echo "swarm-down: no stack $stack; nothing to remove"
        return
    fi
    # `docker stack rm` returns at once: the tasks stop (the server gets
    # SIGTERM and its stop_grace_period), their containers are removed, and
    # until then it cannot remove the network ("in use by task"); it is run
    # again once the network is all that is left. Its errors are shown only
    # if the stack is not gone in the end.
    local err left deadline=$((SECONDS + down_timeout))
    { err=$(docker stack rm "$stack" 2>&1 1>&3); } 3>&1 || true
    while left=$(leftovers) && [ -n "$left" ]; do
        if ((SECONDS >= deadline)); then
            [ -z "$err" ] || echo "$err" >&2
            fail "stack $stack still has ${left%, } after ${down_timeout}s (docker stack ps $stack)"
        fi
        if [[ $left != *services* && $left != *containers* ]]; then
            err=$(docker stack rm "$stack" 2>&1 >/dev/null) || true
        fi
        sleep 0.5
    done
    echo "swarm-down: stack $stack removed; the swarm stays (docker swarm leave --force leaves it)"
}

# Prints each task's whole log once, when the task has ended (Complete,
# Failed, ...), until killed.
ended_task_logs() {
    local service=$1 id state
    local -A shown=()
    while :; do
        while read -r id state _; do
            case $state in Complete | Failed | Rejected | Shutdown | Orphaned) ;; *) continue ;; esac
            [ -z "${shown[$id]:-}" ] || continue
            shown[$id]=1
            docker service logs "$id" || true
        done < <(docker service ps --no-trunc --format '{{.ID}} {{.CurrentState}}' "$service")
        sleep 1
    done
}

logs() {
    local role services replicas
    role=$(role)
    need_manager "$role"
    services=$(docker stack services --format '{{.Name}}' "$stack" 2>/dev/null | sort) || true
    [ -n "$services" ] || fail "no stack $stack (\`make swarm-up\` deploys it)"
    # One follower per service; Ctrl-C ends them all.
    # (Background jobs of a script ignore SIGINT: the traps stop them.)
    local pids=()
    trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
    trap 'exit 130' INT TERM
    for service in $services; do
        replicas=$(docker service inspect -f '{{if .Spec.Mode.Replicated}}{{.Spec.Mode.Replicated.Replicas}}{{end}}' "$service")
        if [ "${replicas:-0}" -gt 1 ]; then
            # Docker 20.10's `docker service logs` of a service of several
            # tasks drops lines, with -f too (with 5 busy agencies here; past
            # about 32 tasks it also never ends); a task's own log comes whole.
            echo "swarm-logs: $service has $replicas tasks; \`docker service logs -f\` of" \
                "them all drops lines, so each task's log is shown whole when the task ends" >&2
            ended_task_logs "$service" &
        else
            docker service logs -f "$service" &
        fi
        pids+=($!)
    done
    wait
}

command=${1:-}
[ $# -le 1 ] || { echo "usage: $0 up|down|logs (settings go in the environment)" >&2; exit 2; }
case $command in
    up) up ;;
    down) down ;;
    logs) logs ;;
    *)
        echo "usage: $0 up|down|logs" >&2
        exit 2
        ;;
esac
