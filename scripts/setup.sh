#!/usr/bin/env bash
# Prepares a Debian machine for berth: the container engine (installed and started when
# missing), the Python environment in .venv, and, with --test, the local test image.
# Idempotent: every step checks before it acts, so running it again is cheap.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

need_apt=()
command -v dockerd >/dev/null 2>&1 || need_apt+=(docker.io)
if [ "${1:-}" = "--test" ]; then
  [ -x /bin/busybox ] || need_apt+=(busybox-static)
  command -v ssh >/dev/null 2>&1 || need_apt+=(openssh-client)
fi
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

engine_up() { curl -sf --max-time 3 --unix-socket /var/run/docker.sock http://engine/_ping >/dev/null 2>&1; }
if ! engine_up; then
  log "starting the Docker engine (log: /var/log/berth-dockerd.log)"
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl start docker || true
  fi
  if ! engine_up; then
    nohup dockerd >/var/log/berth-dockerd.log 2>&1 &
  fi
  for _ in $(seq 60); do engine_up && break; sleep 1; done
  engine_up || { log "the Docker engine did not come up; see /var/log/berth-dockerd.log"; exit 1; }
fi

if [ ! -x .venv/bin/python ]; then
  log "creating the Python environment in .venv"
  python3 -m venv .venv
fi
stamp=.venv/.berth-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  log "installing berth and its dependencies into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
  touch "$stamp"
fi

if [ "${1:-}" = "--test" ]; then
  if ! docker image inspect berth-test/busybox:latest >/dev/null 2>&1; then
    log "building the test image berth-test/busybox:latest from busybox-static"
    root=$(mktemp -d)
    mkdir -p "$root/bin" "$root/tmp" "$root/root" "$root/etc" "$root/var/www"
    cp /bin/busybox "$root/bin/busybox"
    for applet in $("$root/bin/busybox" --list); do
      [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
    printf 'root:x:0:\n' >"$root/etc/group"
    tar -C "$root" -c . | docker import -c 'ENV PATH=/bin' -c 'WORKDIR /root' - berth-test/busybox:latest >/dev/null
    rm -rf "$root"
  fi
fi
