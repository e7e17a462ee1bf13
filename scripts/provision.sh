#!/usr/bin/env bash
# Makes this machine able to run the Docker parts of the project. Idempotent:
# each step checks first and does nothing when its thing is already there.
#
#   1. a Docker engine that answers (installs docker.io and starts dockerd if none;
#      restarts one that is stuck);
#   2. Docker Compose v2 (`docker compose`), 2.27 or newer: Debian bookworm ships
#      only v1, and Compose before 2.27 starts every `docker compose logs` line
#      with the terminal escape ESC[2K even into a pipe or a file. A Compose that
#      is missing or older is replaced by Debian forky's docker-compose package
#      (2.40.x; it needs only libc6 >= 2.34). The forky source is pinned so that
#      docker-compose is the one package apt may ever take from it; a Compose
#      that is already 2.27 or newer, from anywhere, is left alone;
#   3. the `busybox:latest` image for the echo check, imported from Debian's
#      busybox-static (no registry is reachable, so nothing can be pulled).
set -euo pipefail

log() { echo "provision: $*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

apt_updated=""
apt_install() {
    if [ -z "$apt_updated" ]; then
        $SUDO apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# 1. The engine: one that answers, and is not stuck. A stuck engine accepts
#    calls and never answers them; seen here once on engine 20.10: containers
#    whose process had exited stayed Up and `docker inspect` of them hung, so
#    every Docker test after it would hang too. Such an engine is restarted.
PROBE=30 # seconds one call may take
start_engine() {
    log "starting dockerd"
    ($SUDO dockerd >/var/log/dockerd.log 2>&1 &)
    for _ in $(seq 1 60); do
        timeout "$PROBE" docker info >/dev/null 2>&1 && return
        sleep 1
    done
    log "the Docker engine did not start; see /var/log/dockerd.log"
    exit 1
}
# Prints what does not answer within $PROBE seconds (empty: nothing), or
# "down" when no engine takes calls at all.
engine_stuck() {
    local rc ids
    timeout "$PROBE" docker info >/dev/null 2>&1 || rc=$?
    case ${rc:-0} in
        0) ;;
        124 | 137) echo "docker info"; return ;;
        *) echo down; return ;;
    esac
    ids=$(timeout "$PROBE" docker ps -aq 2>/dev/null) || { echo "docker ps"; return; }
    if [ -n "$ids" ]; then
        # shellcheck disable=SC2086
        timeout "$PROBE" docker inspect $ids >/dev/null 2>&1 || rc=$?
        [ "${rc:-0}" = 124 ] && echo "docker inspect of its $(wc -w <<<"$ids") containers"
    fi
    true
}
# A process that runs (a zombie has ended).
alive() { [ -e "/proc/$1" ] && ! grep -q '^[0-9]* (.*) Z' "/proc/$1/stat" 2>/dev/null; }
restart_engine() {
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker 2>/dev/null; then
        $SUDO systemctl restart docker
        return
    fi
    local pid
    pid=$(cat /var/run/docker.pid 2>/dev/null || pgrep -xo dockerd || true)
    if [ -n "$pid" ]; then
        $SUDO kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 20); do alive "$pid" || break; sleep 1; done
        if alive "$pid"; then
            local ctr=/var/run/docker/containerd/containerd.pid cpid
            cpid=$(cat "$ctr" 2>/dev/null || true)
            log "dockerd $pid did not stop within 20 s; killing it and its containerd ${cpid:-(none)}"
            $SUDO kill -KILL "$pid" ${cpid:+"$cpid"} 2>/dev/null || true
            for _ in $(seq 1 50); do
                alive "$pid" || { [ -n "$cpid" ] && alive "$cpid"; } || break
                sleep 0.2
            done
            # A new dockerd trusts these while their pids exist (zombies
            # included): it would refuse to start, or wait on the dead
            # containerd.
            $SUDO rm -f /var/run/docker.pid "$ctr"
        fi
    fi
    start_engine
}
stuck=$(engine_stuck)
case $stuck in
    "") ;;
    down)
        if ! command -v dockerd >/dev/null 2>&1; then
            log "installing docker.io"
            apt_install docker.io
        fi
        start_engine
        ;;
    *)
        log "the Docker engine is stuck ($stuck did not answer within ${PROBE} s); restarting it"
        restart_engine
        stuck=$(engine_stuck)
        [ -z "$stuck" ] || { log "the Docker engine is still stuck after a restart ($stuck); see /var/log/dockerd.log"; exit 1; }
        ;;
