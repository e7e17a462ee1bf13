#!/usr/bin/env bash
# Brings the multi-node lab up: three Docker engines on this machine, each in
# its own network namespace with its own data root and socket, joined over
# veths into one swarm (n1 manager, n2 and n3 workers), with $IMAGES loaded
# into each (`docker save` from the host engine, `docker load`; no registry).
#
#   scripts/swarm-lab/up.sh          # or: make swarm-lab-up
#   scripts/swarm-lab/node.sh docker n1 node ls
#   scripts/swarm-lab/down.sh        # or: make swarm-lab-down
#
# Idempotent: whatever an earlier lab left (up, half up, a node killed) is torn
# down first. Exit codes: 0 up; 77 this host or kernel refuses something the
# lab needs (the line `swarm-lab: cannot run here: …` says exactly what; the
# tests skip with it); anything else a failure (the engines' logs are in
# $RUN/nX/dockerd.log). Env: IMAGES (default "server:latest client:latest";
# empty: none), DOCKERD, STORAGE_DRIVER, HEARTBEAT, SWARM_LAB_DIR,
# SWARM_LAB_SUBNET (see lab.env). Needs root. The host engine is only read
# from (`docker save`); nothing of it changes.
set -euo pipefail
source "$(dirname "$0")/lab.env"

refuse() { say "cannot run here: $*"; exit "$EXIT_REFUSED"; }
fail() { say "failed: $*"; exit 1; }

# One lab at a time on this machine (the lock is on this script's folder: no
# file to leave behind); down.sh, run from here, inherits it.
exec 9<"$HERE"
flock -w 300 9 || fail "another up.sh or down.sh held the lab for 5 minutes"
export SWARM_LAB_LOCKED=1

# ---- preflight: what this host must allow ------------------------------------
T0=$(ts)
[ "$(id -u)" -eq 0 ] ||
    refuse "not root (uid $(id -u)): network namespaces, veths and nested Docker engines need root"
for c in ip nsenter unshare setsid timeout flock mount docker iptables containerd \
    containerd-shim-runc-v2 runc; do
    command -v "$c" >/dev/null || refuse "no \`$c\` command (Debian: iproute2, util-linux, iptables, docker.io)"
done
[ -n "$DOCKERD" ] && [ -x "$DOCKERD" ] || refuse "no dockerd binary (Debian: apt-get install docker.io; or DOCKERD=/path/to/dockerd)"
version=$("$DOCKERD" --version 2>&1) || refuse "\`$DOCKERD --version\` fails: $version"
v=$(sed -n 's/^Docker version \([0-9][0-9]*\)\.\([0-9][0-9]*\).*/\1 \2/p' <<<"$version")
[ -n "$v" ] || refuse "cannot read the version of $DOCKERD: $version"
set -- $v
{ [ "$1" -gt 20 ] || { [ "$1" -eq 20 ] && [ "$2" -ge 10 ]; }; } ||
    refuse "$DOCKERD is $version; the lab needs 20.10 or newer"
mem=$(awk '/^MemAvailable:/{print int($2/1024)}' /proc/meminfo)
[ "${mem:-0}" -ge 1024 ] ||
    refuse "only ${mem} MiB of memory available; three engines and their tasks need about 1 GiB"
