#!/usr/bin/env bash
# Makes this machine able to run the Docker parts of the project. Idempotent:
# each step checks first and does nothing when its thing is already there.
#
#   1. a Docker engine that answers (installs docker.io and starts dockerd if none);
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

# 1. The engine.
if ! docker info >/dev/null 2>&1; then
    if ! command -v dockerd >/dev/null 2>&1; then
        log "installing docker.io"
        apt_install docker.io
    fi
    log "starting dockerd"
    ($SUDO dockerd >/var/log/dockerd.log 2>&1 &)
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || { log "the Docker engine did not start; see /var/log/dockerd.log"; exit 1; }
fi

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
