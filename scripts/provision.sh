#!/usr/bin/env bash
# Makes this machine able to run the Docker parts of the project. Idempotent:
# each step checks first and does nothing when its thing is already there.
#
#   1. a Docker engine that answers (installs docker.io and starts dockerd if none);
#   2. Docker Compose v2 (`docker compose`): Debian bookworm ships only v1, so the
#      docker-compose 2.x package comes from trixie, pinned low so that nothing
#      else is taken from there;
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

# 2. Compose v2.
if ! docker compose version >/dev/null 2>&1; then
    log "installing docker-compose v2 from Debian trixie (pinned low)"
    $SUDO tee /etc/apt/sources.list.d/tp0-trixie.sources >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    $SUDO tee /etc/apt/preferences.d/tp0-trixie >/dev/null <<'PIN'
Package: *
Pin: release n=trixie
Pin-Priority: 100
PIN
    apt_updated=""
    apt_install -t trixie docker-compose
    docker compose version >/dev/null 2>&1 || { log "docker compose v2 is still missing"; exit 1; }
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
