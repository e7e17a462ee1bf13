#!/usr/bin/env bash
# One node of the running lab (see up.sh):
#   node.sh docker NODE ARGS...   the docker CLI against that node's engine (with a timeout)
#   node.sh crash NODE            SIGKILL everything of the node: its dockerd, containerd,
#                                 shims and containers (a machine that dies)
#   node.sh kill-dockerd NODE     SIGKILL its dockerd only (its containerd dies with it;
#                                 the shims and containers go on as orphans)
#   node.sh memory                resident memory of each engine (dockerd + containerd + shims)
#                                 and of each node's containers
# NODE is n1 (the manager), n2 or n3.
set -euo pipefail
source "$(dirname "$0")/lab.env"

usage() { echo "usage: $0 docker NODE ARGS... | crash NODE | kill-dockerd NODE | memory" >&2; exit 2; }
node_arg() { case ${1:-} in n1 | n2 | n3) ;; *) usage ;; esac; }
rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

case ${1:-} in
    docker)
        node_arg "${2:-}"; n=$2; shift 2
        dk "$n" "$@"
        ;;
    crash)
        node_arg "${2:-}"
        for _ in $(seq 1 20); do
            pids=$(cg_pids "$2" | tr '\n' ' ')
            [ -z "${pids// /}" ] && exit 0
            # shellcheck disable=SC2086
            kill -KILL $pids 2>/dev/null || true
            sleep 0.1
        done
        say "processes of $2 still alive: $(cg_pids "$2" | tr '\n' ' ')"; exit 1
        ;;
    kill-dockerd)
        node_arg "${2:-}"
        kill -KILL "$(cat "$RUN/$2/docker.pid")"
        ;;
    memory)
        for n in $NODES; do
            tasks=0
            for p in $(find "$(node_cg "$n")/containers" -name cgroup.procs -exec cat {} + 2>/dev/null); do
                tasks=$((tasks + $(rss_kb "$p")))
            done
            echo "$(node_ns "$n"): engine $(engine_rss "$n") MiB, containers $((tasks / 1024)) MiB"
        done
        ;;
    *) usage ;;
esac
