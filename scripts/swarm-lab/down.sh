#!/usr/bin/env bash
# Tears the multi-node lab down; safe to run any number of times, in any state
# (nothing up, half up, a node killed). Leaves no namespace, veth, engine,
# container, mount, cgroup or file of the lab behind, and says so (exit 0), or
# names what is left (exit 1). Touches only tp0lab-* namespaces and cgroups,
# processes in them, and $RUN; the host's engine is left alone.
#   1. with GRACEFUL=1 only: SIGTERM each nested dockerd, 15 s at most;
#   2. SIGKILL every process of the lab (its cgroups, its namespaces, and any
#      dockerd/containerd/shim whose command line names $RUN), until none is
#      left;
#   3. unmount anything under $RUN still mounted in the host's mount
#      namespace (normally nothing: the engines mount in private ones);
#   4. remove the cgroups, the namespaces (the veths go with them) and $RUN.
set -uo pipefail
source "$(dirname "$0")/lab.env"

if [ -z "${SWARM_LAB_LOCKED:-}" ]; then
    exec 9<"$HERE"
    flock -w 300 9 || { say "another up.sh or down.sh held the lab for 5 minutes"; exit 1; }
fi

lab_namespaces() { ip netns list 2>/dev/null | awk -v p="$PREFIX-" 'index($1, p) == 1 {print $1}'; }
lab_pids() {
    local ns d
    for d in $(lab_cgroups); do cat "$d/cgroup.procs" 2>/dev/null; done
    for ns in $(lab_namespaces); do ip netns pids "$ns" 2>/dev/null; done
    # an engine whose cgroup is gone (an earlier lab's, half torn down)
    [ -d "$RUN" ] && pgrep -f -- "$RUN/" 2>/dev/null | while read -r p; do
        case $(cat "/proc/$p/comm" 2>/dev/null) in
            dockerd | containerd | containerd-shim*) echo "$p" ;;
        esac
    done
    true
}

# 1. graceful stop (optional: step 2 alone leaves nothing behind)
if [ "${GRACEFUL:-}" = 1 ]; then
    for n in $NODES; do
        p=$(cat "$RUN/$n/docker.pid" 2>/dev/null || true)
        [ -n "$p" ] && kill -TERM "$p" 2>/dev/null
    done
    for _ in $(seq 1 60); do
        alive=0
        for n in $NODES; do
            p=$(cat "$RUN/$n/docker.pid" 2>/dev/null || true)
            [ -n "$p" ] && [ -d "/proc/$p" ] && alive=1
        done
        [ $alive = 0 ] && break
        sleep 0.25
    done
fi

# 2. kill the rest (again while any is left: a killed shim's children, a
#    process forked meanwhile)
left=""
for _ in $(seq 1 20); do
    left=$(lab_pids | sort -un | tr '\n' ' ')
    [ -z "${left// /}" ] && break
    # shellcheck disable=SC2086
    kill -KILL $left 2>/dev/null
    sleep 0.2
done
left=$(lab_pids | sort -un | tr '\n' ' ')

# 3. mounts left in the host's mount namespace, deepest first
if [ -d "$RUN" ]; then
    awk -v r="$RUN" 'index($2, r) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do
        say "unmounting leftover $m"
        umount "$m" 2>/dev/null || umount -l "$m"
    done
fi

# 4. cgroups (a cgroup empties a moment after its last process dies), then
#    the namespaces, then the files
for _ in $(seq 1 25); do
    for d in $(lab_cgroups); do rmdir "$d" 2>/dev/null; done
    [ -z "$(lab_cgroups)" ] && break
    sleep 0.2
done
for ns in $(lab_namespaces); do ip netns del "$ns" 2>/dev/null; done
if [ -d "$RUN" ] && ! awk -v r="$RUN" 'index($2, r) == 1 {found=1} END {exit !found}' /proc/self/mounts; then
    if [ -n "${KEEP_LOGS:-}" ]; then
        mkdir -p "$KEEP_LOGS"
        for n in $NODES; do cp "$RUN/$n/dockerd.log" "$KEEP_LOGS/$n.log" 2>/dev/null; done
    fi
    rm -rf "$RUN"
fi

# what is left, if anything
problems=""
[ -n "${left// /}" ] && problems="$problems processes: $left;"
ns=$(lab_namespaces | tr '\n' ' '); [ -n "${ns// /}" ] && problems="$problems namespaces: $ns;"
cg=$(lab_cgroups | tr '\n' ' '); [ -n "${cg// /}" ] && problems="$problems cgroups: $cg;"
m=$(awk -v r="$RUN" 'index($2, r) == 1 {print $2}' /proc/self/mounts | tr '\n' ' ')
[ -n "${m// /}" ] && problems="$problems mounts: $m;"
[ -e "$RUN" ] && problems="$problems $RUN;"
if [ -n "$problems" ]; then
    say "left behind:$problems"
    exit 1
fi
exit 0