sock="$RUN/n1/exec/containerd/containerd.sock.ttrpc"
[ ${#sock} -lt 108 ] ||
    fail "$RUN is too deep for a Unix socket path ($sock: ${#sock} bytes, at most 107); set SWARM_LAB_DIR to a shorter folder"
docker info >/dev/null 2>&1 || fail "the host engine does not answer (\`docker info\`); it provides the images"
for image in $IMAGES; do
    docker image inspect "$image" >/dev/null 2>&1 ||
        fail "the host engine has no $image (\`make docker-image\` builds the project's images)"
done

bash "$HERE/down.sh" >/dev/null 2>&1 || bash "$HERE/down.sh" ||
    fail "down.sh could not clear an earlier lab (see above)"
mkdir -p "$RUN"

# The kernel features, each tried in a throwaway namespace, so a refusal names
# exactly what is missing.
probe=$PREFIX-probe
cleanup_probe() { ip netns del "$probe" 2>/dev/null || true; rm -rf "$RUN/probe"; }
trap cleanup_probe EXIT
try() { # what, command...: runs it, refusing with its error
    local what=$1 out; shift
    out=$("$@" 2>&1) || refuse "$what ($*: ${out:-failed})"
}
try "no network namespaces" ip netns add "$probe"
try "no veth pairs" ip -n "$probe" link add tp0a type veth peer name tp0b
try "no bridges" ip -n "$probe" link add tp0br type bridge
try "no VXLAN (the overlay network's data plane)" \
    ip -n "$probe" link add tp0vx type vxlan id 4242 dstport 4789 dev tp0a
try "no iptables in a network namespace (the nested engines need it)" \
    nsenter --net="/run/netns/$probe" iptables -t nat -N TP0PROBE
try "no private mount namespaces" unshare --mount --uts --propagation private true
cgr=$(cg_root)
[ -n "$cgr" ] || refuse "no cgroup v2 and no cgroup v1 pids hierarchy under /sys/fs/cgroup"
try "cannot create a cgroup in $cgr" mkdir "$cgr/$probe"
try "cannot move a process into a cgroup ($(cg_mode))" \
    sh -c 'echo $$ >"$1/cgroup.procs"' sh "$cgr/$probe"
sleep 0.1
rmdir "$cgr/$probe" 2>/dev/null || true
# Storage: overlay2 where the kernel mounts overlayfs on this file system,
# else fuse-overlayfs, else vfs (a copy per layer: the images are 2 MB).
p=$RUN/probe
mkdir -p "$p/l" "$p/u" "$p/w" "$p/m"
overlay_ok() {
    unshare --mount --propagation private sh -c \
        'mount -t overlay overlay -o "lowerdir=$1/l,upperdir=$1/u,workdir=$1/w" "$1/m" && touch "$1/m/x"' sh "$p" 2>&1
}
driver=$STORAGE_DRIVER
if [ "$driver" = auto ]; then
    if why=$(overlay_ok); then
        driver=overlay2
    elif command -v fuse-overlayfs >/dev/null && [ -c /dev/fuse ]; then
        say "overlayfs refused on $RUN ($why); using fuse-overlayfs"
        driver=fuse-overlayfs
    else
        say "overlayfs refused on $RUN ($why), no fuse-overlayfs; using vfs"
        driver=vfs
    fi
fi
echo "$driver" >"$RUN/storage-driver"
cleanup_probe
trap - EXIT
say "preflight: $(el "$T0")s ($version, cgroup $(cg_mode), storage $driver)"

# From here on a failure leaves a half-built lab: tear it down.
trap 'rc=$?; [ $rc -eq 0 ] || { say "up.sh failed; tearing the lab down"; bash "$HERE/down.sh" >&2 || true; }' EXIT
engine_log() { say "--- $RUN/$1/dockerd.log (last 30 lines)"; tail -30 "$RUN/$1/dockerd.log" >&2 || true; }

# ---- 1. underlay network --------------------------------------------------------
# The bridge sits in its own namespace, not the root one: there, the host
# engine sets FORWARD to DROP and br_netfilter would send bridged frames
# through it. Both ends of each veth are created inside their namespaces, so
# no name is ever taken in the root namespace.
T1=$(ts)
ip netns add "$BRNS"
ip -n "$BRNS" link set lo up
ip -n "$BRNS" link add br0 type bridge
ip -n "$BRNS" link set br0 up
for n in $NODES; do
    ns=$(node_ns "$n")
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip link add eth0 netns "$ns" type veth peer name "$ns" netns "$BRNS"
    ip -n "$BRNS" link set "$ns" master br0 up
    ip -n "$ns" addr add "$(node_ip "$n")/24" dev eth0
    ip -n "$ns" link set eth0 up
done
say "network: $(el "$T1")s (bridge in $BRNS, nodes $SUBNET_PREFIX.11-13)"

# ---- 2. one dockerd per namespace ---------------------------------------------------
T2=$(ts)
for n in $NODES; do start_daemon "$n"; done
for n in $NODES; do
    for _ in $(seq 1 240); do
        DK_TIMEOUT=5 dk "$n" version >/dev/null 2>&1 && break
        pid=$(cat "$RUN/$n/docker.pid" 2>/dev/null || true)
        if [ -z "$(cg_pids "$n")" ]; then engine_log "$n"; fail "dockerd $n exited at start"; fi
        sleep 0.25
    done
    DK_TIMEOUT=5 dk "$n" version >/dev/null 2>&1 || { engine_log "$n"; fail "dockerd $n did not answer within 60 s"; }
done
server_version=$(dk n1 version -f '{{.Server.Version}}')
say "engines: $(el "$T2")s (3 × dockerd $server_version, storage $(dk n1 info -f '{{.Driver}}'))"

# ---- 3. images, without a registry -----------------------------------------------------
T3=$(ts)
if [ -n "$IMAGES" ]; then
    # shellcheck disable=SC2086
    docker save $IMAGES -o "$RUN/images.tar"
    pids=""
    for n in $NODES; do
        dk "$n" load -q -i "$RUN/images.tar" >"$RUN/$n/load.log" 2>&1 & pids="$pids $!"
    done
    for p in $pids; do wait "$p" || fail "docker load failed: $(cat "$RUN"/n*/load.log)"; done
    rm -f "$RUN/images.tar"
    say "images: $(el "$T3")s ($IMAGES saved from the host engine, loaded into 3 engines)"
fi

# ---- 4. swarm ----------------------------------------------------------------------------
T4=$(ts)
MIP=$(node_ip $MANAGER)
dk $MANAGER swarm init --advertise-addr "$MIP" --listen-addr "$MIP:2377" \
    --dispatcher-heartbeat "$HEARTBEAT" >/dev/null
TOKEN=$(dk $MANAGER swarm join-token -q worker)
for n in $NODES; do
    [ "$n" = $MANAGER ] && continue
    ok=0
    for _ in 1 2 3 4 5; do
        if dk "$n" swarm join --advertise-addr "$(node_ip "$n")" --listen-addr "$(node_ip "$n"):2377" \
            --token "$TOKEN" "$MIP:2377" >/dev/null 2>"$RUN/$n/join.log"; then ok=1; break; fi
        sleep 1
    done
    [ $ok = 1 ] || { cat "$RUN/$n/join.log" >&2; fail "$n could not join the swarm"; }
done
ready=0
for _ in $(seq 1 120); do
    if [ "$(dk $MANAGER node ls --format '{{.Status}} {{.Availability}}' | grep -c '^Ready Active$')" = 3 ]; then
        ready=1; break
    fi
    sleep 0.25
done
[ $ready = 1 ] || { dk $MANAGER node ls >&2 || true; fail "the 3 nodes were not Ready within 30 s"; }
say "swarm: $(el "$T4")s (manager $(node_ns $MANAGER), heartbeat $HEARTBEAT, 3 nodes Ready)"
for n in $NODES; do say "memory $(node_ns "$n"): $(engine_rss "$n") MiB (dockerd + containerd)"; done
trap - EXIT
say "up: $(el "$T0")s"