esac

# 2. Compose v2, at least 2.27.
MIN_COMPOSE=2.27
# The version `docker compose` reports ("2.26.1-4", "2.40.3-3", "2.29.1"), or
# nothing when there is no Compose v2 plugin.
compose_version() { docker compose version --short 2>/dev/null | sed 's/^v//' || true; }
compose_recent() {
    local v
    v=$(compose_version)
    [ -n "$v" ] && dpkg --compare-versions "$v" ge "$MIN_COMPOSE"
}
if ! compose_recent; then
    present=$(compose_version)
    log "installing docker-compose from Debian forky (found: ${present:-no Compose v2}; need >= $MIN_COMPOSE)"
    $SUDO tee /etc/apt/sources.list.d/tp0-forky.sources >/dev/null <<'SRC'
# Added by tp0's scripts/provision.sh for docker-compose alone; see tp0-forky
# in /etc/apt/preferences.d.
Types: deb
URIs: http://deb.debian.org/debian
Suites: forky
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    # docker-compose from forky at the priority of bookworm (500: the newer
    # version wins over bookworm's v1); every other forky package at -1, never
    # installed, not as a dependency, a recommendation or an upgrade. Without
    # `-t` on the command line: a target release outranks these pins.
    $SUDO tee /etc/apt/preferences.d/tp0-forky >/dev/null <<'PIN'
Package: docker-compose
Pin: release n=forky
Pin-Priority: 500

Package: *
Pin: release n=forky
Pin-Priority: -1
PIN
    # An earlier version of this script took docker-compose 2.26 from trixie
    # (pinned at 100); its source is no longer needed.
    $SUDO rm -f /etc/apt/sources.list.d/tp0-trixie.sources /etc/apt/preferences.d/tp0-trixie
    apt_updated=""
    # No recommends: the package recommends docker-cli, which on bookworm
    # would mean replacing docker.io's engine and CLI.
    apt_install --no-install-recommends docker-compose
    if ! compose_recent; then
        log "docker compose still reports '$(compose_version)' after installing docker-compose $(dpkg-query -W -f='${Version}' docker-compose 2>/dev/null)"
        log "the plugin docker runs: $(docker info --format '{{range .ClientInfo.Plugins}}{{if eq .Name "compose"}}{{.Path}}{{end}}{{end}}' 2>/dev/null)"
        log "(another compose plugin, e.g. in ~/.docker/cli-plugins, may come first)"
        exit 1
    fi
fi

# 3. busybox:latest, from Debian's static busybox.
if ! docker image inspect busybox:latest >/dev/null 2>&1; then
    if [ ! -x /bin/busybox ] || ! /bin/busybox --list | grep -qx nc || ! ldd /bin/busybox 2>&1 | grep -q "not a dynamic"; then
        log "installing busybox-static"
        apt_install busybox-static
    fi
    log "importing busybox:latest"
    root=$(mktemp -d)
    trap 'rm -rf "$root"' EXIT
    mkdir -p "$root/bin" "$root/tmp" "$root/etc"
    cp /bin/busybox "$root/bin/busybox"
    for applet in $("$root/bin/busybox" --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
    done
    tar -C "$root" -c . | docker import --change 'CMD ["sh"]' --change 'ENV PATH=/bin' - busybox:latest >/dev/null
fi

log "ready: $(docker compose version), busybox:latest present"
